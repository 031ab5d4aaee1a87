"""Parity with the real implementation (the [mm] extra: mmcv, mmdet, mmdet3d): mmdet3d's
CenterPoint, built by its registry from the test config of the shipped model's structure
(PillarFeatureNet / PointPillarsScatter / SECOND / SECONDFPN / CenterHead), with seeded
random weights, saved as an OpenMMLab checkpoint and loaded into the harness's model
through the key mapping. On a frame of the shipped multi-sweep fixture the two agree on
the merged point cloud (LoadPointsFromFile + LoadPointsFromMultiSweeps), the voxels,
the voxel-encoder features, every head output and the final boxes after circle NMS."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from mm_helpers import DEPLOY, HERE, load, project_of

from awml_harness.openmmlab import missing_packages

_MISSING = missing_packages("mmcv.ops", "mmdet3d.models")
pytestmark = pytest.mark.skipif(bool(_MISSING), reason=f"[mm] extra not installed: {'; '.join(_MISSING)}")

ATOL = 1e-5
CONFIG = HERE / "configs/centerpoint/pillar_040_small.py"


def _mm_model(torch):
    from mmdet3d.registry import MODELS
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    init_default_scope("mmdet3d")
    cfg = Config.fromfile(str(CONFIG))
    model_cfg = copy.deepcopy(cfg.model)
    model_cfg.pts_bbox_head.separate_head.type = "SeparateHead"  # AWML's subclass only changes the init
    torch.manual_seed(0)
    model = MODELS.build(model_cfg)
    model.init_weights()
    with torch.no_grad():  # seeded init (mmdet3d's init_weights), BN far from its defaults
        g = torch.Generator().manual_seed(1)
        for mod in model.modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.weight.uniform_(0.5, 1.5, generator=g)
                mod.bias.uniform_(-0.2, 0.2, generator=g)
                mod.running_mean.uniform_(-0.2, 0.2, generator=g)
                mod.running_var.uniform_(0.5, 1.5, generator=g)
            elif isinstance(mod, (torch.nn.Conv2d, torch.nn.ConvTranspose2d, torch.nn.Linear)) and mod.bias is not None:
                mod.bias.uniform_(-0.2, 0.2, generator=g)
        model.pts_bbox_head.task_heads[0].heatmap[-1].bias.fill_(-0.5)  # plenty of boxes for NMS
    return model.eval(), cfg


def _mm_points(cfg, entry, root):
    """The test pipeline's loading steps of mmdet3d on one info entry."""
    from mmdet3d.datasets.transforms import LoadPointsFromFile, LoadPointsFromMultiSweeps

    steps = {s["type"]: {k: v for k, v in s.items() if k != "type"} for s in cfg.test_pipeline}
    results = copy.deepcopy(entry)
    results["lidar_points"]["lidar_path"] = str(root / entry["lidar_points"]["lidar_path"])
    for sweep in results["lidar_sweeps"]:
        sweep["lidar_points"]["lidar_path"] = str(root / sweep["lidar_points"]["lidar_path"])
    results = LoadPointsFromFile(**steps["LoadPointsFromFile"])(results)
    results = LoadPointsFromMultiSweeps(**steps["LoadPointsFromMultiSweeps"], test_mode=True)(results)
    return results["points"].tensor


