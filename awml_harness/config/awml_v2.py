"""AWML's new deployment framework's deploy configs (tier4/AWML PR 115), read unchanged.

The framework (branch feat/new_deployment_and_evaluation_pipeline, newest commit
f2e5a945) reads its deploy config with `mmengine.Config` and ignores every key it does
not know, without a message. Its configs came in two shapes, told apart here by shape
alone (:func:`form`):

- `components` (PR 161 lineage, #180, #181, f2e5a945): a top-level `components` section
  (one entry per graph: ONNX/engine file, I/O names, dynamic axes, TensorRT profile),
  `tensorrt_config`, `deploy_log_path`, and `task_type` until #181;
- `backend_config` (PR 141 / #137 / #160): the seed's `backend_config` + `model_io`,
  with `model_io.head_output_names` and `onnx_config.components`.

Both shapes share the framework's defaults, which hold here when a file has that shape
(the harness's own defaults hold for every other form): `export.mode` "both" (stripped
and lower-cased), `evaluation.enabled` False, `evaluation.num_samples` 10, each
`evaluation.backends.<b>.enabled` False, `verification.tolerance` 0.1 (an absolute bound,
like every `tolerance`, see verification/tolerance.py).

==========================================  ===============================================
key                                         here
==========================================  ===============================================
`task_type` (absent, #181 on)               the project's task type
`components.<id>` (`name` = the graph,      the graph `<id>` (or `name`); an id naming no
else the id)                                graph of the project is a ConfigError
`components.<id>.io.inputs[].name`          model_io.additional_inputs (test_export checks)
`components.<id>.io.outputs[].name`         model_io.additional_outputs
`components.<id>.io.dynamic_axes`           model_io.dynamic_axes (a project whose graphs
                                            fix their own axes reports them as ignored)
`components.<id>.tensorrt_profile.<input>`  backend_config.model_inputs[0].input_shapes;
                                            the project maps axes it derives from settings
                                            (CenterPoint's voxel axis) onto its settings
`components.<id>.onnx_file/engine_file`,    ignored, with the reason
`….io.*.dtype`, `onnx_config.components`
`model_io.head_output_names`                model_io.additional_outputs
`tensorrt_config`                           = backend_config.common_config
`runtime_io.info_file` (components shape)   relative: against the model config's test
                                            dataset `data_root` (as mmengine joins
                                            `ann_file`), which becomes runtime_io.data_root
`export.onnx_path` with mode onnx/both      ignored (upstream's fallback only)
`deploy_log_path`                           ignored: pytest's `--log-file` is the log file
`evaluation.models`, `evaluation.devices`   ignored (upstream parses `devices`, never uses it)
`evaluation.backends.<B>` (any case)        the lower-case backend; a TensorRT backend
                                            without a CUDA device gets `devices.cuda`
`evaluation.reference` (absent)             pytorch if enabled, else the first enabled
==========================================  ===============================================

Everything else (`devices`, `verification.devices` as device aliases, `model_dir`,
`engine_dir`, `onnx_config.export_params`, ...) goes on to the seed normaliser
(config/seed.py), which reads those keys in every form.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from awml_harness.config.errors import ConfigError
from awml_harness.config.seed import _note, _pop

COMPONENTS = "components"
BACKEND_CONFIG = "backend_config"
#: upstream's BaseDeploymentConfig defaults (deployment/configs/base.py @f2e5a945, and
#: deployment/core/config/base_config.py @cf73a986 for the backend_config shape)
EXPORT_MODE = "both"
NUM_SAMPLES = 10
TOLERANCE = 0.1
DEFAULT_CUDA = "cuda:0"


def form(data: Mapping[str, Any]) -> str | None:
    """`"components"`, `"backend_config"` (the two shapes of the new framework) or None."""
    if any(k in data for k in (COMPONENTS, "tensorrt_config", "deploy_log_path")):
        return COMPONENTS
    onnx, io = data.get("onnx_config"), data.get("model_io")
    if (isinstance(onnx, Mapping) and COMPONENTS in onnx) or (isinstance(io, Mapping) and "head_output_names" in io):
        return BACKEND_CONFIG
    return None


@dataclass(frozen=True)
class Normalized:
    data: dict[str, Any]
    notes: list[str]
    form: str | None
    #: component id -> the graph it configures (checked against the project's graphs)
    components: Mapping[str, str] = field(default_factory=dict)


def normalize(data: dict[str, Any], config_dir: Path) -> Normalized:
    """New-framework keys -> the seed/harness keys (in place on `data`, a copy the loader
    owns); the notes name every key accepted but ignored. Other forms pass through."""
    shape = form(data)
    if shape is None:
        return Normalized(data, [], None)
    notes: list[str] = []
    components: dict[str, str] = {}
    if shape == COMPONENTS:
        components = _components(data, notes)
        _tensorrt_config(data)
        _info_file(data, config_dir, notes)
        found, log = _pop(data, "deploy_log_path")
        if found:
            _note(notes, "deploy_log_path", log, "the harness logs through pytest: pytest's --log-file PATH "
                                                 "(with --log-file-level) writes the run's log to a file")
    else:
        components = _onnx_config_components(data, notes)
        io = data.get("model_io")
        found, heads = _pop(io, "head_output_names")
        if found:
            have = list(io.get("additional_outputs", []))  # type: ignore[union-attr]
            io["additional_outputs"] = have + [n for n in heads if n not in have]  # type: ignore[index]
    _export(data, notes)
    _evaluation(data, notes)
    verification = data.setdefault("verification", {}) if isinstance(data.get("verification", {}), dict) else None
    if verification is not None:
        verification.setdefault("tolerance", TOLERANCE)
    return Normalized(data, notes, shape, components)


# -- sections -----------------------------------------------------------------------------------
def _mapping(value: Any, key: str, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(key, value, what)
    return value


def _components(data: dict[str, Any], notes: list[str]) -> dict[str, str]:
    """`components` -> model_io names and axes, backend_config profiles; id -> graph."""
    found, raw = _pop(data, COMPONENTS)
    if not found:
        return {}
    comps = _mapping(raw, COMPONENTS, "a dict: component id -> dict(onnx_file, engine_file, io, tensorrt_profile)")
    io = data.setdefault("model_io", {})
    if not isinstance(io, dict):
        raise ConfigError("model_io", io, "a dict")
    found_profiles: list[tuple[str, str, Any]] = []
    graphs: dict[str, str] = {}
    for cid, comp in comps.items():
        key = f"{COMPONENTS}.{cid}"
        comp = _mapping(comp, key, "a dict(onnx_file, engine_file, io, tensorrt_profile)")
        graph = comp.pop("name", None) or cid
        if not isinstance(graph, str):
            raise ConfigError(f"{key}.name", graph, "the name of a graph (a string)")
        graphs[str(cid)] = graph
        files = {name: comp.pop(name) for name in ("onnx_file", "engine_file") if name in comp}
        if files:
            _note(notes, f"{key}.{'/'.join(files)}", files, "the harness names its files after the graph "
                  f"({graph}.onnx, engines per device) in the artifact cache under export.work_dir")
        spec = _mapping(comp.pop("io", None), f"{key}.io", "a dict(inputs, outputs, dynamic_axes)")
        for side, target in (("inputs", "additional_inputs"), ("outputs", "additional_outputs")):
            entries = spec.pop(side, None) or []
            if not isinstance(entries, (list, tuple)):
                raise ConfigError(f"{key}.io.{side}", entries, "a list of dict(name=..., dtype=...)")
            names, dtypes = [], {}
            for i, entry in enumerate(entries):
                entry = _mapping(entry, f"{key}.io.{side}[{i}]", "a dict(name=..., dtype=...)")
                if not isinstance(entry.get("name"), str) or not entry["name"]:
                    raise ConfigError(f"{key}.io.{side}[{i}].name", entry.get("name"), "a tensor name")
                names.append(entry["name"])
                if "dtype" in entry:
                    dtypes[entry["name"]] = entry["dtype"]
            if dtypes:
                _note(notes, f"{key}.io.{side}[*].dtype", dtypes, "the graph's traced dtype is what the file "
                      "holds (upstream parses this key and never uses it either)")
            have = list(io.get(target, []))
            listed = {(e.get("name") if isinstance(e, Mapping) else e) for e in have}
            io[target] = have + [(dict(name=n) if side == "inputs" else n) for n in names if n not in listed]
        axes = _mapping(spec.pop("dynamic_axes", None), f"{key}.io.dynamic_axes", "a dict: tensor -> {axis: name}")
        io.setdefault("dynamic_axes", {}).update(axes)
        _unknown(spec, f"{key}.io", notes)
        for input_name, prof in _mapping(comp.pop("tensorrt_profile", None), f"{key}.tensorrt_profile",
                                         "a dict: input -> dict(min_shape, opt_shape, max_shape)").items():
            found_profiles.append((graph, str(input_name), prof))
        _unknown(comp, key, notes)
    shared = {n for g, n, _ in found_profiles if sum(1 for _, m, _ in found_profiles if m == n) > 1}
    # an input name two graphs share is written `<graph>.<input>` (graph.profile_input's second form)
    profiles = {(f"{g}.{n}" if n in shared else n): prof for g, n, prof in found_profiles}
    if profiles:
        backend = data.setdefault(BACKEND_CONFIG, {})
        inputs = backend.setdefault("model_inputs", [])
        if inputs:
            raise ConfigError(f"{COMPONENTS}.*.tensorrt_profile", sorted(profiles),
                              "profiles in one place: components.*.tensorrt_profile or backend_config.model_inputs")
        inputs.append(dict(input_shapes=profiles))
    return graphs


def _onnx_config_components(data: dict[str, Any], notes: list[str]) -> dict[str, str]:
    """The backend_config shape's `onnx_config.components` (file names only)."""
    onnx = data.get("onnx_config")
    found, raw = _pop(onnx, COMPONENTS)
    if not found:
        return {}
    graphs = {}
    for cid, comp in _mapping(raw, f"onnx_config.{COMPONENTS}", "a dict: id -> dict(name, onnx_file, engine_file)").items():
        comp = _mapping(comp, f"onnx_config.{COMPONENTS}.{cid}", "a dict(name, onnx_file, engine_file)")
        graphs[str(cid)] = comp.get("name") or cid
        files = {k: comp[k] for k in ("onnx_file", "engine_file") if k in comp}
        if files:
            _note(notes, f"onnx_config.{COMPONENTS}.{cid}", files, "the harness names its files after the graph "
                  f"({graphs[str(cid)]}.onnx) in the artifact cache under export.work_dir")
    return graphs


