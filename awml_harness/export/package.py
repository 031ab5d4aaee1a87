"""The Autoware package of one config: its ONNX files, the parameter files the model's
ROS node reads, and `deploy_metadata.yaml`, in one folder.

The project derives the parameter files from its settings (`ProjectAdapter.autoware_package`);
`package.params` of the deploy config writes values over them (node choices the model
does not decide: TensorRT precision, score thresholds). The folder is an artifact of the
run's ArtifactStore, built in a temporary folder and renamed into place, keyed by what
decides its bytes (the ONNX artifacts' keys, the settings, `package.params`, the
project's and this module's code), so a warm run reuses it and an edit rebuilds it.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from awml_harness.autoware import METADATA_FILE, dump_params, plain, read_params, set_key
from awml_harness.config.schema import check_file_name
from awml_harness.export.onnx import ExportError

PACKAGE_FORMAT = 1  # bump when what this module writes changes


def onnx_names(cfg: Any, graph_names: tuple[str, ...]) -> dict[str, str]:
    """The file name of each graph in the package: `<graph>.onnx` for a project of several
    graphs, `onnx_config.save_file` for one (the names the export writes)."""
    if len(graph_names) == 1:
        return {graph_names[0]: cfg.onnx_config.save_file}
    return {g: f"{g}.onnx" for g in graph_names}


def build(adapter: Any, onnx: Mapping[str, Any], folder: Path, metadata: Mapping[str, Any]) -> str:
    """Write the package into `folder` (the store's build folder); returns the main file."""
    cfg = adapter.cfg
    names = onnx_names(cfg, tuple(onnx))
    for graph, art in onnx.items():
        shutil.copyfile(art.path, folder / names[graph])
    files = dict(adapter.autoware_package({g: folder / names[g] for g in onnx}) or {})
    if METADATA_FILE in files:
        raise ExportError(f"{type(adapter).__name__}.autoware_package wrote {METADATA_FILE}, which the harness writes")
    for file, params in cfg.package.params.items():
        if file not in files:
            raise ExportError(f"package.params names {file!r}, which the package does not have: {sorted(files)}")
        files[file] = _with_params(file, files[file], params)
    for file, text in files.items():
        check_file_name(file, f"package file {file!r}")
        (folder / file).write_text(text)
    from awml_harness.export.store import file_sha256

    meta = {**metadata, **plain(adapter.autoware_metadata()), "onnx": {names[g]: file_sha256(folder / names[g]) for g in onnx},
            "files": {f: file_sha256(folder / f) for f in sorted(files)}}
    (folder / METADATA_FILE).write_text(_metadata_yaml(meta))
    return METADATA_FILE


def _with_params(file: str, text: str, params: Mapping[str, Any]) -> str:
    """`text` (a YAML parameter file) with `params` (dotted keys) written over it."""
    if not file.endswith((".yaml", ".yml")):
        raise ExportError(f"package.params[{file!r}]: only YAML parameter files take parameter values")
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / file
        path.write_text(text)
        values = read_params(path)
    for key, value in params.items():
        set_key(values, key, value)
    header = [line[1:].strip() for line in text.splitlines() if line.startswith("#")]
    return dump_params(values, header=[*header, f"values of {sorted(params)} set by the deploy config's package.params"])


def _metadata_yaml(meta: Mapping[str, Any]) -> str:
    """`deploy_metadata.yaml`: what made the package. Autoware reads no key of it that the
    model decides (AWML's releases and Autoware's bundles carry one, content unspecified)."""
    import yaml

    return ("# written by awml-harness: what this package was made from\n"
            + yaml.safe_dump(dict(meta), sort_keys=False, default_flow_style=False))
