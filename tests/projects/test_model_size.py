"""Model sizes are bounded before anything is built (issue 24 item 7): each project
estimates its parameters and largest activation from model_cfg alone, the estimate
matches the real model, and a width with a few zeros too many is a config error (exit 4)
naming the key, raised before torch is imported."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import load_deploy_config
from awml_harness.project import load_project_class

REPO = Path(__file__).resolve().parents[2]
CAL = "projects/CalibrationStatusClassification/configs/deploy_config.py"
YOLOX = "projects/YOLOX_opt_elan/configs/deploy_config.py"
CP = "projects/CenterPoint/configs/deploy_config.py"
SEG = "projects/SemanticSegmentation/configs/deploy_config.py"

CASES = [
    (CAL, ()), (CAL, ("model_cfg.base_channels=24", "model_cfg.input_size=(96, 160)")),
    (YOLOX, ()), (YOLOX, ("model_cfg.widen_factor=0.5", "model_cfg.deepen_factor=0.67", "model_io.output_shape=None",
                          "model_cfg.class_names=('a', 'b', 'c')")),
    (CP, ()), (CP, ("model_cfg.backbone_out_channels=(48, 96)", "model_cfg.neck_out_channels=(24, 24)",
                    "model_cfg.share_conv_channel=48", "model_cfg.head_conv=24")),
    (SEG, ("model_io.input_shape=(3, 64, 128)",)), (SEG, ("model_cfg.base_channels=16", "model_cfg.depth=4",
                                                          "model_io.input_shape=(3, 64, 128)")),
]


def _load(path: str, *overrides: str):
    return load_deploy_config(REPO / path, base_dir=REPO, overrides=["checkpoint_path=None", *overrides])


def _measured(cfg) -> tuple[int, int]:
    """Parameters and the largest module output of the real model, run on its example inputs
    (CenterPoint's voxel encoder at the profile's maximum voxel count)."""
    import torch

    adapter = load_project_class(cfg.project_dir)(cfg)
    model = adapter.build_model()
    params = sum(p.numel() for p in model.parameters())
    largest = [0]

    def hook(module, args, out):
        values = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else [out]
        for t in values:
            if isinstance(t, torch.Tensor):
                largest[0] = max(largest[0], t.numel())

    with torch.inference_mode():
        for graph in adapter.graphs(model):
            handles = [m.register_forward_hook(hook) for m in graph.module.modules()]
            feeds = []
            for name in graph.input_names:
                x = graph.example_inputs[name]
                if name == "input_features":  # as many voxels as the voxelizer may fill
                    x = np.zeros((cfg.model_settings.max_voxels, *x.shape[1:]), x.dtype)
                feeds.append(torch.from_numpy(np.ascontiguousarray(x)))
            graph.module(*feeds)
            for h in handles:
                h.remove()
    return params, largest[0]


@pytest.mark.parametrize("path, overrides", CASES, ids=lambda v: v if isinstance(v, str) else "+".join(v) or "shipped")
def test_the_estimate_matches_the_real_model(path, overrides):
    cfg = _load(path, *overrides)
    size = load_project_class(cfg.project_dir).model_size(cfg)
    params, largest = _measured(cfg)
    assert abs(size.total - params) <= 0.01 * params, (size.parameters, params)
    estimated = max(size.activations.values())
    # a guard may overestimate (a concatenation is no module output), never underestimate
    assert largest <= estimated <= 2.5 * largest, (size.activations, largest)


@pytest.mark.parametrize("path, override, key", [
    (CAL, "model_cfg.base_channels=1000000", "model_cfg.base_channels"),
    (CAL, "model_cfg.base_channels=20000", "model_cfg.base_channels"),
    (YOLOX, "model_cfg.widen_factor=400.0", "model_cfg.widen_factor"),
    (CP, "model_cfg.backbone_out_channels=(64, 256000)", "model_cfg.backbone_out_channels"),
    (SEG, "model_cfg.base_channels=100000", "model_cfg.base_channels"),
])
def test_a_model_too_large_is_a_config_error_naming_the_key(path, override, key):
    with pytest.raises(ConfigError) as info:
        _load(path, override)
    assert info.value.key == key and "limits.max_parameters" in str(info.value)


def test_the_limit_is_configurable_and_the_activation_is_bounded_too():
    cfg = _load(CAL, "model_cfg.base_channels=20000", "limits.max_parameters=10000000000000")
    assert cfg.model_settings.base_channels == 20000
    with pytest.raises(ConfigError) as info:  # a BEV grid of 5120 x 5120 cells x 32 channels
        _load(CP, "model_cfg.voxel_size=(0.01, 0.01, 6.0)")
    assert info.value.key == "model_cfg.voxel_size" and "limits.max_elements" in str(info.value)
    with pytest.raises(ConfigError) as info:
        _load(CP, "model_cfg.max_voxels=3000000", "model_cfg.num_voxels_profile=(1, 1000, 3000000)")
    assert info.value.key == "model_cfg.max_voxels"


def test_the_red_team_width_exits_4_before_torch_is_imported(tmp_path):
    code = ("import sys, pytest\n"
            "rc = pytest.main(sys.argv[1:])\n"
            "print('TORCH', 'torch' in sys.modules, 'RC', int(rc))\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    out = subprocess.run([sys.executable, "-c", code, "suites/", "--co", "-q", "-p", "no:cacheprovider",
                          "--deploy-cfg", CAL, "--cfg-options", "model_cfg.base_channels=1000000"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert "TORCH False RC 4" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert "model_cfg.base_channels" in out.stderr and "limits.max_parameters" in out.stderr