def test_centerpoint_matches_mmdet3d(tmp_path):
    import torch
    from mmdet3d.structures import LiDARInstance3DBoxes

    from projects.CenterPoint.decode import decode
    from projects.CenterPoint.model import BackboneNeckHeadGraph, VoxelEncoderGraph
    from projects.CenterPoint.voxelize import scatter

    mm, cfg = _mm_model(torch)
    ckpt = tmp_path / "epoch_1.pth"
    torch.save({"meta": {"mmengine_version": "0.10.7"}, "state_dict": mm.state_dict()}, ckpt)
    project = project_of(load(DEPLOY["centerpoint"], f"checkpoint_path={str(ckpt)!r}"))
    model = project.build_model()
    s = project.settings
    data = project.dataset()

    # 1. points: the harness's multi-sweep loader == mmdet3d's transforms
    idx = 1
    points = data[idx].points
    mm_points = _mm_points(cfg, data.entries[idx], data.root)
    assert len(data.entries[idx]["lidar_sweeps"]) >= 2 and np.unique(points[:, 3]).size >= 3  # 3 time lags
    np.testing.assert_array_equal(points, mm_points.numpy())

    # 2. voxels and voxel-encoder features, pillar by pillar
    with torch.no_grad():
        vd = mm.data_preprocessor.voxelize([mm_points], [])
        mm_feats = mm.pts_voxel_encoder(vd["voxels"], vd["num_points"], vd["coors"]).numpy()
    features, coords = project.voxel_inputs(project.preprocess(data[idx]).inputs["points"])
    np.testing.assert_array_equal(coords, vd["coors"][:, 1:].numpy())  # same voxels, same order
    with torch.no_grad():
        pillars = VoxelEncoderGraph(model)(torch.from_numpy(features)).numpy()
    np.testing.assert_allclose(pillars[:, 0], mm_feats, atol=ATOL, rtol=0)

    # 3. every head output
    nx, ny, _ = s.grid_size
    spatial = scatter(pillars, coords, (nx, ny))
    with torch.no_grad():
        canvas = mm.pts_middle_encoder(torch.from_numpy(mm_feats), vd["coors"], 1)
        np.testing.assert_allclose(spatial, canvas.numpy(), atol=ATOL, rtol=0)
        mm_heads = mm.pts_bbox_head(mm.pts_neck(mm.pts_backbone(canvas)))
        ours = BackboneNeckHeadGraph(model)(torch.from_numpy(spatial))
    names = ("heatmap", "reg", "height", "dim", "rot", "vel")
    for name, out in zip(names, ours, strict=True):
        np.testing.assert_allclose(out.numpy(), mm_heads[0][0][name].numpy(), atol=ATOL, rtol=0, err_msg=name)

    # 4. final boxes: mmdet3d's predict_by_feat (coder + circle NMS) vs the harness's decode
    with torch.no_grad():
        inst = mm.pts_bbox_head.predict_by_feat(mm_heads, [{"box_type_3d": LiDARInstance3DBoxes}])[0]
    got = decode({n: o.numpy() for n, o in zip(names, ours, strict=True)}, s)
    mm_boxes = inst.bboxes_3d.tensor.numpy()
    assert 5 < len(got["scores"]) == len(inst.scores_3d), (len(got["scores"]), len(inst.scores_3d))
    order = np.argsort(-inst.scores_3d.numpy(), kind="stable")
    np.testing.assert_allclose(got["scores"], inst.scores_3d.numpy()[order], atol=ATOL, rtol=0)
    np.testing.assert_array_equal(got["labels"], inst.labels_3d.numpy()[order])
    # decode runs in float64, mmdet3d's in float32: exp() of untrained sizes reaches 100 m,
    # where float32 itself only resolves ~1e-5 relative
    np.testing.assert_allclose(got["boxes"], mm_boxes[order, :7], atol=ATOL, rtol=ATOL)
    np.testing.assert_allclose(got["velocities"], mm_boxes[order, 7:9], atol=ATOL, rtol=0)
    assert len(set(got["labels"].tolist())) > 1  # NMS ran across several classes


def test_tianweiy_head_names_load_through_the_key_map(tmp_path):
    """The one renaming rule of CenterPoint's key map (`hm` -> `heatmap`, the original
    CenterPoint code's head name): the same mmdet3d weights saved under the old names load
    into exactly the same harness model."""
    import torch

    mm, _ = _mm_model(torch)
    state = mm.state_dict()
    renamed = {k.replace(".heatmap.", ".hm."): v for k, v in state.items()}
    assert renamed.keys() != state.keys()
    models = []
    for name, sd in (("mmdet3d.pth", state), ("tianweiy.pth", renamed)):
        torch.save({"meta": {}, "state_dict": sd}, tmp_path / name)
        models.append(project_of(load(DEPLOY["centerpoint"], f"checkpoint_path={str(tmp_path / name)!r}")).build_model())
    a, b = (m.state_dict() for m in models)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
