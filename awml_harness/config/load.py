"""File -> dict -> DeployConfig.

Python configs follow mmengine `Config` semantics (`_base_` inheritance, dict merge,
`_delete_=True`); mmengine-lite's loader is used when installed, else a small loader
here with the same `_base_` rules, so the core never needs mmengine. YAML configs go
through `yaml.safe_load` and may use `_base_` as well. Python configs are code: treat
them like any script you run. A YAML config never runs Python: a YAML file whose
`_base_` names a `.py` file, or a YAML deploy config whose `model_cfg` does, is refused
unless the run opts in (`--awml-allow-python-in-yaml`). `_base_` chains are walked
before anything is read, so a cycle is a ConfigError naming the chain.
"""

from __future__ import annotations

import ast
import copy
import enum
import runpy
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from awml_harness.config import seed
from awml_harness.config.bases import YAML_SUFFIXES, declared_bases
from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import DeployConfig
from awml_harness.config.validation import from_mapping

_RESERVED = {"source", "model_settings", "raw", "project_dir"}


def _merge(base: dict, override: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and v.get("_delete_"):
            out[k] = {kk: vv for kk, vv in v.items() if kk != "_delete_"}
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _read_python(path: Path) -> dict[str, Any]:
    try:
        from mmengine.config import Config  # type: ignore[import-not-found]
    except ImportError:
        Config = None
    if Config is not None:
        try:
            cfg = Config.fromfile(str(path), import_custom_modules=False)
        except Exception as exc:  # syntax errors, bad _base_ ...
            raise ConfigError("<file>", str(path), f"a loadable Python config ({type(exc).__name__}: {exc})") from None
        return cfg.to_dict()
    try:
        namespace = runpy.run_path(str(path))
    except Exception as exc:
        raise ConfigError("<file>", str(path), f"a loadable Python config ({type(exc).__name__}: {exc})") from None
    data = {k: v for k, v in namespace.items() if not k.startswith("__") and not callable(v) and not isinstance(v, type(runpy))}
    return _apply_base(data, path)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", str(path), f"valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError("<root>", data, "a YAML mapping at the top level")
    return _apply_base(data, path)


def _apply_base(data: dict[str, Any], path: Path) -> dict[str, Any]:
    bases = data.pop("_base_", None)
    if bases is None:
        return data
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = _merge(merged, read_file(path.parent / base))
    return _merge(merged, data)


#: the command-line flag that lets YAML configs reach Python files
PYTHON_IN_YAML_OPT_IN = "--awml-allow-python-in-yaml"
_PYTHON_IN_YAML: ContextVar[bool] = ContextVar("awml_allow_python_in_yaml", default=False)


@contextmanager
def python_in_yaml_allowed(allowed: bool) -> Iterator[None]:
    """While active, YAML files may name `.py` files (the user's explicit opt-in)."""
    token = _PYTHON_IN_YAML.set(allowed)
    try:
        yield
    finally:
        _PYTHON_IN_YAML.reset(token)


def refuse_python_from_yaml(key: str, target: Any, yaml_file: Path | str) -> None:
    """A YAML config is data; a `.py` file it names would run as code. Refused unless opted in."""
    if str(target).endswith(".py") and not _PYTHON_IN_YAML.get():
        raise ConfigError(key, str(target), f"a YAML file: {yaml_file} is YAML, and a YAML config never "
                                            f"runs Python (pass {PYTHON_IN_YAML_OPT_IN} to allow it)")


def check_bases(path: Path | str) -> None:
    """Walk the `_base_` graph from `path` before reading it: a cycle, or a YAML file
    naming a `.py` base without the opt-in, is a ConfigError (not a RecursionError)."""

    def visit(node: Path, chain: tuple[Path, ...]) -> None:
        for base in declared_bases(node):
            if node.suffix in YAML_SUFFIXES:
                refuse_python_from_yaml("_base_", base, node)
            target = (node.parent / base).resolve()
            if target in chain:
                shown = " -> ".join(p.name for p in (*chain[chain.index(target):], target))
                raise ConfigError("_base_", base, f"an acyclic _base_ chain; {node} closes the cycle {shown}")
            if target.is_file():
                visit(target, (*chain, target))

    start = Path(path).resolve()
    visit(start, (start,))


def read_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--deploy-cfg", str(path), "an existing .py, .yaml or .yml file")
    check_bases(path)
    if path.suffix == ".py":
        return _read_python(path)
    if path.suffix in (".yaml", ".yml"):
        return _read_yaml(path)
    raise ConfigError("--deploy-cfg", str(path), "a file ending in .py, .yaml or .yml")


def _literal_with_dict_calls(raw: str) -> Any:
    """A Python literal in which `dict(k=v, ...)` calls of literals may stand for
    mappings, as configs and the harness's own suggestions write them. Evaluated from
    the syntax tree: nothing runs."""

    def build(node: ast.expr) -> Any:
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "dict":
            if node.args or any(kw.arg is None for kw in node.keywords):
                raise ValueError("dict() takes keyword arguments only here")
            return {kw.arg: build(kw.value) for kw in node.keywords}
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError("no ** in a mapping literal")
            return {build(k): build(v) for k, v in zip(node.keys, node.values, strict=True)}  # type: ignore[arg-type]
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [build(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        return ast.literal_eval(node)

    return build(ast.parse(raw.strip(), mode="eval").body)


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=1`, `a.b=[1,2]`, `a.b=onnx`, `a.b=dict(atol=1e-3, rtol=0)` -> ("a.b", value);
    values parse as Python literals (plus `dict(...)` calls of literals)."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--cfg-options", item, "KEY=VALUE with a dotted key, e.g. verification.default.atol=1e-6")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        try:
            value = _literal_with_dict_calls(raw)
        except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
            value = {"true": True, "false": False, "none": None, "null": None}.get(raw.lower(), raw)
    return key.strip(), value


def scoped(item: str) -> tuple[str | None, str]:
    """`MyDetector:model_cfg.score_threshold=0.3` applies to that project's configs
    only (scope = project name or config file stem); unscoped items apply to every config."""
    head, sep, rest = item.partition(":")
    if sep and head and "." not in head and "=" not in head:
        return head, rest
    return None, item


def unknown_scopes(overrides: Sequence[str], scope_names: set[str] | frozenset[str]) -> list[str]:
    """Scoped overrides (`Name:key=value`) whose scope names no loaded config: they would
    silently do nothing, so the caller refuses them."""
    return [raw for raw in overrides if (scope := scoped(raw)[0]) is not None and scope not in scope_names]


def apply_overrides(data: dict[str, Any], overrides: Sequence[str], scope_names: Sequence[str] = ()) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for raw in overrides:
        scope, item = scoped(raw)
        if scope is not None and scope not in scope_names:
            continue
        key, value = parse_override(item)
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise ConfigError(key, value, f"a path through mappings, but '{part}' holds {type(nxt).__name__}")
            node = nxt
        node[parts[-1]] = value
    return data


def _normalize_keys(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {(k.value if isinstance(k, enum.Enum) else k): _normalize_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_normalize_keys(v) for v in obj]
    return obj


def _resolve(path: Path | None, base: Path) -> Path | None:
    if path is None:
        return None
    return path if path.is_absolute() else (base / path)


def load_deploy_config(
    path: Path | str,
    *,
    overrides: Sequence[str] = (),
    base_dir: Path | None = None,
    work_dir: str | None = None,
    device: str | None = None,
    unsafe_load: bool = False,
    allow_python_in_yaml: bool = False,
    model_cfg: str | None = None,
    checkpoint: str | None = None,
) -> DeployConfig:
    """Read, override, validate. Relative paths resolve against `base_dir` (the rootdir).
    `allow_python_in_yaml`: a YAML config may name `.py` files (`_base_`, `model_cfg`).
    `model_cfg` / `checkpoint` are the seed's positional arguments (`--model-cfg`,
    `--checkpoint`): they replace the config's `model_cfg` / `checkpoint_path`."""
    with python_in_yaml_allowed(allow_python_in_yaml):
        return _load_deploy_config(path, overrides=overrides, base_dir=base_dir, work_dir=work_dir,
                                   device=device, unsafe_load=unsafe_load, model_cfg=model_cfg,
                                   checkpoint=checkpoint)


def _refuse_python_model_cfg(model_cfg: Any, yaml_file: Path) -> None:
    """A YAML deploy config's `model_cfg` (a path, or `dict(openmmlab=path)`) must not name Python."""
    if isinstance(model_cfg, (str, Path)):
        refuse_python_from_yaml("model_cfg", model_cfg, yaml_file)
    elif isinstance(model_cfg, Mapping) and isinstance(model_cfg.get("openmmlab"), (str, Path)):
        refuse_python_from_yaml("model_cfg.openmmlab", model_cfg["openmmlab"], yaml_file)


def _load_deploy_config(
    path: Path | str,
    *,
    overrides: Sequence[str],
    base_dir: Path | None,
    work_dir: str | None,
    device: str | None,
    unsafe_load: bool,
    model_cfg: str | None,
    checkpoint: str | None,
) -> DeployConfig:
    import dataclasses

    from awml_harness.project import load_project_class, project_search_roots, resolve_project

    path = Path(path).resolve()
    source = str(path)
    base_dir = (base_dir or Path.cwd()).resolve()
    try:
        data = _normalize_keys(read_file(path))
        data = apply_overrides(data, overrides, scope_names=(str(data.get("project", "")), path.stem))
        if work_dir:
            data.setdefault("export", {})
            data["export"]["work_dir"] = work_dir
        if unsafe_load:
            data["unsafe_load"] = True
        if model_cfg is not None:
            data["model_cfg"] = str(Path(model_cfg).resolve())
        if checkpoint is not None:
            data["checkpoint_path"] = str(Path(checkpoint).resolve())
        roots = project_search_roots(path, base_dir)
        data, notes = seed.normalize(data, path, roots)
        user_keys = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}
        for reserved in _RESERVED & set(user_keys):
            raise ConfigError(reserved, user_keys[reserved], "not set by the user (filled by the loader)")
        cfg = from_mapping(DeployConfig, user_keys)
        if device:
            cfg = _override_device(cfg, device)
        if path.suffix in YAML_SUFFIXES:
            _refuse_python_model_cfg(cfg.model_cfg, path)
        project_ref = resolve_project(cfg.project, roots)
        project_cls = load_project_class(project_ref)
        model_io, io_notes = seed.model_io_onto_graphs(cfg.model_io, project_cls)
        cfg = dataclasses.replace(cfg, model_io=model_io)
        notes.extend(io_notes)
        settings = None
        if project_cls.settings_cls is not None:
            settings = project_cls.load_settings(cfg.model_cfg, path.parent)  # type: ignore[attr-defined]
        elif cfg.model_cfg is not None:
            raise ConfigError("model_cfg", cfg.model_cfg, f"nothing: project {cfg.project} takes no model_cfg")
        cfg = dataclasses.replace(
            cfg,
            checkpoint_path=_resolve(cfg.checkpoint_path, base_dir),
            export=dataclasses.replace(cfg.export, work_dir=_resolve(cfg.export.work_dir, base_dir),
                                       onnx_path=_resolve(cfg.export.onnx_path, base_dir)),
            runtime_io=dataclasses.replace(cfg.runtime_io, info_file=_resolve(cfg.runtime_io.info_file, base_dir),
                                           data_root=_resolve(cfg.runtime_io.data_root, base_dir)),
            report=dataclasses.replace(cfg.report, metrics_json=_resolve(cfg.report.metrics_json, base_dir)),
            source=source,
            project_dir=project_ref,
            model_settings=settings,
            raw=data,
        )
        _check_files(cfg)
        project_cls.check_config(cfg)
    except ConfigError as exc:
        raise exc.with_source(source) from None
    seed.warn_ignored(notes, source)
    return cfg


def _override_device(cfg: DeployConfig, device: str) -> DeployConfig:
    """`--device cuda:0` moves every non-CPU-only backend (pytorch, onnx) and the scenarios' test side."""
    import dataclasses

    from awml_harness.config.schema import check_device

    device = check_device(device, "--device")
    backends = {
        name: dataclasses.replace(be, device=device) if not name.startswith("tensorrt") else be
        for name, be in cfg.evaluation.backends.items()
    }
    return dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, backends=backends))


def _check_files(cfg: DeployConfig) -> None:
    if cfg.checkpoint_path is not None and not cfg.checkpoint_path.is_file():
        raise ConfigError("checkpoint_path", str(cfg.checkpoint_path), "an existing checkpoint file")
    if cfg.runtime_io.info_file is not None and not cfg.runtime_io.info_file.exists():
        raise ConfigError("runtime_io.info_file", str(cfg.runtime_io.info_file), "an existing dataset annotation file")
    if cfg.runtime_io.data_root is not None and not cfg.runtime_io.data_root.is_dir():
        raise ConfigError("runtime_io.data_root", str(cfg.runtime_io.data_root), "an existing directory")
    if cfg.export.onnx_path is not None and not cfg.export.onnx_path.exists():
        raise ConfigError("export.onnx_path", str(cfg.export.onnx_path), "an existing ONNX file or folder")
