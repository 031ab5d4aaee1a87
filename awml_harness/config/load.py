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
import dataclasses
import enum
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from awml_harness.config import awml_v2, seed
from awml_harness.config.bases import YAML_SUFFIXES
from awml_harness.config.errors import ConfigError
from awml_harness.config.read import python_in_yaml_allowed, read_file, refuse_python_from_yaml
from awml_harness.config.schema import DeployConfig
from awml_harness.config.validation import from_mapping

_RESERVED = {"source", "model_settings", "raw", "project_dir"}


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
    """Relative to `base`; `a/b/../c` written as `a/c` (configs name their data relative to
    themselves, `{{ fileDirname }}/../../fixtures/...`), without following links."""
    if path is None:
        return None
    return Path(os.path.normpath(path if path.is_absolute() else (base / path)))


def _resolve_mlflow(cfg: Any, base: Path) -> Any:
    """report.mlflow: a relative sqlite store is relative to the rootdir, as paths are."""
    if cfg is None or cfg.tracking_uri is None:
        return cfg
    import dataclasses

    from awml_harness.config.schema import absolute_sqlite

    return dataclasses.replace(cfg, tracking_uri=absolute_sqlite(cfg.tracking_uri, base))


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
    model_flags: Sequence[str] = (),
) -> DeployConfig:
    """Read, override, validate. Relative paths resolve against `base_dir` (the rootdir).
    `allow_python_in_yaml`: a YAML config may name `.py` files (`_base_`, `model_cfg`).
    `model_cfg` / `checkpoint` are the seed's positional arguments (`--model-cfg`,
    `--checkpoint`): they replace the config's `model_cfg` / `checkpoint_path`.
    `model_flags`: `model_cfg.<field>=<value>` overrides (command-line flags such as
    --rot-y-axis-reference) applied, like --cfg-options, where the project's settings have
    that field, and skipped where they do not."""
    with python_in_yaml_allowed(allow_python_in_yaml):
        return _load_deploy_config(path, overrides=overrides, base_dir=base_dir, work_dir=work_dir,
                                   device=device, unsafe_load=unsafe_load, model_cfg=model_cfg,
                                   checkpoint=checkpoint, model_flags=model_flags)


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
    model_flags: Sequence[str] = (),
) -> DeployConfig:
    import dataclasses

    from awml_harness.project import check_project, load_project_class, project_search_roots, resolve_project

    path = Path(path).resolve()
    source = str(path)
    base_dir = (base_dir or Path.cwd()).resolve()
    try:
        data = _normalize_keys(read_file(path))
        scope_names = (str(data.get("project", "")), path.stem)
        model_overrides = [o for o in overrides if _is_model_override(o)]
        data = apply_overrides(data, [o for o in overrides if o not in model_overrides], scope_names=scope_names)
        if work_dir:
            data.setdefault("export", {})
            data["export"]["work_dir"] = work_dir
        if unsafe_load:
            data["unsafe_load"] = True
        if model_cfg is not None:
            data["model_cfg"] = str(Path(model_cfg).resolve())
        # `model_cfg.*` overrides go on top of the model config wherever it comes from: into
        # the mapping the deploy config writes, or onto the settings read from a model config
        # file (the deploy config's path or --model-cfg), once that file is read
        deferred: list[str] = []
        if isinstance(data.get("model_cfg"), (str, Path)):
            deferred = model_overrides
        else:
            data = apply_overrides(data, model_overrides, scope_names=scope_names)
        if checkpoint is not None:
            data["checkpoint_path"] = str(Path(checkpoint).resolve())
        roots = project_search_roots(path, base_dir)
        v2 = awml_v2.normalize(data, path.parent)  # the new framework's shapes (PR 115), if it is one
        data, notes = seed.normalize(v2.data, path, roots)
        notes[:0] = v2.notes
        if v2.form is not None and not data.get("task_type") and isinstance(data.get("project"), str):
            data["task_type"] = load_project_class(resolve_project(data["project"], roots)).task_type
        if str(data.get("project", "")) not in scope_names:  # a project the seed format inferred
            late = (str(data.get("project", "")),)
            data = apply_overrides(data, [o for o in overrides if o not in model_overrides and scoped(o)[0] in late],
                                   scope_names=late)
            if not deferred:
                data = apply_overrides(data, [o for o in model_overrides if scoped(o)[0] in late], scope_names=late)
            scope_names = (*scope_names, *late)
        user_keys = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("_"))}
        for reserved in _RESERVED & set(user_keys):
            raise ConfigError(reserved, user_keys[reserved], "not set by the user (filled by the loader)")
        cfg = from_mapping(DeployConfig, user_keys)
        if device:
            cfg = _override_device(cfg, device)
        if path.suffix in YAML_SUFFIXES:
            _refuse_python_model_cfg(cfg.model_cfg, path)
        project_ref = resolve_project(cfg.project, roots)
        if Path(project_ref).is_absolute() and Path(project_ref).name != cfg.project:  # `centerpoint` as upstream
            cfg = dataclasses.replace(cfg, project=Path(project_ref).name)  # writes it: the folder's own name
        project_cls = load_project_class(project_ref)
        check_task_type(cfg.task_type, project_cls)
        model_io, io_notes = seed.model_io_onto_graphs(cfg.model_io, project_cls)
        cfg = dataclasses.replace(cfg, model_io=model_io)
        notes.extend(io_notes)
        settings = None
        if project_cls.settings_cls is not None:
            settings = project_cls.load_settings(cfg.model_cfg, path.parent)  # type: ignore[attr-defined]
            if deferred:
                settings = _override_settings(settings, project_cls.settings_cls, deferred, scope_names, notes)
            flags = [f for f in model_flags if _flag_field(f) in {x.name for x in dataclasses.fields(settings)}]
            if flags:
                settings = _override_settings(settings, project_cls.settings_cls, flags, scope_names, notes)
            settings = settings_from_profiles(project_cls, cfg, settings)
        elif cfg.model_cfg is not None:
            raise ConfigError("model_cfg", cfg.model_cfg, f"nothing: project {cfg.project} takes no model_cfg")
        cfg = dataclasses.replace(
            cfg,
            checkpoint_path=_resolve(cfg.checkpoint_path, base_dir),
            export=dataclasses.replace(cfg.export, work_dir=_resolve(cfg.export.work_dir, base_dir),
                                       onnx_path=_resolve(cfg.export.onnx_path, base_dir)),
            runtime_io=dataclasses.replace(cfg.runtime_io, info_file=_resolve(cfg.runtime_io.info_file, base_dir),
                                           data_root=_resolve(cfg.runtime_io.data_root, base_dir)),
            report=dataclasses.replace(cfg.report, metrics_json=_resolve(cfg.report.metrics_json, base_dir),
                                       markdown=_resolve(cfg.report.markdown, base_dir),
                                       mlflow=_resolve_mlflow(cfg.report.mlflow, base_dir)),
            quantization=dataclasses.replace(
                cfg.quantization, info_file=_resolve(cfg.quantization.info_file, base_dir),
                data_root=_resolve(cfg.quantization.data_root, base_dir),
                calibration_cache=_resolve(cfg.quantization.calibration_cache, base_dir)),
            package=dataclasses.replace(cfg.package, check_dir=_resolve(cfg.package.check_dir, base_dir)),
            source=source,
            project_dir=project_ref,
            model_settings=settings,
            raw=data,
        )
        _check_files(cfg)
        cfg = handed_precision(cfg)
        check_project(project_cls, cfg)
        awml_v2.check_components(v2.components, project_cls(cfg).graph_names(), cfg.project)
        notes.extend(fixed_axes_notes(project_cls, cfg))
        project_cls.check_config(cfg)  # its own checks first: they name the input shapes they bound
        check_model_size(project_cls, cfg)
    except ConfigError as exc:
        raise exc.with_source(source) from None
    seed.warn_ignored(notes, source)
    return cfg


