"""Plain dicts -> frozen dataclasses, checked against their type annotations.

One small converter serves the core schema and every project's settings, so a typo in
any section reads the same in the CI log: the dotted key, the bad value, what is allowed.
Supported annotations: bool, int, float, str, Path, None/Optional, Literal, Enum,
tuple[X, ...], tuple[X, Y], list[X], dict[str, X], Union and nested dataclasses.
A dataclass may define `validate(self, key)` for cross-field rules; it raises ConfigError.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import math
import re
import types
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

from awml_harness.config.errors import ConfigError

T = TypeVar("T")

_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


_PLAIN_KEY = re.compile(r"^[\w\-.:>*?\[\]/]+$")


def _join(key: str, part: str | int) -> str:
    if isinstance(part, int):
        return f"{key}[{part}]"
    if not _PLAIN_KEY.match(part):  # empty, spaces, newlines: show it quoted
        return f"{key}[{part!r}]"
    return f"{key}.{part}" if key else str(part)


def _describe(tp: Any) -> str:
    origin = get_origin(tp)
    if tp is type(None):
        return "None"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in tp)
    if dataclasses.is_dataclass(tp):
        return f"a mapping with keys {sorted(f.name for f in dataclasses.fields(tp))}"
    if origin in (tuple, list):
        args = get_args(tp)
        if (len(args) == 2 and args[1] is Ellipsis) or (origin is list and args):
            return f"a list of {_describe(args[0])}"
        return f"a list of {len(args)} items ({', '.join(_describe(a) for a in args)})"
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        args = get_args(tp)
        return f"a mapping of {_describe(args[1])}" if args else "a mapping"
    if tp is Any:
        return "any value"
    return {bool: "true/false", int: "an integer", float: "a number", str: "a string", Path: "a path string"}.get(
        tp, getattr(tp, "__name__", str(tp))
    )


def convert(value: Any, tp: Any, key: str) -> Any:
    """Convert `value` to annotation `tp` or raise ConfigError at `key`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if tp is type(None):
        if value is None:
            return None
        raise ConfigError(key, value, "None")
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return convert(value, arg, key)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(key, value, _describe(tp))
    if origin is Literal:
        allowed = get_args(tp)
        candidate = value.value if isinstance(value, enum.Enum) else value
        if isinstance(candidate, str) and candidate.lower() in [str(a).lower() for a in allowed if isinstance(a, str)]:
            return next(a for a in allowed if isinstance(a, str) and a.lower() == candidate.lower())
        for a in allowed:  # `a is` for bool so True never matches 1
            if candidate is a or (type(candidate) is type(a) and candidate == a):
                return a
        raise ConfigError(key, value, _describe(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        if isinstance(value, tp):
            return value
        for member in tp:
            if isinstance(value, str) and value.lower() == str(member.value).lower():
                return member
        raise ConfigError(key, value, _describe(tp))
    if dataclasses.is_dataclass(tp):
        if isinstance(value, tp):
            return value
        return from_mapping(tp, value, key)
    if origin in (tuple, list) or tp in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, value, _describe(tp))
        args = get_args(tp)
        if not args:
            items = list(value)
        elif len(args) == 2 and args[1] is Ellipsis:
            items = [convert(v, args[0], _join(key, i)) for i, v in enumerate(value)]
        elif origin is list:
            items = [convert(v, args[0], _join(key, i)) for i, v in enumerate(value)]
        else:
            if len(value) != len(args):
                raise ConfigError(key, value, _describe(tp))
            items = [convert(v, a, _join(key, i)) for i, (v, a) in enumerate(zip(value, args, strict=False))]
        return tuple(items) if (origin is tuple or tp is tuple) else items
    if origin in (dict, collections.abc.Mapping) or tp in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(key, value, _describe(tp))
        args = get_args(tp) or (Any, Any)
        out = {}
        for k, v in value.items():
            kk = k.value if isinstance(k, enum.Enum) else k
            kk = convert(kk, args[0], _join(key, str(kk)))
            out[kk] = convert(v, args[1], _join(key, str(kk)))
        return out
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(key, value, "true/false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ConfigError(key, value, "an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        raise ConfigError(key, value, "a finite number")
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, enum.Enum) and isinstance(value.value, str):
            return value.value
        raise ConfigError(key, value, "a string")
    if tp is Path:
        if isinstance(value, (str, Path)) and str(value):
            return Path(value)
        raise ConfigError(key, value, "a path string")
    raise TypeError(f"unsupported annotation {tp!r} at {key}")  # programming error, not user error


def from_mapping(cls: type[T], data: Any, key: str = "") -> T:
    """Build dataclass `cls` from mapping `data`; unknown or missing keys are errors."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(key or cls.__name__, data, _describe(cls))
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    normalized = {}
    for raw_k, v in data.items():
        k = raw_k.value if isinstance(raw_k, enum.Enum) else raw_k
        if not isinstance(k, str) or k not in fields:
            raise ConfigError(_join(key, str(k)), v, f"no such key; known keys under '{key or '<root>'}': {sorted(fields)}")
        normalized[k] = v
    kwargs = {}
    for name, f in fields.items():
        sub = _join(key, name)
        if name in normalized:
            kwargs[name] = convert(normalized[name], hints[name], sub)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:  # type: ignore[misc]
            raise ConfigError(sub, None, f"a value ({_describe(hints[name])}); this key is required")
    obj = cls(**kwargs)
    validate = getattr(obj, "validate", None)
    if callable(validate):
        validate(key)
    return obj


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
