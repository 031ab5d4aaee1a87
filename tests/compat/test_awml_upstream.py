"""AWML's own files, unchanged: the new deployment framework's newest CenterPoint deploy
config with AWML's j6gen2 `*_t4metric_v2.py` model config.

The files are AWML's (tier4/AWML PR 115, branch feat/new_deployment_and_evaluation_pipeline,
e.g. f2e5a945) and are not in this repository: point `AWML_CHECKOUT` at a checkout of
that branch (it holds deployment/projects/centerpoint/config/deploy_config.py and
projects/CenterPoint/configs/t4dataset/Centerpoint/); the tests skip otherwise. Nothing
of AWML is imported: its configs are read as data. The data is the harness's shipped
clouds (fixtures/centerpoint), the weights seeded (checkpoint_path=None).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "fixtures" / "centerpoint"
ENV = "AWML_CHECKOUT"
DEPLOY = Path("deployment/projects/centerpoint/config/deploy_config.py")
MODEL = Path("projects/CenterPoint/configs/t4dataset/Centerpoint/second_secfpn_8xb16_121m_j6gen2_base_amp_t4metric_v2.py")
#: the shipped data instead of AWML's dataset, and seeded weights: the done-when of issue 26
OVERRIDES = ["checkpoint_path=None", f"runtime_io.info_file={str(DATA / 'infos_eval.pkl')!r}",
             f"runtime_io.data_root={str(DATA)!r}"]


@pytest.fixture(scope="module")
def checkout() -> Path:
    root = os.environ.get(ENV)
    if not root:
        pytest.skip(f"{ENV} is not set: point it at a checkout of tier4/AWML's new deployment branch")
    root = Path(root)
    for rel in (DEPLOY, MODEL):
        if not (root / rel).is_file():
            pytest.skip(f"{root / rel} is not there (not a checkout of the new deployment branch)")
    return root


def test_the_newest_upstream_config_loads_with_the_model_configs_metric(checkout):
    from awml_harness.config.load import load_deploy_config

    with pytest.warns(UserWarning):
        cfg = load_deploy_config(checkout / DEPLOY, base_dir=REPO, model_cfg=str(checkout / MODEL),
                                 overrides=OVERRIDES)
    s = cfg.model_settings
    assert (cfg.project, cfg.task_type, cfg.export.mode) == ("CenterPoint", "detection3d", "both")
    assert s.metric == "t4" and s.metric_matching == "center_distance_bev"  # the deploy config says nothing
    assert s.metric_distance_ranges == ((0.0, 50.0), (50.0, 90.0), (90.0, 121.0), (0.0, 121.0))
    assert s.distance_thresholds == (0.5, 1.0, 2.0, 4.0)
    assert s.num_voxels_profile == (1000, 20000, 96000) and s.in_channels == 11 and s.grid_size == (1020, 1020, 1)
    assert cfg.verification.tolerance == 1.0


@pytest.mark.slow
def test_the_newest_upstream_config_exports_and_verifies_on_cpu(checkout, tmp_path):
    """`python -m deployment.cli.main centerpoint DEPLOY MODEL --rot-y-axis-reference` as
    pytest runs it: export both graphs, verify PyTorch against ONNX Runtime on CPU
    (TensorRT skips without a GPU), write and check the Autoware package."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/test_export.py", "suites/test_verification.py",
         "suites/test_package.py", "-q", "-p", "no:cacheprovider", "--deploy-cfg", str(checkout / DEPLOY),
         "--model-cfg", str(checkout / MODEL), "--rot-y-axis-reference", "--device", "cpu",
         "--work-dir", str(tmp_path / "wd"), "--cfg-options", *OVERRIDES, "verification.enabled=True"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    doc = json.loads((tmp_path / "wd" / "metrics.json").read_text())
    cp = doc["projects"]["CenterPoint"]
    assert cp["verification"]["passed"] >= 1 and cp["verification"]["failed"] == 0
    assert cp["package"]["checks"] and all(c["passed"] for c in cp["package"]["checks"])
    assert "deploy_log_path='deployment.log' is ignored" in out.stderr