def check_model_size(project_cls: Any, cfg: DeployConfig) -> None:
    """The project's estimate of its model (ModelSize) against `limits.max_parameters` and
    `limits.max_elements`, before anything is built; the error names the settings key."""
    size = project_cls.model_size(cfg)
    if size is None:
        return
    limits = cfg.limits

    def value(key: str) -> Any:
        return getattr(cfg.model_settings, key, None)

    if size.total > limits.max_parameters:
        ranked = sorted(size.parameters.items(), key=lambda kv: -kv[1])
        parts = ", ".join(f"model_cfg.{k} = {value(k)!r}: ~{v:.3g}" for k, v in ranked[:4])
        raise ConfigError(f"model_cfg.{ranked[0][0]}", value(ranked[0][0]),
                          f"settings for a model of at most {limits.max_parameters:.3g} parameters "
                          f"(limits.max_parameters); these give an estimated {size.total:.3g} "
                          f"({4 * size.total / 1e9:.3g} GB of float32; {parts}); fix the setting or raise "
                          "limits.max_parameters")
    if size.activations and max(size.activations.values()) > limits.max_elements:
        key, elements = max(size.activations.items(), key=lambda kv: kv[1])
        raise ConfigError(f"model_cfg.{key}", value(key),
                          f"settings whose largest activation has at most {limits.max_elements} elements "
                          f"(limits.max_elements); with this value one tensor has an estimated {elements:.3g}; "
                          "fix the setting or raise limits.max_elements")


