"""Golden outputs: reference outputs stored per sample, compared against later.

`--awml-save-golden DIR` stores what each verification reference produced; a later
run with `--awml-golden DIR` adds scenarios that compare today's test backend with
those files, so a new exporter or runtime version is caught even on a machine that
cannot run the reference (no PyTorch checkpoint, no GPU). Files are `.npz` keyed by
output path, written temp-then-rename.

Each file also records its provenance (`provenance()`): the digest of the config
sections that decide the reference outputs, the checkpoint's digest, the tool versions
and the sample id. When a later comparison fails, `what_changed()` names what differs
from then (config digest, checkpoint, torch version, sample, ...), so a config change
reads as one, not as a bare shape or value mismatch.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig


def flatten(outputs: Any, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested outputs -> {path: array}; paths as compare() names them."""
    out: dict[str, np.ndarray] = {}
    if isinstance(outputs, Mapping):
        for k, v in outputs.items():
            out.update(flatten(v, f"{prefix}/{k}" if prefix else str(k)))
    elif isinstance(outputs, (list, tuple)):
        for i, v in enumerate(outputs):
            out.update(flatten(v, f"{prefix}[{i}]"))
    else:
        out[prefix or "<root>"] = np.asarray(outputs)
    return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def golden_path(root: Path, config_id: str, ref_label: str, index: int) -> Path:
    return Path(root) / _safe(config_id) / _safe(ref_label) / f"s{index}.npz"


# tool distributions whose version can change a reference's outputs; onnxruntime is
# whichever flavour is installed (they install the same module)
_TOOLS = (("torch", ("torch",)), ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")), ("onnx", ("onnx",)),
          ("numpy", ("numpy",)), ("tensorrt", ("tensorrt",)), ("awml-harness", ("awml-harness",)))


def tool_versions() -> dict[str, str]:
    """Installed versions from package metadata (imports nothing heavy); `python` too."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": ".".join(map(str, sys.version_info[:3]))}
    for label, dists in _TOOLS:
        for dist in dists:
            try:
                out[label] = version(dist)
                break
            except PackageNotFoundError:
                continue
    if "awml-harness" not in out:  # run from a checkout without an install
        from awml_harness import __version__

        out["awml-harness"] = f"{__version__} (source)"
    return out


def config_digest(cfg: DeployConfig) -> str:
    """Digest of what decides a reference's outputs besides weights and tools: the model
    settings (model_cfg), runtime_io (inputs, sample selection) and model_io. Paths such
    as work_dir do not enter it."""
    from awml_harness.config.validation import to_builtin
    from awml_harness.export.store import digest

    data = {"model": to_builtin(cfg.model_settings if cfg.model_settings is not None else cfg.model_cfg),
            "runtime_io": to_builtin(cfg.runtime_io), "model_io": to_builtin(cfg.model_io)}
    return digest(data)[:16]


def provenance(cfg: DeployConfig, checkpoint_digest: str, sample_id: str, ref_label: str) -> dict[str, Any]:
    return {"config_digest": config_digest(cfg), "checkpoint": checkpoint_digest[:16], "sample_id": sample_id,
            "reference": ref_label, "tools": tool_versions()}


_NAMES = {"config_digest": "config digest (model_cfg, runtime_io, model_io)", "checkpoint": "checkpoint digest",
          "sample_id": "sample id", "reference": "reference backend"}


def what_changed(saved: Mapping[str, Any], now: Mapping[str, Any]) -> list[str]:
    """One phrase per difference between the provenance a golden file recorded and now's,
    e.g. "torch version differs (golden 2.12.0, now 2.13.0)"."""
    if not saved:
        return ["the golden file records no provenance (saved by an older awml-harness): re-record it "
                "with --awml-save-golden to see what changed next time"]
    out = []
    for key, label in _NAMES.items():
        if key in saved and saved[key] != now.get(key):
            out.append(f"{label} differs (golden {saved[key]!r}, now {now.get(key)!r})")
    old_tools, new_tools = saved.get("tools", {}), now.get("tools", {})
    for tool in dict.fromkeys([*old_tools, *new_tools]):
        if old_tools.get(tool) != new_tools.get(tool):
            out.append(f"{tool} version differs (golden {old_tools.get(tool) or 'not installed'}, "
                       f"now {new_tools.get(tool) or 'not installed'})")
    return out


def save(root: Path, config_id: str, ref_label: str, index: int, outputs: Any, sample_id: str,
         meta: Mapping[str, Any] | None = None) -> Path:
    """Store one sample's reference outputs, with `meta` (provenance()) beside them."""
    path = golden_path(root, config_id, ref_label, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = flatten(outputs)
    from awml_harness.atomic import atomic_open

    with atomic_open(path, "wb") as fh:
        np.savez(fh, __sample_id__=np.asarray(sample_id), __paths__=np.asarray(list(flat.keys())),
                 __provenance__=np.asarray(json.dumps(dict(meta or {}), sort_keys=True)),
                 **{f"o{i}": v for i, v in enumerate(flat.values())})
    return path


def load(root: Path, config_id: str, ref_label: str, index: int) -> tuple[dict[str, np.ndarray], str]:
    path = golden_path(root, config_id, ref_label, index)
    if not path.is_file():
        raise FileNotFoundError(f"no golden outputs at {path}; record them with --awml-save-golden {root}")
    with np.load(path, allow_pickle=False) as data:
        paths = [str(p) for p in data["__paths__"]]
        return {p: data[f"o{i}"] for i, p in enumerate(paths)}, str(data["__sample_id__"])


def load_provenance(root: Path, config_id: str, ref_label: str, index: int) -> dict[str, Any]:
    """What the golden file recorded about its making ({} for files saved before provenance)."""
    with np.load(golden_path(root, config_id, ref_label, index), allow_pickle=False) as data:
        if "__provenance__" not in data.files:
            return {}
        return dict(json.loads(str(data["__provenance__"])))