def _unknown(section: Mapping[str, Any], key: str, notes: list[str]) -> None:
    for k, v in section.items():
        _note(notes, f"{key}.{k}", v, "not a key of the new framework's components (upstream ignores it too)")


def _tensorrt_config(data: dict[str, Any]) -> None:
    found, trt = _pop(data, "tensorrt_config")
    if not found:
        return
    if "trt_config" in data:
        raise ConfigError("tensorrt_config", trt, "one of tensorrt_config / trt_config (the same section)")
    data["trt_config"] = {} if trt is None else trt


def _info_file(data: dict[str, Any], config_dir: Path, notes: list[str]) -> None:
    """A relative `runtime_io.info_file` is upstream's `ann_file`, joined by mmengine with
    the model config's test dataset `data_root`; that folder holds the point files too."""
    runtime = data.get("runtime_io")
    if not isinstance(runtime, dict):
        return
    info = runtime.get("info_file")
    if isinstance(info, str) and not info.strip():
        runtime.pop("info_file")  # upstream's default "": no info file
        notes.append("runtime_io.info_file='' is read as no info file (upstream's default)")
        return
    if not isinstance(info, (str, Path)) or Path(info).is_absolute():
        return
    root = model_data_root(data.get("model_cfg"), config_dir)
    if root is None:
        return
    runtime["info_file"] = str(Path(root) / info)
    runtime.setdefault("data_root", str(root))


