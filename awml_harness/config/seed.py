"""The seed's deploy-config format, read unchanged.

AWML's deployment configs (`projects/<Name>/deploy/configs/deploy_config.py`) carry keys
written for the seed's script framework. Each is given its meaning here or accepted and
reported as ignored with the reason (a :class:`IgnoredConfigKey` warning, shown in
pytest's warnings summary); nothing is dropped silently:

=========================================  =============================================
key                                        here
=========================================  =============================================
`project` (absent)                         inferred: the `projects/<Name>/` folder the
                                           model config or the deploy config lives in,
                                           else the one project whose adapter declares
                                           `codebase` = codebase_config.type (and the
                                           config's task_type)
`codebase_config`                          otherwise ignored: the adapter runs the model
`onnx_config.type` = "onnx"                ignored (mmdeploy's backend tag); other values
`backend_config.type` = "tensorrt"         are refused
`onnx_config.export_params` = True         the harness always stores weights in the
                                           file; False is refused
`onnx_config.keep_initializers_as_inputs`  False is what the harness writes; True refused
`verification.devices`, top-level          device aliases: scenario and backend devices
`devices`                                  naming a key ("cuda") resolve through them
`evaluation.backends.onnx.model_dir`       export.mode "none"/"trt": the ONNX to run
                                           (= export.onnx_path); else ignored (the
                                           harness evaluates what it exported)
`evaluation.backends.tensorrt.engine_dir`  ignored: engines are built from the ONNX and
                                           cached under export.work_dir
`model_io.additional_inputs/outputs`,      declared I/O names, checked by test_export
`onnx_config.input_names/output_names`     after the project's mapping of the model's
                                           names onto its graphs (model_io_onto_graphs):
                                           an alias is checked under the graph's name,
                                           a pipeline tensor is ignored with the reason
`onnx_config.batch_size`                   = model_io.batch_size
`trt_config` (dict)                        = backend_config (common_config keys and
                                           model_inputs)
=========================================  =============================================

Unknown keys anywhere in the config are collected and raised as one ConfigError.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from awml_harness.config.errors import ConfigError, IgnoredConfigKey

_PROJECT_IN_PATH = re.compile(r"(?:^|/)projects/([^/]+)/")


# -- seed keys ------------------------------------------------------------------------------
def _note(notes: list[str], key: str, value: Any, reason: str) -> None:
    notes.append(f"{key}={value!r} is ignored: {reason}")


def _pop(section: Any, name: str) -> tuple[bool, Any]:
    if isinstance(section, dict) and name in section:
        return True, section.pop(name)
    return False, None


def _alias(value: Any, aliases: Mapping[str, Any]) -> Any:
    if isinstance(value, str) and value in aliases and isinstance(aliases[value], str):
        return aliases[value]
    return value


#: keys of earlier harness versions -> their names now
RENAMED_EVALUATION_KEYS = {"shard_min_samples": "chunk_min_samples", "max_shards": "max_chunks"}


def normalize(data: dict[str, Any], config_path: Path, search_roots: Sequence[Path]) -> tuple[dict[str, Any], list[str]]:
    """Seed keys -> their meaning here (in place on a copy); returns the data and the
    notes on keys accepted but ignored. Refusals raise ConfigError."""
    import copy

    data = copy.deepcopy(data)
    notes: list[str] = []

    found, codebase = _pop(data, "codebase_config")
    if found:
        _note(notes, "codebase_config", codebase, "the project adapter (`project`) decides which code builds "
                                                  "and runs the model")
    if not data.get("project"):
        data["project"] = infer_project(data, config_path, search_roots,
                                        codebase.get("type") if isinstance(codebase, Mapping) else None)

    onnx = data.get("onnx_config")
    found, value = _pop(onnx, "type")
    if found and value != "onnx":
        raise ConfigError("onnx_config.type", value, "'onnx' (the only format onnx_config describes)")
    found, value = _pop(onnx, "export_params")
    if found and value is not True:
        raise ConfigError("onnx_config.export_params", value, "True: the harness always stores the weights in "
                                                              "the ONNX file it verifies")
    found, value = _pop(onnx, "keep_initializers_as_inputs")
    if found and value is not False:
        raise ConfigError("onnx_config.keep_initializers_as_inputs", value,
                          "False: the harness exports weights as initializers, not graph inputs")

    _typed_exporter_keys(data)

    found, value = _pop(data.get("backend_config"), "type")
    if found and value != "tensorrt":
        raise ConfigError("backend_config.type", value, "'tensorrt' (the only backend backend_config configures)")

    aliases = {**(data.get("devices") or {}), **((data.get("verification") or {}).get("devices") or {})}
    scenarios = (data.get("verification") or {}).get("scenarios") or {}
    if isinstance(scenarios, dict):
        for items in scenarios.values():
            for sc in items if isinstance(items, list) else []:
                if isinstance(sc, dict):
                    for side in ("ref_device", "test_device"):
                        if side in sc:
                            sc[side] = _alias(sc[side], aliases)

    evaluation = data.get("evaluation")
    for old_key, new_key in RENAMED_EVALUATION_KEYS.items():  # earlier names of this harness's own keys
        found, value = _pop(evaluation, old_key)
        if found:
            evaluation.setdefault(new_key, value)  # type: ignore[union-attr]
            notes.append(f"evaluation.{old_key}={value!r} is read as evaluation.{new_key} (renamed: a chunk of an "
                         "evaluation is not a --awml-shard split)")

    export = data.setdefault("export", {}) if isinstance(data.get("export", {}), dict) else {}
    mode = export.get("mode", "onnx")
    backends = (data.get("evaluation") or {}).get("backends") or {}
    for name, be in backends.items() if isinstance(backends, dict) else []:
        if not isinstance(be, dict):
            continue
        if "device" in be:
            be["device"] = _alias(be["device"], aliases)
        found, model_dir = _pop(be, "model_dir")
        if found and model_dir is not None:
            key = f"evaluation.backends.{name}.model_dir"
            if mode in ("none", "trt") and export.get("onnx_path") is None:
                export["onnx_path"] = model_dir
                notes.append(f"{key}={model_dir!r} is used as export.onnx_path (export.mode={mode!r})")
            else:
                _note(notes, key, model_dir, "the harness runs the ONNX it exported (cached under export.work_dir)"
                      if mode in ("onnx", "both") else "export.onnx_path is already set")
        found, engine_dir = _pop(be, "engine_dir")
        if found and engine_dir is not None:
            _note(notes, f"evaluation.backends.{name}.engine_dir", engine_dir,
                  "TensorRT engines are built from the ONNX and cached under export.work_dir; prebuilt engine "
                  "files are not loaded")
    return data, notes


def _typed_exporter_keys(data: dict[str, Any]) -> None:
    """The seed document's typed exporter configs, written as dicts: `onnx_config`'s
    `input_names` / `output_names` (declared graph I/O, checked by test_export like
    model_io's) and `batch_size` (= model_io.batch_size), and a top-level `trt_config`
    (= backend_config: precision_policy, max_workspace_size, model_inputs)."""
    onnx = data.get("onnx_config")
    model_io = data.setdefault("model_io", {}) if isinstance(data.get("model_io", {}), dict) else None
    if isinstance(onnx, dict) and model_io is not None:
        found, names = _pop(onnx, "input_names")
        if found:
            listed = {(spec.get("name") if isinstance(spec, Mapping) else spec)
                      for spec in model_io.get("additional_inputs", [])}
            extra = [dict(name=n) for n in ([names] if isinstance(names, str) else list(names)) if n not in listed]
            model_io["additional_inputs"] = [*model_io.get("additional_inputs", []), *extra]
        found, names = _pop(onnx, "output_names")
        if found:
            have = list(model_io.get("additional_outputs", []))
            model_io["additional_outputs"] = have + [n for n in ([names] if isinstance(names, str) else names)
                                                     if n not in have]
        found, batch = _pop(onnx, "batch_size")
        if found:
            if "batch_size" in model_io and model_io["batch_size"] != batch:
                raise ConfigError("onnx_config.batch_size", batch,
                                  f"the same value as model_io.batch_size ({model_io['batch_size']!r}) or unset")
            model_io["batch_size"] = batch
    trt = data.pop("trt_config", None)
    if trt is None:
        return
    if not isinstance(trt, Mapping):
        raise ConfigError("trt_config", trt, "a dict (precision_policy, max_workspace_size, model_inputs)")
    backend = data.setdefault("backend_config", {})
    common = backend.setdefault("common_config", {})
    for k, v in trt.items():
        target, key = (backend, "model_inputs") if k == "model_inputs" else (common, k)
        if key in target and target[key] != v:
            raise ConfigError(f"trt_config.{k}", v, f"the value backend_config gives ({target[key]!r}) or unset")
        target[key] = v


def infer_project(data: Mapping[str, Any], config_path: Path, search_roots: Sequence[Path],
                  codebase: str | None = None) -> str:
    """`projects/<Name>/...` in the model config's path, then in the deploy config's,
    naming a project the lookup rule finds; else the one project under the search roots
    whose adapter declares `codebase` (codebase_config.type) and the config's task_type."""
    from awml_harness.project import find_project_dir

    tried: list[str] = []
    candidates: list[tuple[str, str]] = []
    model_cfg = data.get("model_cfg")
    if isinstance(model_cfg, Mapping):
        model_cfg = model_cfg.get("openmmlab")
    for where, path in (("model_cfg", model_cfg), ("the deploy config", str(config_path))):
        if isinstance(path, (str, Path)):
            for match in _PROJECT_IN_PATH.finditer(Path(path).as_posix()):
                candidates.append((where, match.group(1)))
    for where, name in candidates:
        if find_project_dir(name, search_roots) is not None:
            return name
        tried.append(f"{name!r} (from {where})")
    if codebase:
        matches = sorted(_projects_with_codebase(codebase, data.get("task_type"), search_roots))
        if len(matches) == 1:
            return matches[0]
        tried.append(f"codebase_config.type={codebase!r} with task_type={data.get('task_type')!r} "
                     f"({'matches ' + ', '.join(matches) if matches else 'matches no project'})")
    raise ConfigError("project", None, "the name of a project (projects/<Name>/project.py) or 'package.module:Class'; "
                                       "it could not be inferred: " + (
                                           f"no project folder for {', '.join(tried)}" if tried else
                                           "neither model_cfg nor the deploy config lies under projects/<Name>/"))


def _projects_with_codebase(codebase: str, task_type: Any, search_roots: Sequence[Path]) -> set[str]:
    from awml_harness.project import load_project_class

    seen: set[Path] = set()
    names: set[str] = set()
    for start in search_roots:
        for folder in (start, *start.parents):
            for project_py in sorted((folder / "projects").glob("*/project.py")):
                folder_of = project_py.parent.resolve()
                if folder_of in seen:
                    continue
                seen.add(folder_of)
                try:
                    cls = load_project_class(str(folder_of))
                except Exception:  # a broken neighbour is not this config's problem
                    continue
                if getattr(cls, "codebase", None) == codebase and task_type in (None, cls.task_type):
                    names.add(folder_of.name)
    return names


def warn_ignored(notes: Sequence[str], source: str) -> None:
    for note in notes:
        warnings.warn(IgnoredConfigKey(f"{source}: {note}"), stacklevel=3)


# -- model_io: the PyTorch model's names -> the exported graphs' ------------------------------
def model_io_onto_graphs(model_io: Any, adapter: type) -> tuple[Any, list[str]]:
    """`model_io` as the graphs see it, and the notes on what changed.

    The seed writes `model_io` for the PyTorch model; a project whose graphs see other
    tensors declares the difference (`ProjectAdapter.model_io_aliases`,
    `model_io_pipeline_tensors`). An aliased name is checked by test_export under the graph
    tensor's name; a pipeline tensor is dropped (with the input shape and dtype or output
    shape that describe it) and reported as ignored with the project's reason. Any other
    name is left as written, so a typo still fails test_export by name."""

    aliases: Mapping[str, str] = getattr(adapter, "model_io_aliases", {}) or {}
    pipeline: Mapping[str, str] = getattr(adapter, "model_io_pipeline_tensors", {}) or {}
    if not aliases and not pipeline:
        return model_io, []
    project = getattr(adapter, "name", adapter.__name__)
    notes: list[str] = []

    def ignored(key: str, name: str, extra: str = "", value: Any = None) -> None:
        _note(notes, key, name if value is None else value,
              f"{name!r} is {project}'s pipeline tensor, not a graph input/output: {pipeline[name]}{extra}")

    def renamed(key: str, name: str) -> str:
        notes.append(f"{key}={name!r} is checked as graph tensor {aliases[name]!r} ({project}'s name for it)")
        return aliases[name]

    changes: dict[str, Any] = {}
    io = model_io
    if io.input_name in pipeline:
        ignored("model_io.input_name", io.input_name,
                "; its input_shape/input_dtype go with it" if io.input_shape is not None else "")
        changes.update(input_name=None, input_shape=None, input_dtype="float32")
    elif io.input_name in aliases:
        changes["input_name"] = renamed("model_io.input_name", io.input_name)
    if io.output_name in pipeline:
        ignored("model_io.output_name", io.output_name,
                "; its output_shape goes with it" if io.output_shape is not None else "")
        changes.update(output_name=None, output_shape=None)
    elif io.output_name in aliases:
        changes["output_name"] = renamed("model_io.output_name", io.output_name)

    inputs = []
    for i, spec in enumerate(io.additional_inputs):
        key = f"model_io.additional_inputs[{i}].name"
        if spec.name in pipeline:
            ignored(key, spec.name)
        elif spec.name in aliases:
            inputs.append(dataclasses.replace(spec, name=renamed(key, spec.name)))
        else:
            inputs.append(spec)
    outputs = []
    for i, name in enumerate(io.additional_outputs):
        key = f"model_io.additional_outputs[{i}]"
        if name in pipeline:
            ignored(key, name)
        elif name in aliases:
            outputs.append(renamed(key, name))
        else:
            outputs.append(name)
    axes = {}
    for name, spec in io.dynamic_axes.items():
        if name in pipeline:
            ignored(f"model_io.dynamic_axes.{name}", name, value=dict(spec))
        else:
            axes[renamed(f"model_io.dynamic_axes.{name}", name) if name in aliases else name] = spec
    changes.update(additional_inputs=tuple(inputs), additional_outputs=tuple(outputs), dynamic_axes=axes)
    return dataclasses.replace(io, **changes), notes
