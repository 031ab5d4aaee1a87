"""Helpers for the OpenMMLab interop tests: deploy configs whose model_cfg is an
OpenMMLab-style config (tests/openmmlab/configs/), and checkpoints written in
OpenMMLab layout from the native models at test time (nothing binary is committed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
DEPLOY = {
    "calibration": HERE / "deploy_calibration.py",
    "yolox": HERE / "deploy_yolox.py",
    "centerpoint": HERE / "deploy_centerpoint.py",
}
NATIVE = {
    "calibration": ROOT / "projects/CalibrationStatusClassification/configs/deploy_config.py",
    "yolox": ROOT / "projects/YOLOX_opt_elan/configs/deploy_config.py",
    "centerpoint": ROOT / "projects/CenterPoint/configs/deploy_config.py",
}


def load(path: Path, *overrides: str) -> Any:
    from awml_harness.config.load import load_deploy_config

    return load_deploy_config(path, overrides=list(overrides), base_dir=ROOT)


def project_of(cfg: Any) -> Any:
    from awml_harness.project import load_project_class

    return load_project_class(cfg.project, [ROOT])(cfg)


def save_openmmlab(state: dict, path: Path) -> Path:
    import torch

    torch.save({"meta": {"mmengine_version": "0.10.7", "epoch": 1, "dataset_meta": {"classes": ["a"]}},
                "state_dict": state}, path)
    return path
