"""The generic half: recognising configs, collecting problems, remapping checkpoints."""

from __future__ import annotations

import subprocess
import sys

import pytest
from mm_helpers import DEPLOY, HERE, ROOT

from awml_harness.config.errors import ConfigError
from awml_harness.openmmlab import (
    ConfigReader,
    Rule,
    is_openmmlab_config,
    prefix,
    read_openmmlab_config,
    remap_state_dict,
)


def test_detects_openmmlab_configs_and_reads_base():
    data = read_openmmlab_config(HERE / "configs/yolox/yolox_opt_elan_small.py")
    assert is_openmmlab_config(data)
    assert data["metainfo"]["classes"][1] == "car"  # from _base_
    assert not is_openmmlab_config({"model": {"backbone": {}}})
    assert not is_openmmlab_config({"input_size": [192, 192]})


def test_reader_collects_every_problem_into_one_error():
    r = ConfigReader({"model": {"type": "X", "foo": 1}, "test_pipeline": [{"type": "A"}, {"type": "Mosaic"}]})
    r.check_keys("model", ("bar",))
    r.pipeline("test_pipeline", {"A": lambda p, t: None})
    with pytest.raises(ConfigError) as exc:
        r.raise_if_any()
    text = str(exc.value)
    assert "model_cfg:model.foo" in text and "model_cfg:test_pipeline[1].type" in text and "Mosaic" in text


def test_remap_rules_apply_in_order_and_refuse_collisions():
    from awml_harness.checkpoint import CheckpointError

    table = (prefix("module.", ""), prefix("data_preprocessor.", None), Rule(r"^(head\.)hm\.", r"\1heatmap."))
    out = remap_state_dict({"module.head.hm.w": 1, "data_preprocessor.mean": 2, "x": 3}, table)
    assert out == {"head.heatmap.w": 1, "x": 3}
    with pytest.raises(CheckpointError, match="both map to"):
        remap_state_dict({"module.x": 1, "x": 2}, table)


def test_unknown_transform_and_key_exit_4(tmp_path):
    """End to end: pytest itself reports the bad config as a usage error (exit 4)."""
    bad = tmp_path / "bad_yolox.py"
    bad.write_text(
        f"_base_ = [{str(HERE / 'configs/yolox/yolox_opt_elan_small.py')!r}]\n"
        "model = dict(backbone=dict(use_fancy_stem=True))\n"
        "test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(192, 192), keep_ratio=True),\n"
        "                 dict(type='RandomCenterCropPad'), dict(type='Pad', pad_to_square=True, pad_val=114)]\n"
    )
    deploy = tmp_path / "deploy.py"
    deploy.write_text(f"_base_ = [{str(DEPLOY['yolox'])!r}]\nmodel_cfg = {str(bad)!r}\n")
    proc = subprocess.run([sys.executable, "-m", "pytest", "suites/", "--deploy-cfg", str(deploy), "--collect-only",
                           "-q", "-p", "no:cacheprovider"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out
    assert "model_cfg:model.backbone.use_fancy_stem" in out
    assert "model_cfg:test_pipeline[2].type" in out and "RandomCenterCropPad" in out
