"""AWML's CenterPoint-ShortRange structures (BackwardPillarFeatureNet; ConvNeXt_PC with
out_size_factor 4) from OpenMMLab configs: the settings they derive, and the suite's
export and verification on CPU with seeded weights."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from mm_helpers import HERE, ROOT, load

CONFIGS = {
    "backward_second": HERE / "deploy_centerpoint_backward_second.py",
    "convnext": HERE / "deploy_centerpoint_convnext.py",
}


def test_shortrange_settings_from_the_configs():
    s = load(CONFIGS["backward_second"]).model_settings
    assert (s.voxel_encoder, s.backbone, s.in_channels) == ("BackwardPillarFeatureNet", "SECOND", 9)
    assert s.pfn_channels == (16, 16) and s.backbone_strides == (1, 2, 2) and s.out_size_factor == 1
    assert (s.use_dim, s.load_dim, s.sweeps_num, s.remove_close) == ((0, 1, 2, 4), 5, 1, True)
    c = load(CONFIGS["convnext"]).model_settings
    assert (c.voxel_encoder, c.backbone) == ("BackwardPillarFeatureNet", "ConvNeXt_PC")
    assert c.convnext_depths == (1, 1, 1, 1, 1) and c.convnext_out_indices == (2, 3, 4)
    assert c.convnext_layer_scale == 1.0 and c.backbone_output_channels == (32, 32, 32)
    assert c.out_size_factor == 4 and c.head_size == (40, 40)


@pytest.mark.slow  # one suite subprocess, about a minute
def test_shortrange_structures_export_and_verify(tmp_path):
    args = [sys.executable, "-m", "pytest", "suites/", "-p", "no:cacheprovider", "-q", "-rA", "-k", "export or verification",
            "--work-dir", str(tmp_path), "--awml-metrics-json", str(tmp_path / "m.json")]
    for path in CONFIGS.values():
        args += ["--deploy-cfg", str(path)]
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900)
    out = proc.stdout[-3000:] + proc.stderr[-3000:]
    assert proc.returncode == 0, out
    for name in CONFIGS:  # every config exported both graphs and verified them against PyTorch
        assert f"PASSED suites/test_verification.py::test_verification[CenterPoint-deploy_centerpoint_{name}-" in proc.stdout, out
        for graph in ("pts_voxel_encoder", "pts_backbone_neck_head"):
            assert f"PASSED suites/test_export.py::test_export[CenterPoint-deploy_centerpoint_{name}-{graph}-onnx]" in proc.stdout, out
    tests = json.loads((tmp_path / "m.json").read_text())["run"]["tests"]
    assert tests["failed"] == 0 and tests["error"] == 0, out
