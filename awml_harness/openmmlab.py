"""OpenMMLab model configs and checkpoints in, without mmdet/mmdet3d/mmpretrain.

A user's model lives in an mmengine `Config` file (`model=dict(type=..., backbone=...,
test_cfg=...)`, `test_pipeline=[...]`, `_base_` inheritance). A project translates such
a config into its own typed settings; this module holds what every translation needs and
knows no project by name:

- :func:`is_openmmlab_config` / :func:`read_openmmlab_config`: recognise and read one
  (mmengine `Config` semantics through :func:`awml_harness.config.load.read_file`);
- :class:`ConfigReader`: walks the `model` dicts and `test_pipeline`, records *every*
  transform type or key the translation does not understand, and raises them as one
  :class:`ConfigError` (key paths like `model_cfg:test_pipeline[2].type`), never a silent
  default;
- :func:`load_settings`: the `load_settings` body a project calls: OpenMMLab config path,
  inline dict, or `dict(openmmlab="cfg.py", <harness-only keys>)` -> settings; None when
  `model_cfg` is in the native form;
- :func:`remap_state_dict` / :func:`load_checkpoint`: OpenMMLab checkpoint keys -> native
  module names by an ordered table of regex rules, then a strict `load_into`;
- :func:`build_with_registry`: the optional `[mm]` path (the registries build the model).
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awml_harness.config.errors import ConfigError

ROOT = "model_cfg"
#: the key of the native `model_cfg` dict that names an OpenMMLab config file
CONFIG_KEY = "openmmlab"
#: settings fields a translation fills in besides the derived ones
SOURCE_FIELD = "openmmlab_config"

_MISSING = object()


# -- recognising and reading --------------------------------------------------------------
def is_openmmlab_config(data: Any) -> bool:
    """An OpenMMLab model config: a mapping whose `model` is a dict carrying `type`."""
    return (isinstance(data, Mapping) and isinstance(data.get("model"), Mapping)
            and isinstance(data["model"].get("type"), str))


def read_openmmlab_config(path: Path | str, key: str = ROOT) -> dict[str, Any]:
    """Read a config file with mmengine `Config` semantics (`_base_`, `{{_base_.x}}`),
    importing nothing: `custom_imports` are kept as data, `pkg::` bases are found in the
    installed package (:mod:`awml_harness.config.openmmlab_read`)."""
    from awml_harness.config.openmmlab_read import read_model_config

    return read_model_config(path, key)


def strip_scope(type_name: str) -> str:
    """`mmdet.SomeDetector` -> `SomeDetector`: the registry scope does not change what is built."""
    return type_name.rsplit(".", 1)[-1]


# -- walking and collecting problems ------------------------------------------------------
@dataclass(frozen=True)
class Problem:
    path: str
    value: Any
    allowed: str


class ConfigReader:
    """Reads an OpenMMLab config dict by dotted path and collects what it cannot use.

    Translations call :meth:`get`, :meth:`check_keys`, :meth:`expect` and
    :meth:`pipeline`; nothing raises until :meth:`raise_if_any`, so one run names every
    unknown transform and key at once.
    """

    def __init__(self, data: Mapping[str, Any], *, root: str = ROOT, source: str | None = None) -> None:
        self.data = data
        self.root = root
        self.source = source
        self.problems: list[Problem] = []
        #: settings field -> (value, where the config implies it): values a deploy config may
        #: set otherwise (the model config's evaluator picks the metric; the deploy config wins)
        self.soft: dict[str, tuple[Any, str]] = {}
        #: settings field -> the refusal raised unless the deploy config sets that field
        self.refusals: dict[str, Problem] = {}
        #: keys read and deliberately not reproduced, with the reason (IgnoredConfigKey warnings)
        self.notes: list[str] = []

    # paths ---------------------------------------------------------------------------
    def key(self, path: str) -> str:
        return f"{self.root}:{path}"

    @staticmethod
    def _parts(path: str) -> Iterator[str | int]:
        for token in re.findall(r"[^.\[\]]+|\[\d+\]", path):
            yield int(token[1:-1]) if token.startswith("[") else token

    def get(self, path: str, default: Any = _MISSING, *, allowed: str = "a value") -> Any:
        """Value at `path` (`model.bbox_head.num_classes`, `test_pipeline[1].scale`).
        Missing without a default: recorded as a problem, returns None."""
        node: Any = self.data
        for part in self._parts(path):
            if isinstance(part, int) and isinstance(node, (list, tuple)) and -len(node) <= part < len(node):
                node = node[part]
            elif isinstance(part, str) and isinstance(node, Mapping) and part in node:
                node = node[part]
            else:
                if default is _MISSING:
                    self.problem(path, None, f"{allowed}; this key is required")
                    return None
                return default
        return node

    def problem(self, path: str, value: Any, allowed: str) -> None:
        self.problems.append(Problem(path, value, allowed))

    def suggest(self, field: str, value: Any, source: str) -> None:
        """`field` = `value`, implied by the config at `source`, unless the deploy config
        sets the field (then that wins, and the model config's value is reported ignored)."""
        self.soft[field] = (value, source)

    def refuse_unless_set(self, field: str, path: str, value: Any, allowed: str) -> None:
        """A problem at `path` that a deploy config setting `field` itself makes moot."""
        self.refusals[field] = Problem(path, value, allowed)

    def note(self, path: str, value: Any, reason: str) -> None:
        self.notes.append(f"{self.key(path)}={value!r} is ignored: {reason}")

    # checks --------------------------------------------------------------------------
    def check_keys(self, path: str, known: Sequence[str], ignored: Sequence[str] = ()) -> Mapping[str, Any]:
        """Every key of the dict at `path` must be `known` (translated or checked) or
        `ignored` (training-only). Returns the dict (empty when absent)."""
        node = self.get(path, {})
        if not isinstance(node, Mapping):
            self.problem(path, node, "a dict")
            return {}
        allowed = sorted(set(known) | set(ignored) | {"type"})
        for k, v in node.items():
            if k not in allowed and not str(k).startswith("_"):
                self.problem(f"{path}.{k}", v, f"a key the harness understands here: {allowed}")
        return node

    def expect_type(self, path: str, supported: Sequence[str]) -> str | None:
        """The registry type at `path`.type, scope stripped; unsupported ones recorded."""
        raw = self.get(f"{path}.type", allowed=f"one of {list(supported)}")
        if raw is None:
            return None
        name = strip_scope(str(raw))
        if name not in supported:
            self.problem(f"{path}.type", raw, f"one of {list(supported)}")
            return None
        return name

    def expect(self, path: str, accepted: Callable[[Any], bool], allowed: str, default: Any = _MISSING) -> Any:
        """A value the native implementation can only honour in some forms (e.g.
        `keep_ratio=True`): anything else is recorded with `allowed`. An absent key
        gives `default` (taken as accepted), or is recorded when there is none."""
        absent = object()
        value = self.get(path, absent)
        if value is absent:
            if default is _MISSING:
                self.problem(path, None, f"{allowed}; this key is required")
                return None
            return default
        try:
            ok = bool(accepted(value))
        except Exception:
            ok = False
        if not ok:
            self.problem(path, value, allowed)
        return value

    def pipeline(self, key: str, handlers: Mapping[str, Callable[[str, Mapping[str, Any]], None]],
                 ignored: Sequence[str] = ()) -> None:
        """Call `handlers[type](path, transform)` for each transform of the list at `key`;
        a type neither handled nor in `ignored` (loading/packing steps that do not change
        the tensor) is recorded with the supported list."""
        steps = self.get(key, allowed="a list of transform dicts")
        if steps is None:
            return
        if not isinstance(steps, (list, tuple)):
            self.problem(key, steps, "a list of transform dicts")
            return
        supported = sorted(set(handlers) | set(ignored))
        for i, step in enumerate(steps):
            path = f"{key}[{i}]"
            if not isinstance(step, Mapping) or not isinstance(step.get("type"), str):
                self.problem(path, step, "a dict with a 'type'")
                continue
            name = strip_scope(step["type"])
            if name in handlers:
                handlers[name](path, step)
            elif name not in ignored:
                self.problem(f"{path}.type", step["type"], f"a transform the harness understands: {supported}")

    def raise_if_any(self) -> None:
        if not self.problems:
            return
        # a module whose `type` is refused (a variant the harness does not implement) is
        # named once: the keys of that module are its own business, not further problems
        refused = {p.path[: -len(".type")] for p in self.problems if p.path.endswith(".type")}
        self.problems = [p for p in self.problems
                         if not any(p.path.startswith(f"{mod}.") and p.path != f"{mod}.type" for mod in refused)]
        where = f" (in {self.source})" if self.source else ""
        if len(self.problems) == 1:
            p = self.problems[0]
            raise ConfigError(self.key(p.path), p.value, p.allowed + where)
        keys = ", ".join(self.key(p.path) for p in self.problems)
        allowed = "; ".join(f"[{i + 1}] {p.path} = {p.value!r}: {p.allowed}" for i, p in enumerate(self.problems))
        raise ConfigError(keys, [p.value for p in self.problems],
                          f"{len(self.problems)} problems{where}: {allowed}")


# -- settings ------------------------------------------------------------------------------
#: data (an OpenMMLab config dict) -> settings fields derived from it
Translate = Callable[[ConfigReader], dict[str, Any]]


def load_settings(settings_cls: type, model_cfg: Any, config_dir: Path, translate: Translate) -> Any | None:
    """The OpenMMLab half of a project's `load_settings`; None means "native form".

    Accepted:
      `model_cfg = "path/to/openmmlab_config.py"`           everything derived
      `model_cfg = dict(model=dict(type=...), ...)`           an inline OpenMMLab config
      `model_cfg = dict(openmmlab="cfg.py", strict_load=False, reference="registry", ...)`
          harness-only settings next to the derived ones; a key the config already
          determines is refused (change it in the OpenMMLab config).
    """
    from awml_harness.config.validation import from_mapping

    overrides: dict[str, Any] = {}
    source: Path | None = None
    if isinstance(model_cfg, (str, Path)):
        path = Path(model_cfg)
        path = path if path.is_absolute() else config_dir / path
        if path.suffix != ".py":
            return None  # YAML is the native form
        data = read_openmmlab_config(path)
        if not is_openmmlab_config(data):
            return None
        source = path
    elif isinstance(model_cfg, Mapping) and CONFIG_KEY in model_cfg:
        raw = model_cfg[CONFIG_KEY]
        if not isinstance(raw, (str, Path)) or not str(raw):
            raise ConfigError(f"{ROOT}.{CONFIG_KEY}", raw, "the path of an OpenMMLab model config (.py)")
        path = Path(raw)
        source = path if path.is_absolute() else config_dir / path
        data = read_openmmlab_config(source, f"{ROOT}.{CONFIG_KEY}")
        if not is_openmmlab_config(data):
            raise ConfigError(f"{ROOT}.{CONFIG_KEY}", str(raw), "an OpenMMLab config: a `model` dict with a `type`")
        overrides = {k: v for k, v in model_cfg.items() if k != CONFIG_KEY}
    elif is_openmmlab_config(model_cfg):
        data = dict(model_cfg)
    else:
        return None

    reader = ConfigReader(data, source=str(source) if source else None)
    derived = translate(reader)
    reader.raise_if_any()
    fields = {f.name for f in dataclasses.fields(settings_cls)}
    for k, v in overrides.items():
        if k in derived and derived[k] != v:
            raise ConfigError(f"{ROOT}.{k}", v, f"no override: the OpenMMLab config {source} sets it to "
                                                f"{derived[k]!r}; change it there")
    for k, p in reader.refusals.items():
        if k not in overrides:
            where = f" (in {source})" if source else ""
            raise ConfigError(reader.key(p.path), p.value, f"{p.allowed}{where}; or choose it in the deploy config: "
                                                           f"model_cfg=dict(openmmlab=..., {k}=...)")
    _warn(reader.notes, source)
    soft = {k: v for k, (v, _) in reader.soft.items()}
    _warn([f"{reader.key(where)} implies {k}={soft[k]!r}, which is ignored: the deploy config sets "
           f"{ROOT}.{k}={overrides[k]!r} (the deploy config wins)"
           for k, (_, where) in reader.soft.items() if k in overrides and overrides[k] != soft[k]], source)
    values = {**soft, **derived, **overrides}
    if source is not None and SOURCE_FIELD in fields:
        values[SOURCE_FIELD] = str(source.resolve())
    return from_mapping(settings_cls, values, ROOT)


def _warn(notes: Sequence[str], source: Path | None) -> None:
    import warnings

    from awml_harness.config.errors import IgnoredConfigKey

    for note in notes:
        warnings.warn(IgnoredConfigKey(f"{source}: {note}" if source else note), stacklevel=4)


# -- checkpoints ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Rule:
    """One rename: `pattern` (a regex, matched from the key's start) -> `repl` (with
    `\\1` groups), or None to drop the key. `note` says where the names come from."""

    pattern: str
    repl: str | None
    note: str = ""


def prefix(old: str, new: str | None, note: str = "") -> Rule:
    """A plain prefix rename (or drop, with `new=None`)."""
    return Rule(re.escape(old), None if new is None else new.replace("\\", "\\\\"), note)


#: applied before every project table: wrappers that training adds around the model
COMMON_RULES: tuple[Rule, ...] = (
    prefix("module.", "", "DistributedDataParallel wrapper"),
    prefix("data_preprocessor.", None, "mean/std buffers of the data preprocessor; the harness preprocesses in numpy"),
)


def remap_state_dict(state: Mapping[str, Any], table: Sequence[Rule]) -> dict[str, Any]:
    """Apply `table` to every key, rules in order (each sees the previous one's result).
    Two keys landing on the same name is an error, not a silent overwrite."""
    from awml_harness.checkpoint import CheckpointError

    compiled = [(re.compile(r.pattern), r.repl) for r in table]
    out: dict[str, Any] = {}
    origin: dict[str, str] = {}
    for key, value in state.items():
        new: str | None = key
        for pattern, repl in compiled:
            if new is not None and pattern.match(new):
                new = None if repl is None else pattern.sub(repl, new, count=1)
        if new is None:
            continue
        if new in out:
            raise CheckpointError(f"checkpoint keys {origin[new]!r} and {key!r} both map to {new!r}; "
                                  "fix the project's key-mapping table")
        out[new], origin[new] = value, key
    return out


def load_checkpoint(model: Any, path: Path | str, table: Sequence[Rule], *, strict: bool = True,
                    allow_pickle: bool = False) -> None:
    """Native or OpenMMLab checkpoint (`{"state_dict", "meta"}`) -> `model`, strictly:
    missing and unexpected keys (after renaming) are listed in full."""
    from awml_harness.checkpoint import load_into, load_state_dict

    state = load_state_dict(path, allow_pickle=allow_pickle)
    load_into(model, remap_state_dict(state, (*COMMON_RULES, *table)), strict=strict, source=str(path))


# -- the optional [mm] path ----------------------------------------------------------------
def missing_packages(*modules: str) -> list[str]:
    """Which of `modules` cannot be imported (for skip reasons and config errors)."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception as exc:  # ImportError, or mmcv's version assertion
            missing.append(f"{name} ({type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''})")
    return missing


def build_with_registry(config_path: Path | str | None, scope: str) -> Any:
    """The model described by the config, built by the `scope` registry (`mmdet`,
    `mmdet3d`, `mmpretrain`) after the config's `custom_imports`, so a user's own
    registered modules are what is built. Needs the `[mm]` extra; without it, or without
    an OpenMMLab config, a ConfigError on `model_cfg.reference` says what is missing."""
    from awml_harness.config.errors import ConfigError

    if config_path is None:
        raise ConfigError("model_cfg.reference", "registry", "an OpenMMLab model_cfg (the registry needs its config)")
    missing = missing_packages(scope)
    if missing:
        raise ConfigError("model_cfg.reference", "registry",
                          f"'native', or install the [mm] extra (missing: {', '.join(missing)})")
    from mmengine.config import Config  # type: ignore[import-not-found]
    from mmengine.registry import init_default_scope  # type: ignore[import-not-found]
    from mmengine.utils import import_modules_from_strings  # type: ignore[import-not-found]

    cfg = Config.fromfile(str(config_path))
    if cfg.get("custom_imports"):
        import_modules_from_strings(**cfg["custom_imports"])
    importlib.import_module(f"{scope}.utils").register_all_modules(init_default_scope=False)
    init_default_scope(cfg.get("default_scope", scope))
    registry = importlib.import_module(f"{scope}.registry")
    return registry.MODELS.build(cfg.model)