def _flag_field(item: str) -> str:
    """`model_cfg.rot_y_axis_reference=True` -> `rot_y_axis_reference`."""
    return item.partition("=")[0].strip().removeprefix("model_cfg.")


def _is_model_override(item: str) -> bool:
    return scoped(item)[1].partition("=")[0].strip().startswith("model_cfg.")


def _override_settings(settings: Any, settings_cls: type, overrides: Sequence[str], scope_names: Sequence[str],
                       notes: list[str] | None = None) -> Any:
    """`model_cfg.<key>=<value>` on settings read from a model config file: the settings as
    data, the overrides applied, validated again (so a wrong key or value is the usual
    config error naming `model_cfg.<key>`). A value the override changes is reported: the
    model config's value is the one ignored."""
    from awml_harness.config.validation import to_builtin

    before = to_builtin(settings)
    data = apply_overrides({"model_cfg": before}, overrides, scope_names=scope_names)
    out = from_mapping(settings_cls, data["model_cfg"], "model_cfg")
    source = getattr(settings, "openmmlab_config", None) or "the model config file"
    if notes is not None and isinstance(before, dict):
        after = to_builtin(out)
        try:  # a value equal to the default is no value the file set
            defaults = to_builtin(settings_cls())
        except TypeError:  # settings without defaults: every changed value is reported
            defaults = {}
        for k in before:
            if before[k] != after.get(k) and before[k] != defaults.get(k, object()):
                notes.append(f"model_cfg.{k}={before[k]!r} from {source} is ignored: --cfg-options sets "
                             f"{after[k]!r} (the deploy config's setting wins)")
    return out


def settings_from_profiles(project_cls: Any, cfg: DeployConfig, settings: Any) -> Any:
    """A TensorRT profile the config writes decides the settings the project derives it
    from (`ProjectAdapter.profile_settings`: `"<graph>.<input>"` -> (axis, settings field)),
    where the settings leave that field unset (None). A field set differently stays: the
    project's own check then names the mismatch."""
    from awml_harness.config.validation import to_builtin
    from awml_harness.graph import profile_input

    mapping = getattr(project_cls, "profile_settings", None) or {}
    for target, (axis, name) in mapping.items():
        graph, _, input_name = target.partition(".")
        if settings is None or getattr(settings, name, None) is not None:
            continue
        for entry in cfg.backend_config.model_inputs:
            shapes = [p for k, p in entry.input_shapes.items() if profile_input(k, graph, (input_name,))]
            if shapes and all(len(s) > axis for s in (shapes[-1].min_shape, shapes[-1].opt_shape, shapes[-1].max_shape)):
                p = shapes[-1]
                triple = [int(p.min_shape[axis]), int(p.opt_shape[axis]), int(p.max_shape[axis])]
                try:  # validated as if written in model_cfg
                    settings = from_mapping(type(settings), {**to_builtin(settings), name: triple}, "model_cfg")
                except ConfigError as exc:
                    raise ConfigError(exc.key, exc.value, f"{exc.allowed} (model_cfg.{name} comes from the "
                                                          f"TensorRT profile of {target})") from None
                break
    return settings


def fixed_axes_notes(project_cls: Any, cfg: DeployConfig) -> list[str]:
    """A project whose graphs decide their dynamic axes themselves (`fixed_dynamic_axes`,
    the reason) ignores the config's `model_io` / `onnx_config` dynamic_axes: say so."""
    reason = getattr(project_cls, "fixed_dynamic_axes", None)
    if not reason:
        return []
    return [f"{section}.dynamic_axes={ {k: dict(v) for k, v in table.items()}!r} is ignored: {reason}"
            for section, table in (("model_io", cfg.model_io.dynamic_axes), ("onnx_config", cfg.onnx_config.dynamic_axes))
            if table]


