"""Golden outputs: reference outputs stored per sample, compared against later.

`--awml-save-golden DIR` stores what each verification reference produced; a later
run with `--awml-golden DIR` adds scenarios that compare today's test backend with
those files, so a new exporter or runtime version is caught even on a machine that
cannot run the reference (no PyTorch checkpoint, no GPU). Files are `.npz` keyed by
output path, written temp-then-rename.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


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


def save(root: Path, config_id: str, ref_label: str, index: int, outputs: Any, sample_id: str) -> Path:
    path = golden_path(root, config_id, ref_label, index)
    path.parent.mkdir(parents=True, exist_ok=True)
    flat = flatten(outputs)
    from awml_harness.atomic import atomic_open

    with atomic_open(path, "wb") as fh:
        np.savez(fh, __sample_id__=np.asarray(sample_id), __paths__=np.asarray(list(flat.keys())),
                 **{f"o{i}": v for i, v in enumerate(flat.values())})
    return path


def load(root: Path, config_id: str, ref_label: str, index: int) -> tuple[dict[str, np.ndarray], str]:
    path = golden_path(root, config_id, ref_label, index)
    if not path.is_file():
        raise FileNotFoundError(f"no golden outputs at {path}; record them with --awml-save-golden {root}")
    with np.load(path, allow_pickle=False) as data:
        paths = [str(p) for p in data["__paths__"]]
        return {p: data[f"o{i}"] for i, p in enumerate(paths)}, str(data["__sample_id__"])
