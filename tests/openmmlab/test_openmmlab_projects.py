"""Per project: derived settings, errors, and the round trip
OpenMMLab config + OpenMMLab checkpoint -> the same outputs as the native path."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from mm_helpers import DEPLOY, HERE, NATIVE, load, project_of, save_openmmlab

from awml_harness.config.errors import ConfigError

# harness-only keys, plus fields given explicitly where the native config relies on a rule
_HARNESS_ONLY = {"openmmlab_config", "reference", "num_voxels_profile", "neck_num_blocks"}


@pytest.mark.parametrize("name", ["calibration", "yolox", "centerpoint"])
def test_derived_settings_equal_the_native_small_config(name):
    """The test configs describe the shipped small models; every derived field equals
    the native deploy config's value (CenterPoint's radii differ: one task, one radius)."""
    derived = load(DEPLOY[name]).model_settings
    native = load(NATIVE[name]).model_settings
    assert derived.openmmlab_config.endswith(".py")
    for f in dataclasses.fields(native):
        if f.name not in _HARNESS_ONLY:
            assert getattr(derived, f.name) == getattr(native, f.name), f.name
    if name == "yolox":
        assert derived.neck_blocks == native.neck_blocks


def test_yolox_values_from_the_config():
    s = load(DEPLOY["yolox"]).model_settings
    assert s.input_size == (192, 192) and s.pad_value == 114.0
    assert (s.widen_factor, s.deepen_factor, s.neck_num_blocks) == (0.25, 0.33, 1)
    assert (s.activation, s.export_activation) == ("ReLU6", "ReLU")  # trained ReLU6, deployed ReLU
    assert (s.score_threshold, s.nms_iou_threshold) == (0.01, 0.65)
    assert s.class_names[0] == "unknown" and len(s.class_names) == 8


def test_centerpoint_values_from_the_config():
    s = load(DEPLOY["centerpoint"]).model_settings
    assert s.point_cloud_range == (-25.6, -25.6, -3.0, 25.6, 25.6, 3.0) and s.voxel_size == (0.4, 0.4, 6.0)
    assert (s.max_points_per_voxel, s.max_voxels, s.num_point_features) == (20, 12000, 4)
    assert s.out_size_factor == 2 and s.post_max_size == 83 and s.score_threshold == 0.1
    assert s.min_radius == (1.0,) and s.nms_type == "circle"  # squared metres, one task
    assert s.post_center_range == (-200.0, -200.0, -10.0, 200.0, 200.0, 10.0)  # the bbox coder's
    assert s.num_voxels_profile == (100, 3000, 12000)  # harness-only key next to `openmmlab=`


def test_calibration_values_from_the_config():
    s = load(DEPLOY["calibration"]).model_settings
    assert (s.in_channels, s.num_classes, s.base_channels, s.depth_scale, s.point_radius) == (5, 2, 16, 80.0, 0)


def test_every_problem_is_named(write):
    cfg = write("bad_cp.py", f"_base_ = [{str(HERE / 'configs/centerpoint/pillar_040_small.py')!r}]\n"
                "model = dict(pts_bbox_head=dict(tasks=[dict(num_class=1, class_names=['car']), "
                "dict(num_class=1, class_names=['bus'])]), test_cfg=dict(pts=dict(nms_type='rotate')),\n"
                "             pts_voxel_encoder=dict(with_distance=True))\n")
    with pytest.raises(ConfigError) as exc:
        load(DEPLOY["centerpoint"], f"model_cfg.openmmlab={str(cfg)!r}")
    text = str(exc.value)
    for key in ("pts_bbox_head.tasks", "test_cfg.pts.nms_type", "pts_voxel_encoder.with_distance"):
        assert f"model_cfg:model.{key}" in text


def test_derived_key_cannot_be_overridden():
    with pytest.raises(ConfigError, match="model_cfg.max_voxels"):
        load(DEPLOY["centerpoint"], "model_cfg.max_voxels=100")


def test_missing_keys_are_listed(tmp_path):
    import torch

    from awml_harness.checkpoint import CheckpointError

    state = torch.load(NATIVE_CKPT["calibration"], weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("head.")}
    ckpt = save_openmmlab(state, tmp_path / "epoch_1.pth")
    project = project_of(load(DEPLOY["calibration"], f"checkpoint_path={str(ckpt)!r}"))
    with pytest.raises(CheckpointError) as exc:
        project.build_model()
    assert "missing keys (2): head.fc.weight, head.fc.bias" in str(exc.value)
    relaxed = project_of(load(DEPLOY["calibration"], f"checkpoint_path={str(ckpt)!r}",
                              "model_cfg='configs/calibration/resnet18_5ch_small.py'"))
    assert relaxed.settings.strict_load  # the string form has no opt-out; the dict form does:
    cfg = load(DEPLOY["calibration"], f"checkpoint_path={str(ckpt)!r}",
               "model_cfg={'openmmlab': 'configs/calibration/resnet18_5ch_small.py', 'strict_load': False}")
    project_of(cfg).build_model()  # loads what fits


NATIVE_CKPT = {
    "calibration": HERE.parent.parent / "fixtures/calibration/checkpoint.pth",
    "yolox": HERE.parent.parent / "fixtures/yolox/checkpoint.pth",
    "centerpoint": HERE.parent.parent / "fixtures/centerpoint/checkpoint.pth",
}


def _outputs(project, model):
    import torch

    outs = []
    with torch.no_grad():
        for graph in project.graphs(model):
            args = [torch.from_numpy(np.asarray(graph.example_inputs[n])) for n in graph.input_names]
            res = graph.module(*args)
            outs.extend(res if isinstance(res, (tuple, list)) else [res])
    return outs


@pytest.mark.parametrize("name", ["calibration", "yolox", "centerpoint"])
def test_round_trip_matches_the_native_path(name, tmp_path):
    """Native model (random weights, seeded) -> OpenMMLab-layout checkpoint -> model built
    from the OpenMMLab config: every graph output is bit-identical."""
    import torch

    native = project_of(load(NATIVE[name], "checkpoint_path=None"))
    with pytest.warns(UserWarning):
        model = native.build_model()
    with torch.no_grad():  # perturb BN statistics so they are not the defaults
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.running_mean.uniform_(-0.1, 0.1)
                mod.running_var.uniform_(0.5, 1.5)
    ckpt = save_openmmlab({"data_preprocessor.mean": torch.zeros(3), **model.state_dict()}, tmp_path / "epoch_1.pth")
    mm = project_of(load(DEPLOY[name], f"checkpoint_path={str(ckpt)!r}"))
    mm_model = mm.build_model()
    for a, b in zip(_outputs(native, model), _outputs(mm, mm_model), strict=True):
        assert torch.equal(a, b)
