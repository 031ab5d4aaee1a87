"""AWML-only CenterPoint modules (no pip-installable implementation to compare with):
BackwardPillarFeatureNet and the ConvNeXt_PC backbone. Their parameter names and shapes
are checked against the public definitions (AWML's projects/ConvNeXt_PC and
projects/CenterPoint/models/voxel_encoders, mmpretrain's ConvNeXtBlock), their maths on
cases computed by hand."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from projects.CenterPoint.settings import CenterPointSettings
from projects.CenterPoint.voxelize import decorate, voxelize

torch = pytest.importorskip("torch")

#: AWML CenterPoint-ShortRange pillar_016_convnext_secfpn: 0.16 m pillars over +-51.2 m
SHORT_RANGE = CenterPointSettings(
    point_cloud_range=(-51.2, -51.2, -3.0, 51.2, 51.2, 5.0),
    voxel_size=(0.16, 0.16, 8.0),
    num_point_features=4,
    use_dim=(0, 1, 2, 4),
    voxel_encoder="BackwardPillarFeatureNet",
    pfn_channels=(32, 32),
    backbone="ConvNeXt_PC",
    convnext_depths=(3, 3, 2, 1, 1),
    convnext_channels=(32, 192, 192, 192, 192),
    convnext_out_indices=(2, 3, 4),
    neck_out_channels=(128, 128, 128),
    neck_upsample_strides=(1, 2, 4),
    final_kernel=1,
)


def convnext_public_keys(channels: list[int], depths: list[int], out_indices: list[int]) -> dict[str, tuple]:
    """Parameter names and shapes of ConvNeXt_PC(first_downsample=1, linear_pw_conv=True,
    layer_scale_init_value > 0) as its public definition lays them out."""
    keys: dict[str, tuple] = {}
    for i in range(1, len(channels)):  # downsample_layers[0] is None
        keys[f"downsample_layers.{i}.0.weight"] = (channels[i - 1],)
        keys[f"downsample_layers.{i}.0.bias"] = (channels[i - 1],)
        keys[f"downsample_layers.{i}.1.weight"] = (channels[i], channels[i - 1], 2, 2)
        keys[f"downsample_layers.{i}.1.bias"] = (channels[i],)
    for i, (c, d) in enumerate(zip(channels, depths, strict=True)):
        for j in range(d):
            p = f"stages.{i}.{j}."
            keys.update({
                p + "depthwise_conv.weight": (c, 1, 7, 7), p + "depthwise_conv.bias": (c,),
                p + "norm.weight": (c,), p + "norm.bias": (c,),
                p + "pointwise_conv1.weight": (4 * c, c), p + "pointwise_conv1.bias": (4 * c,),
                p + "pointwise_conv2.weight": (c, 4 * c), p + "pointwise_conv2.bias": (c,),
                p + "gamma": (c,),
            })
    for i in out_indices:
        keys[f"norm{i}.weight"] = (channels[i],)
        keys[f"norm{i}.bias"] = (channels[i],)
    return keys


def test_convnext_pc_keys_and_shapes_follow_the_public_definition() -> None:
    from projects.CenterPoint.model import CenterPoint

    SHORT_RANGE.validate("model_cfg")
    model = CenterPoint(SHORT_RANGE)
    got = {k[len("pts_backbone."):]: tuple(v.shape) for k, v in model.state_dict().items()
           if k.startswith("pts_backbone.")}
    assert got == convnext_public_keys([32, 192, 192, 192, 192], [3, 3, 2, 1, 1], [2, 3, 4])
    assert SHORT_RANGE.out_size_factor == 4 and SHORT_RANGE.head_size == (160, 160)


def test_backward_pillar_feature_net_keys_and_widths() -> None:
    """BackwardPillarFeatureNet(in_channels=4, feat_channels=[32, 32]): 4 + 3 cluster + 2
    centre offsets = 9 inputs; a non-last PFNLayer has half its width (the max is concatenated)."""
    from projects.CenterPoint.model import CenterPoint

    sd = CenterPoint(SHORT_RANGE).state_dict()
    enc = {k: tuple(v.shape) for k, v in sd.items() if k.startswith("pts_voxel_encoder.")}
    assert enc["pts_voxel_encoder.pfn_layers.0.linear.weight"] == (16, 9)
    assert enc["pts_voxel_encoder.pfn_layers.1.linear.weight"] == (32, 32)
    assert {k.rsplit(".", 1)[0] for k in enc} == {
        f"pts_voxel_encoder.pfn_layers.{i}.{m}" for i in (0, 1) for m in ("linear", "norm")
    }
    assert SHORT_RANGE.in_channels == 9


def test_backward_decoration_has_no_z_centre_offset() -> None:
    rng_ = (0.0, 0.0, -2.0, 4.0, 4.0, 2.0)
    size = (1.0, 1.0, 4.0)
    cloud = np.array([[1.25, 2.5, 0.5, 7.0], [1.75, 2.0, -0.5, 9.0]], np.float32)  # both in voxel x=1, y=2
    v = voxelize(cloud, rng_, size, max_points=3, max_voxels=4)
    f = decorate(v, rng_, size, with_z_center=False)
    assert f.shape == (1, 3, 4 + 3 + 2)
    # mean (1.5, 2.25, 0); centre (1.5, 2.5) -> offsets
    np.testing.assert_allclose(f[0, 0], [1.25, 2.5, 0.5, 7.0, -0.25, 0.25, 0.5, -0.25, 0.0])
    np.testing.assert_allclose(f[0, 1], [1.75, 2.0, -0.5, 9.0, 0.25, -0.25, -0.5, 0.25, -0.5])
    assert not f[0, 2].any()
    full = decorate(v, rng_, size)
    np.testing.assert_array_equal(full[:, :, :9], f)  # the same columns, then z - centre_z
    np.testing.assert_allclose(full[0, :2, 9], [0.5, -0.5])


GELU_1, GELU_M1 = 0.8413447460685429, -0.15865525393145707  # x * Phi(x) at 1 and -1


def test_convnext_block_on_a_hand_case() -> None:
    from projects.CenterPoint.model import ConvNeXtBlock

    block = ConvNeXtBlock(2, layer_scale=1.0).eval()
    with torch.no_grad():
        for p in block.parameters():
            p.zero_()
        block.depthwise_conv.weight[:, 0, 3, 3] = 1.0  # the centre tap: identity on a 1x1 map
        block.norm.weight.fill_(1.0)
        block.pointwise_conv1.weight[0, 0] = 1.0
        block.pointwise_conv1.weight[1, 1] = 1.0
        block.pointwise_conv2.weight[0, 0] = 1.0
        block.pointwise_conv2.weight[1, 1] = 1.0
        block.pointwise_conv2.bias[0] = 0.5
        block.gamma.copy_(torch.tensor([2.0, 3.0]))
        out = block(torch.tensor([3.0, 1.0]).view(1, 2, 1, 1)).flatten()
    # LayerNorm over the channels: (3, 1) -> (1, -1); MLP: GELU, +0.5 on channel 0; scale; + input
    np.testing.assert_allclose(out.numpy(), [3 + 2 * (GELU_1 + 0.5), 1 + 3 * GELU_M1], atol=1e-5)


def test_layer_norm_2d_normalises_each_pixel_over_channels() -> None:
    from projects.CenterPoint.model import LayerNorm2d

    ln = LayerNorm2d(3, eps=0.0)
    x = torch.tensor([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0]]).view(1, 3, 1, 2)
    s = math.sqrt(2 / 3)
    np.testing.assert_allclose(ln(x).detach().numpy()[0, :, 0, :].T, [[-1 / s, 0, 1 / s]] * 2, atol=1e-6)


def test_convnext_pc_strides_and_downsampling() -> None:
    from projects.CenterPoint.model import ConvNeXtPC

    net = ConvNeXtPC(4, (4, 6, 8, 8), (1, 1, 1, 1), (1, 2, 3), layer_scale=1.0).eval()
    with torch.no_grad():
        outs = net(torch.randn(1, 4, 16, 16))
    assert [tuple(o.shape) for o in outs] == [(1, 6, 8, 8), (1, 8, 4, 4), (1, 8, 2, 2)]
    # a 2x2 stride-2 conv of the normalised map: one output pixel from one 2x2 patch
    ds = net.downsample_layers[1]
    x = torch.randn(1, 4, 2, 2)
    with torch.no_grad():
        normed = torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (4,), ds[0].weight, ds[0].bias, 1e-5)
        want = (normed.permute(0, 3, 1, 2)[0, None] * ds[1].weight).sum((1, 2, 3)) + ds[1].bias
        np.testing.assert_allclose(ds(x).flatten().numpy(), want.numpy(), atol=1e-5)


def test_convnext_settings_are_validated() -> None:
    bad = dataclasses.replace(SHORT_RANGE, convnext_out_indices=(3, 2))
    with pytest.raises(ConfigError, match="convnext_out_indices"):
        bad.validate("model_cfg")
    with pytest.raises(ConfigError, match="voxel_encoder"):
        dataclasses.replace(SHORT_RANGE, voxel_encoder="DynamicPillarFeatureNet").validate("model_cfg")
    odd = dataclasses.replace(SHORT_RANGE, point_cloud_range=(-51.2, -51.2, -3.0, 51.36, 51.36, 5.0))
    with pytest.raises(ConfigError, match="divide the grid"):  # 641 cells: not a multiple of 16
        odd.validate("model_cfg")
