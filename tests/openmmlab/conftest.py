"""Fixtures of the OpenMMLab interop tests (helpers live in mm_helpers.py).

Two things happen before any test module here imports OpenMMLab:

- `AWML_REQUIRE_MM=1` (set by `.ci/run`'s parity stage) turns a missing [mm] package into
  a usage error, so that stage can never pass by skipping every parity test.
- PyPI's torchvision wheel is built against the CUDA torch; beside the CPU torch its C
  extension does not load, and then its import stops while registering fake kernels for
  ops whose schemas that extension would have declared. mmpretrain imports torchvision at
  module level but the parity tests never call a torchvision op, so when (and only when)
  the extension cannot load, the two schemas are declared here and the import goes on;
  calling those ops would still fail loudly (no kernel).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest


def _declare_torchvision_schemas_if_its_extension_cannot_load() -> None:
    spec = importlib.util.find_spec("torchvision")
    if spec is None or spec.origin is None:
        return
    folder = Path(spec.origin).parent
    libs = sorted(folder.glob("_C*.so"))
    if not libs:
        return
    import torch

    try:
        torch.ops.load_library(str(libs[0]))
    except OSError:
        lib = torch.library.Library("torchvision", "DEF")  # noqa: F841 - kept alive by the registry
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(lib)


_KEEP: list = []

if importlib.util.find_spec("mmcv") is not None:
    _declare_torchvision_schemas_if_its_extension_cannot_load()

if os.environ.get("AWML_REQUIRE_MM"):
    from awml_harness.openmmlab import missing_packages

    _missing = missing_packages("mmcv.ops", "mmdet.models", "mmdet3d.models", "mmpretrain.models")
    if _missing:
        raise pytest.UsageError("AWML_REQUIRE_MM is set but the [mm] stack does not import: " + "; ".join(_missing))


@pytest.fixture
def write(tmp_path: Path):
    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text)
        return p
    return _write
