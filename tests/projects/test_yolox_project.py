"""YOLOX_opt_elan adapter: config validation, detections for the core matcher."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.validation import from_mapping
from awml_harness.matching import match_detections
from projects.YOLOX_opt_elan.settings import YoloxSettings

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "projects" / "YOLOX_opt_elan" / "configs"


@pytest.mark.parametrize(
    ("mapping", "key"),
    [
        ({"input_size": [100, 96]}, "model_cfg.input_size"),
        ({"widen_factor": 0}, "model_cfg.widen_factor"),
        ({"score_threshold": 1.5}, "model_cfg.score_threshold"),
        ({"activation": "GELU"}, "model_cfg.activation"),
        ({"strides": [8, 16]}, "model_cfg.strides"),
        ({"widht_factor": 0.5}, "model_cfg.widht_factor"),
    ],
)
def test_settings_errors_name_the_key(mapping, key):
    with pytest.raises(ConfigError) as info:
        from_mapping(YoloxSettings, mapping, "model_cfg")
    assert info.value.key == key


def test_settings_derived_values():
    s = from_mapping(YoloxSettings, {"input_size": [192, 192], "deepen_factor": 0.33}, "model_cfg")
    assert s.num_classes == 8 and s.num_priors() == 756 and s.neck_blocks == 1
    assert from_mapping(YoloxSettings, {"neck_num_blocks": 2}, "model_cfg").neck_blocks == 2


def _load(name: str, **overrides):
    from awml_harness.config.load import load_deploy_config

    items = [f"{k}={v!r}" for k, v in overrides.items()]
    return load_deploy_config(CONFIGS / name, overrides=items, base_dir=ROOT)


@pytest.mark.skipif(not (ROOT / "fixtures/yolox/checkpoint.pth").is_file(), reason="checkpoint not generated")
def test_shipped_configs_load():
    small = _load("deploy_config.py")
    assert small.model_settings.input_size == (192, 192)
    assert small.model_io.output_shape == (756, 13)
    full = _load("deploy_config_960.py")
    assert full.checkpoint_path is None and not full.evaluation.enabled
    assert full.model_settings.num_priors() == 18900 and full.model_io.output_shape == (18900, 13)
    assert full.model_settings.widen_factor == 0.5 and full.model_settings.deepen_factor == 0.33


@pytest.mark.skipif(not (ROOT / "fixtures/yolox/checkpoint.pth").is_file(), reason="checkpoint not generated")
def test_config_output_shape_is_checked():
    with pytest.raises(ConfigError) as info:
        _load("deploy_config.py", **{"model_io.output_shape": (18900, 13)})
    assert info.value.key == "model_io.output_shape"
    with pytest.raises(ConfigError) as info:
        _load("deploy_config.py", **{"model_io.input_name": "input"})
    assert info.value.key == "model_io.input_name"


def _project():
    from projects.YOLOX_opt_elan.project import Project

    cfg = type("Cfg", (), {"model_settings": YoloxSettings(input_size=(192, 192), score_threshold=0.05)})()
    return Project(cfg)  # type: ignore[arg-type]


def _prediction():
    return {
        "boxes": np.array([[10, 10, 50, 40], [12, 11, 51, 41], [100, 80, 140, 120], [60, 60, 70, 90]], np.float32),
        "scores": np.array([0.90, 0.899, 0.7, 0.4], np.float32),
        "labels": np.array([1, 2, 1, 6], np.int64),
    }


def test_detections_reordered_pass_dropped_fail():
    project = _project()
    settings = project.match_settings()
    assert settings == {"threshold": 0.5, "score_threshold": 0.05}
    ref = project.detections(_prediction())
    assert ref.kind == "box2d" and len(ref) == 4
    order = np.array([3, 1, 0, 2])
    reordered = {k: v[order] for k, v in _prediction().items()}
    reordered["boxes"] = reordered["boxes"] + 0.3
    assert match_detections(ref, project.detections(reordered), **settings).passed
    dropped = {k: v[:3] for k, v in _prediction().items()}
    result = match_detections(ref, project.detections(dropped), **settings)
    assert not result.passed and len(result.unmatched_ref) == 1
    assert result.unmatched_ref[0]["label"] == 6
    # a box that changed class is both lost and extra
    relabelled = dataclasses.replace(project.detections(_prediction()), labels=np.array([1, 2, 1, 5]))
    assert not match_detections(ref, relabelled, **settings).passed