def model_data_root(model_cfg: Any, config_dir: Path) -> str | None:
    """`test_dataloader.dataset.data_root` (else the top-level `data_root`) of an
    OpenMMLab model config named by path or `dict(openmmlab=path)`; None otherwise."""
    path = model_cfg.get("openmmlab") if isinstance(model_cfg, Mapping) else model_cfg
    if not isinstance(path, (str, Path)) or Path(path).suffix != ".py":
        return None
    path = Path(path) if Path(path).is_absolute() else config_dir / path
    from awml_harness.config.openmmlab_read import read_model_config

    model = read_model_config(path)
    dataset = (model.get("test_dataloader") or {}).get("dataset") or {}
    root = dataset.get("data_root", model.get("data_root")) if isinstance(dataset, Mapping) else model.get("data_root")
    return str(root) if isinstance(root, (str, Path)) and str(root) else None


def _export(data: dict[str, Any], notes: list[str]) -> None:
    export = data.setdefault("export", {})
    if export is None:
        export = data["export"] = {}
    export = _mapping(export, "export", "a dict(mode, work_dir, onnx_path)")
    mode = export.get("mode")
    mode = EXPORT_MODE if mode is None else (mode.strip().lower() if isinstance(mode, str) else mode)
    export["mode"] = mode
    if mode in ("onnx", "both") and export.get("onnx_path") is not None:
        _note(notes, "export.onnx_path", export.pop("onnx_path"), f"export.mode={mode!r} exports the ONNX it "
              "runs (upstream reads onnx_path only as a fallback); give it with mode 'trt' or 'none'")


