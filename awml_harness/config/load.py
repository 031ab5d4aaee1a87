"""File -> dict -> DeployConfig.

Python configs follow mmengine `Config` semantics (`_base_` inheritance, dict merge,
`_delete_=True`); mmengine-lite's loader is used when installed, else a small loader
here with the same `_base_` rules, so the core never needs mmengine. YAML configs go
through `yaml.safe_load` and may use `_base_` as well. Python configs are code: treat
them like any script you run.
"""

from __future__ import annotations

import ast
import copy
import enum
import runpy
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import DeployConfig
from awml_harness.config.typed import from_mapping

_RESERVED = {"source", "model_settings", "raw"}


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
            cfg = Config.fromfile(str(path))
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


def read_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--deploy-cfg", str(path), "an existing .py, .yaml or .yml file")
    if path.suffix == ".py":
        return _read_python(path)
    if path.suffix in (".yaml", ".yml"):
        return _read_yaml(path)
    raise ConfigError("--deploy-cfg", str(path), "a file ending in .py, .yaml or .yml")


def parse_override(item: str) -> tuple[str, Any]:
    """`a.b=1`, `a.b=[1,2]`, `a.b=onnx` -> ("a.b", value); values parse as Python literals."""
    key, sep, raw = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError("--cfg-options", item, "KEY=VALUE with a dotted key, e.g. verification.default.atol=1e-6")
    try:
        value = ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        value = {"true": True, "false": False, "none": None, "null": None}.get(raw.lower(), raw)
    return key.strip(), value


def scoped(item: str) -> tuple[str | None, str]:
    """`MyDetector:model_cfg.score_threshold=0.3` applies to that project's configs
    only (scope = project name or config file stem); unscoped items apply to every config."""
    head, sep, rest = item.partition(":")
    if sep and head and "." not in head and "=" not in head:
        return head, rest
    return None, item


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
) -> DeployConfig:
    """Read, override, validate. Relative paths resolve against `base_dir` (the rootdir)."""
    import dataclasses

    from awml_harness.project import load_project_class

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
        user_keys = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}
        for reserved in _RESERVED & set(user_keys):
            raise ConfigError(reserved, user_keys[reserved], "not set by the user (filled by the loader)")
        cfg = from_mapping(DeployConfig, user_keys)
        if device:
            cfg = _override_device(cfg, device)
        project_cls = load_project_class(cfg.project, [path.parent, base_dir])
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
            model_settings=settings,
            raw=data,
        )
        _check_files(cfg)
        project_cls.check_config(cfg)
    except ConfigError as exc:
        raise exc.with_source(source) from None
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
