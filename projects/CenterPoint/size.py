"""How big the model's settings make it: parameters and the largest activation, counted
from `model.py`'s layout (pillar encoder, SECOND or ConvNeXt_PC, SECONDFPN, CenterHead)
without building it (ProjectAdapter.model_size)."""

from __future__ import annotations

from .settings import CenterPointSettings

HEAD_CHANNELS = {"reg": 2, "height": 1, "dim": 3, "rot": 2, "vel": 2}  # model.HEADS


def _conv(cin: int, cout: int, k: int) -> int:
    return k * k * cin * cout + 2 * cout  # conv without bias + BN


def parameters(s: CenterPointSettings) -> dict[str, int]:
    """{settings key: parameters} for the encoder, backbone, neck and head."""
    widths = (s.in_channels, *s.pfn_channels)
    encoder = sum(widths[i] * widths[i + 1] for i in range(len(s.pfn_channels)))
    if s.backbone == "SECOND":
        backbone_key, backbone, cin = "backbone_out_channels", 0, s.pillar_channels
        for cout, n in zip(s.backbone_out_channels, s.backbone_layer_nums, strict=True):
            backbone += _conv(cin, cout, 3) + n * _conv(cout, cout, 3)
            cin = cout
    else:
        backbone_key, backbone = "convnext_channels", 0
        stage_widths = (s.pillar_channels, *s.convnext_channels[1:])
        for i, (c, depth) in enumerate(zip(stage_widths, s.convnext_depths, strict=True)):
            if i:
                backbone += 4 * stage_widths[i - 1] * c + c
            backbone += depth * (49 * c + 8 * c * c + 7 * c)  # depthwise 7x7, C -> 4C -> C, norm, scale
    neck = 0
    for cin, cout, stride in zip(s.backbone_output_channels, s.neck_out_channels, s.neck_upsample_strides, strict=True):
        k = int(stride) if stride >= 1 else int(round(1 / stride))
        neck += _conv(cin, cout, k)
    shared = _conv(sum(s.neck_out_channels), s.share_conv_channel, 3)
    heads = {"heatmap": s.num_classes, **HEAD_CHANNELS}
    f = s.final_kernel
    task = sum(_conv(s.share_conv_channel, s.head_conv, f) + f * f * s.head_conv * c + c for c in heads.values())
    return {"pfn_channels": encoder, backbone_key: backbone, "neck_out_channels": neck,
            "share_conv_channel": shared, "head_conv": task}


def activations(s: CenterPointSettings) -> dict[str, int]:
    """The widest tensors, by the setting that makes them wide: the encoder's per-point
    features of the most voxels the voxelizer or the profile admits (max_voxels), the pillar canvas and the BEV maps
    of the backbone, neck and head (the grid: voxel_size, and their widths)."""
    nx, ny, _ = s.grid_size
    voxels = max(s.voxel_profile[2], s.max_voxels)  # the voxelizer fills up to max_voxels
    encoder = voxels * s.max_points_per_voxel * max(s.in_channels, *s.pfn_channels)
    backbone = max(c * (nx // stride) * (ny // stride)
                   for c, stride in zip(s.backbone_output_channels, s.backbone_output_strides, strict=True))
    hy, hx = s.head_size
    return {"max_voxels": encoder, "voxel_size": s.pillar_channels * nx * ny,
            "backbone_out_channels" if s.backbone == "SECOND" else "convnext_channels": backbone,
            "neck_out_channels": sum(s.neck_out_channels) * hx * hy,
            "share_conv_channel": max(s.share_conv_channel, s.head_conv) * hx * hy}