def _evaluation(data: dict[str, Any], notes: list[str]) -> None:
    evaluation = data.setdefault("evaluation", {})
    if evaluation is None:
        evaluation = data["evaluation"] = {}
    evaluation = _mapping(evaluation, "evaluation", "a dict(enabled, num_samples, backends, ...)")
    evaluation.setdefault("enabled", False)
    evaluation.setdefault("num_samples", NUM_SAMPLES)
    for key in ("models", "devices"):
        found, value = _pop(evaluation, key)
        if found:
            _note(notes, f"evaluation.{key}", value, "the harness evaluates the artifacts it exported (a given ONNX: "
                  "export.mode='none' with export.onnx_path)" if key == "models" else
                  "upstream parses it and never uses it; each backend's `device` says where it runs")
    raw = _mapping(evaluation.get("backends"), "evaluation.backends", "a dict: backend -> dict(enabled, device)")
    devices = data.get("devices") if isinstance(data.get("devices"), Mapping) else {}
    cuda = devices.get("cuda") or DEFAULT_CUDA  # type: ignore[union-attr]
    backends: dict[str, Any] = {}
    for name, be in raw.items():
        be = _mapping(be, f"evaluation.backends.{name}", "a dict(enabled, device)")
        be.setdefault("enabled", False)
        lower = name.lower() if isinstance(name, str) else name
        if lower == "tensorrt":
            if be.get("device") in (None, "cpu", devices.get("cpu")):  # type: ignore[union-attr]
                if be.get("device") is not None:
                    notes.append(f"evaluation.backends.{name}.device={be['device']!r} is read as {cuda!r}: "
                                 "TensorRT runs on CUDA (devices.cuda), as upstream switches it")
                be["device"] = cuda
        backends[lower] = be
    evaluation["backends"] = backends
    if evaluation["enabled"] and not any(be.get("enabled") for be in backends.values()):
        notes.append("evaluation.enabled=True is read as False: no evaluation backend has enabled=True "
                     "(upstream evaluates nothing either)")
        evaluation["enabled"] = False
    evaluation.setdefault("latency", bool(evaluation["enabled"]))  # upstream times backends as part of evaluation
    if "reference" not in evaluation and backends:
        enabled = [n for n, be in backends.items() if be.get("enabled")]
        evaluation["reference"] = "pytorch" if "pytorch" in enabled else (enabled or list(backends))[0]


def check_components(components: Mapping[str, str], graphs: tuple[str, ...], project: str) -> None:
    """Every component must configure one of the project's graphs."""
    for cid, graph in components.items():
        if graph not in graphs:
            key = f"{COMPONENTS}.{cid}" + (".name" if graph != cid else "")
            raise ConfigError(key, graph, f"a graph of project {project}: {list(graphs)}")
