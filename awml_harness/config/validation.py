"""Plain dicts -> frozen config dataclasses, validated by pydantic, every mistake at once.

The schema (config/schema.py) and every project's settings are standard frozen
dataclasses; pydantic (v2) validates a mapping against one and builds it, reporting every
wrong type, unknown key, missing key and out-of-range value in one pass (ranges are
`annotated_types` constraints on the fields). Each of its errors becomes a ConfigError
with the dotted key and what would be accepted; all of them are raised as one
ConfigError. Rules across fields live in a dataclass's `validate(self, key)` method;
they run once every value has the right type, on every node, and their mistakes are
collected the same way.

Conversion follows pydantic's lax mode (https://docs.pydantic.dev/latest/concepts/conversion_table/):
lists become tuples, strings paths, `2.0` an int; unknown keys are refused, floats must be
finite. pydantic is imported on first use, not when the schema is.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import functools
import re
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from awml_harness.config.errors import ConfigError

T = TypeVar("T")

#: how every config class is validated: unknown keys and inf/nan refused
PYDANTIC_CONFIG = {"extra": "forbid", "allow_inf_nan": False}
_PLAIN_KEY = re.compile(r"^[\w\-.:>*?\[\]/]+$")


def join(key: str, part: str | int) -> str:
    """`key` + one step: `a.b`, `a[0]`, or `a['odd key']` when the part needs quoting."""
    if isinstance(part, int):
        return f"{key}[{part}]"
    if not _PLAIN_KEY.match(part):  # empty, spaces, newlines: show it quoted
        return f"{key}[{part!r}]"
    return f"{key}.{part}" if key else str(part)


@functools.cache
def _adapter(cls: type) -> Any:
    from pydantic import TypeAdapter

    if "__pydantic_config__" not in cls.__dict__:
        # nested dataclasses without their own config inherit this one (pydantic's rule)
        cls.__pydantic_config__ = PYDANTIC_CONFIG  # type: ignore[attr-defined]
    return TypeAdapter(cls)


def from_mapping(cls: type[T], data: Any, key: str = "") -> T:
    """Build dataclass `cls` from mapping `data` (None: all defaults). Every mistake is
    reported, in one ConfigError whose keys start at `key`."""
    from pydantic import ValidationError

    if data is None:
        data = {}
    try:
        obj = _adapter(cls).validate_python(data)
    except ValidationError as exc:
        raise ConfigError.combine([_problem(cls, data, err, key) for err in exc.errors(include_url=False)]) from None
    problems: list[ConfigError] = []
    _run_validators(obj, key, problems)
    if problems:
        raise ConfigError.combine(problems)
    return obj


# -- pydantic's errors as ConfigErrors ------------------------------------------------------
def _problem(cls: type, data: Any, err: Mapping[str, Any], key: str) -> ConfigError:
    path, node, tp, parent_type = key, data, cls, cls  # tp: the annotation at `path`
    loc = err["loc"]
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if (isinstance(node, Mapping) and part in node) or (
                isinstance(node, (list, tuple)) and isinstance(part, int) and 0 <= part < len(node)):
            parent_type, tp, node = tp, _step(tp, part), node[part]
        elif last and isinstance(part, (str, int)) and part != "[key]":
            parent_type, tp, node = tp, _step(tp, part), None  # a required key that is not there
        else:
            continue  # pydantic's own steps (union members, "[key]"): not part of the config's path
        path = join(path, part)
    kind = err["type"]
    if kind in ("unexpected_keyword_argument", "extra_forbidden"):
        return ConfigError(path or "<root>", err["input"],
                           f"no such key; known keys under '{_parent(path) or '<root>'}': {_fields(parent_type)}")
    if kind in ("missing_argument", "missing"):
        return ConfigError(path, None, f"a value ({_describe(tp)}); this key is required")
    if kind == "value_error" and isinstance((err.get("ctx") or {}).get("error"), ConfigError):
        inner = err["ctx"]["error"]
        return ConfigError(join(path, inner.key) if inner.key else path, inner.value, inner.allowed)
    allowed = str(err["msg"]).removeprefix("Input should be ").removeprefix("Value error, ")
    if kind in ("dataclass_type", "dataclass_args_type", "model_type"):
        allowed = _describe(tp)
    if loc and loc[-1] == "[key]":  # the key itself is wrong, not its value
        allowed, node = f"a mapping key that is {allowed}", err["input"]
    return ConfigError(path or "<root>", node, allowed)


def _parent(path: str) -> str:
    cut = max(path.rfind("."), path.rfind("["))
    return path[:cut] if cut > 0 else ""


def _unwrap(tp: Any) -> Any:
    """The dataclass / container behind Annotated[...] and Optional[...]."""
    while get_origin(tp) is Annotated:
        tp = get_args(tp)[0]
    if get_origin(tp) in (Union, types.UnionType):
        members = [a for a in get_args(tp) if a is not type(None)]
        if len(members) == 1:
            return _unwrap(members[0])
    return tp


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return get_type_hints(cls, include_extras=True)


def _step(tp: Any, part: Any) -> Any:
    """The annotation one step below `tp` (field, item or mapping value); Any if unknown."""
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp) and isinstance(part, str):
        return _hints(tp).get(part, Any)  # type: ignore[arg-type]
    args = get_args(tp)
    origin = get_origin(tp)
    if origin in (tuple, list) and args:
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            return args[part] if isinstance(part, int) and part < len(args) else Any
        return args[0]
    if origin in (dict, collections.abc.Mapping) and args:
        return args[-1]
    return Any


def _fields(tp: Any) -> list[str]:
    tp = _unwrap(tp)
    return sorted(f.name for f in dataclasses.fields(tp)) if dataclasses.is_dataclass(tp) else []  # type: ignore[arg-type]


def _describe(tp: Any) -> str:
    tp = _unwrap(tp)
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {_fields(tp)}"
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if get_origin(tp) is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if get_origin(tp) in (tuple, list):
        return "a list"
    if get_origin(tp) in (dict, collections.abc.Mapping):
        return "a mapping"
    plain = {bool: "true/false", int: "an integer", float: "a number", str: "a string", Path: "a path string"}
    return plain.get(tp) or getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


# -- cross-field rules ----------------------------------------------------------------------
def _run_validators(obj: Any, key: str, problems: list[ConfigError]) -> None:
    """Children first; a node's own `validate(key)` runs only when its subtree is clean
    (its rules may assume valid children)."""
    before = len(problems)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            _run_validators(getattr(obj, f.name), join(key, f.name), problems)
        validate = getattr(obj, "validate", None)
        if callable(validate) and len(problems) == before:
            try:
                validate(key)
            except ConfigError as exc:
                problems.extend(exc.problems or (exc,))
    elif isinstance(obj, Mapping):
        for k, v in obj.items():
            _run_validators(v, join(key, str(k.value if isinstance(k, enum.Enum) else k)), problems)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            _run_validators(v, join(key, i), problems)


def to_builtin(obj: Any) -> Any:
    """Dataclass tree -> JSON-ready builtins (for the metrics JSON and artifact keys)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_builtin(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, Mapping):
        return {str(to_builtin(k)): to_builtin(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_builtin(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


__all__: Sequence[str] = ("ConfigError", "from_mapping", "join", "to_builtin")
