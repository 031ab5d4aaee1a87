"""CenterPoint model: mmdet3d parameter layout, shapes, padding behaviour, export."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from projects.CenterPoint.model import CenterPoint, PillarFeatureNet, VoxelEncoderGraph  # noqa: E402
from projects.CenterPoint.settings import CenterPointSettings  # noqa: E402

S = CenterPointSettings(
    class_names=("car", "truck", "bus", "bicycle", "pedestrian"),
    point_cloud_range=(-8.0, -8.0, -2.0, 8.0, 8.0, 2.0),
    voxel_size=(0.5, 0.5, 4.0),
    num_point_features=5,
    max_points_per_voxel=6,
    max_voxels=100,
    pfn_channels=(16,),
    backbone_layer_nums=(1, 1),
    backbone_out_channels=(8, 16),
    backbone_strides=(2, 2),
    neck_out_channels=(8, 8),
    neck_upsample_strides=(1, 2),
    share_conv_channel=8,
    head_conv=8,
)


def test_state_dict_keys_follow_mmdet3d() -> None:
    keys = set(CenterPoint(S).state_dict())
    for key in (
        "pts_voxel_encoder.pfn_layers.0.linear.weight",
        "pts_voxel_encoder.pfn_layers.0.norm.running_var",
        "pts_backbone.blocks.0.0.weight",
        "pts_backbone.blocks.0.1.weight",
        "pts_backbone.blocks.1.3.weight",
        "pts_neck.deblocks.0.0.weight",
        "pts_neck.deblocks.1.1.running_mean",
        "pts_bbox_head.shared_conv.conv.weight",
        "pts_bbox_head.shared_conv.bn.weight",
        "pts_bbox_head.task_heads.0.heatmap.0.conv.weight",
        "pts_bbox_head.task_heads.0.heatmap.0.bn.bias",
        "pts_bbox_head.task_heads.0.heatmap.1.weight",
        "pts_bbox_head.task_heads.0.heatmap.1.bias",
        "pts_bbox_head.task_heads.0.vel.1.bias",
    ):
        assert key in keys, key
    prefixes = {k.split(".")[0] for k in keys}
    assert prefixes == {"pts_voxel_encoder", "pts_backbone", "pts_neck", "pts_bbox_head"}
    assert "pts_voxel_encoder.pfn_layers.0.linear.bias" not in keys  # bias-free before BN
    assert CenterPoint(S).state_dict()["pts_voxel_encoder.pfn_layers.0.linear.weight"].shape == (16, 11)


def test_head_shapes_and_channels() -> None:
    model = CenterPoint(S).eval()
    with torch.no_grad():
        out = model.head_outputs(torch.zeros(1, 16, 32, 32))
    assert {k: tuple(v.shape[1:]) for k, v in out.items()} == {
        "heatmap": (5, 16, 16),
        "reg": (2, 16, 16),
        "height": (1, 16, 16),
        "dim": (3, 16, 16),
        "rot": (2, 16, 16),
        "vel": (2, 16, 16),
    }


def test_pillar_feature_net_shape_and_padding_independence() -> None:
    torch.manual_seed(0)
    net = PillarFeatureNet(11, (16,)).eval()
    feats = torch.randn(4, 6, 11)
    feats[:, 3:] = 0  # padded rows
    out = net(feats)
    assert out.shape == (4, 1, 16)
    # the zero rows take part like in mmdet3d; extra zero rows change nothing
    more = torch.cat([feats, torch.zeros(4, 2, 11)], dim=1)
    torch.testing.assert_close(net(more), out)


def test_two_layer_pfn_concatenates_the_max() -> None:
    net = PillarFeatureNet(11, (16, 32)).eval()
    assert net.pfn_layers[0].linear.out_features == 8
    assert net(torch.randn(3, 5, 11)).shape == (3, 1, 32)


def test_voxel_encoder_exports_with_dynamic_voxel_axis(tmp_path) -> None:
    ort = pytest.importorskip("onnxruntime")
    model = CenterPoint(S).eval()
    graph = VoxelEncoderGraph(model).eval()
    path = tmp_path / "ve.onnx"
    torch.onnx.export(
        graph,
        (torch.randn(7, 6, 11),),
        str(path),
        input_names=["input_features"],
        output_names=["pillar_features"],
        dynamic_axes={"input_features": {0: "n"}, "pillar_features": {0: "n"}},
        opset_version=17,
        dynamo=False,
    )
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).normal(size=(23, 6, 11)).astype(np.float32)
    (y,) = sess.run(None, {"input_features": x})
    with torch.no_grad():
        ref = graph(torch.from_numpy(x)).numpy()
    assert y.shape == (23, 1, 16)
    np.testing.assert_allclose(y, ref, atol=1e-5)