def check_task_type(task_type: str, project_cls: type) -> None:
    """The config's `task_type` must be the one its project declares: a config copied from
    another project, or a task name mistyped, is caught before anything runs."""
    declared = getattr(project_cls, "task_type", None)
    name = getattr(project_cls, "name", project_cls.__name__)
    if not isinstance(declared, str) or not declared:
        raise ConfigError("project", name, f"a project class that declares `task_type` (a task type name); "
                                           f"{project_cls.__module__}.{project_cls.__qualname__} "
                                           "declares none")
    if task_type != declared:
        raise ConfigError("task_type", task_type, f"{declared!r}, the task type project {name} declares")


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
    info = cfg.runtime_io.info_file
    if info is not None and info.is_dir():
        raise ConfigError("runtime_io.info_file", str(info), "a dataset annotation file (info .pkl, COCO JSON, ...), "
                                                            "not a directory; a folder of data is runtime_io.data_root")
    if info is not None and not info.is_file():
        raise ConfigError("runtime_io.info_file", str(info), "an existing dataset annotation file")
    if cfg.runtime_io.data_root is not None and not cfg.runtime_io.data_root.is_dir():
        raise ConfigError("runtime_io.data_root", str(cfg.runtime_io.data_root), "an existing directory")
    if cfg.package.check_dir is not None and not cfg.package.check_dir.is_dir():
        raise ConfigError("package.check_dir", str(cfg.package.check_dir), "an existing Autoware package folder")
    if cfg.export.onnx_path is not None and not cfg.export.onnx_path.exists():
        raise ConfigError("export.onnx_path", str(cfg.export.onnx_path), "an existing ONNX file or folder")
    q = cfg.quantization
    for key, value, is_file in (("info_file", q.info_file, True), ("data_root", q.data_root, False),
                                ("calibration_cache", q.calibration_cache, True)):
        if value is not None and not (value.is_file() if is_file else value.is_dir()):
            raise ConfigError(f"quantization.{key}", str(value), "an existing file" if is_file else "an existing directory")


def handed_precision(cfg: DeployConfig) -> DeployConfig:
    """An export.onnx_path holding Q/DQ nodes (export.onnx_precision None: detected) is the
    int8 deployment: every ONNX / TensorRT side that would run it as fp32 (evaluation
    backends, scenarios) runs, verifies and reports as int8 instead, so it is held to the
    int8 tolerances and no fp32 label hides a quantized graph."""
    if cfg.export.onnx_path is None:
        return cfg
    precision = cfg.export.onnx_precision
    if precision is None:
        from awml_harness.io.onnx_file import file_precision

        try:
            precision = file_precision(cfg.export.onnx_path)
        except Exception:  # unreadable: the export and verification tests that open it name the file
            return cfg
    cfg = dataclasses.replace(cfg, export=dataclasses.replace(cfg.export, onnx_precision=precision))
    if precision != "int8":
        return cfg
    from awml_harness.config.schema import Backend

    runs_it = (Backend.ONNX, Backend.TENSORRT)
    backends: dict[str, Any] = {}
    for name, be in cfg.evaluation.backends.items():
        if "-" not in name and Backend(name) in runs_it and be.precision == "fp32":
            be = dataclasses.replace(be, precision="int8")
            if f"{name}-int8" in cfg.evaluation.backends:  # the config names the int8 backend itself: that one runs
                continue
        backends[name] = be

    def side(sc: Any) -> Any:
        changes = {f"{which}_precision": "int8" for which in ("ref", "test")
                   if getattr(sc, f"{which}_backend") in runs_it and getattr(sc, f"{which}_precision") == "fp32"}
        return dataclasses.replace(sc, **changes)

    scenarios = {mode: tuple(dict.fromkeys(side(sc) for sc in scs)) for mode, scs in cfg.verification.scenarios.items()}
    reference = cfg.evaluation.reference
    if reference not in backends and f"{reference}-int8" in backends:
        reference = f"{reference}-int8"
    return dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation, backends=backends, reference=reference),
                               verification=dataclasses.replace(cfg.verification, scenarios=scenarios))


def pack_for_workers(configs: Sequence[DeployConfig]) -> dict[str, Any] | None:
    """The configs the xdist controller read and validated, in a form its workers can take
    instead of reading the files again. Reading costs each worker the mmengine import and a
    validation pass (~0.7 s of its start on a 2-core box, issue 16), and a config edited
    while workers start would differ between them. None when a config does not pickle
    (a Python config may hold anything in `raw`): the workers then read the files."""
    import pickle

    try:
        blob = pickle.dumps(list(configs), protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001 - any unpicklable value means: workers read the files
        return None
    return {"projects": [cfg.project_dir for cfg in configs], "configs": blob}


def unpack_from_controller(packed: Mapping[str, Any]) -> list[DeployConfig]:
    """Inverse of :func:`pack_for_workers`. Project adapters loaded by file path live in
    private packages named in load order, so they are loaded again, in the controller's
    order, before the configs that refer to their settings classes are unpickled."""
    import pickle

    from awml_harness.project import load_project_class

    for ref in packed["projects"]:
        load_project_class(ref)
    return list(pickle.loads(packed["configs"]))
