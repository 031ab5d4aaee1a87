"""CenterPoint (pillars) in plain PyTorch, laid out so mmdet3d/AWML checkpoints load.

    pts_voxel_encoder   PillarFeatureNet / AWML's BackwardPillarFeatureNet: PFN layers
                        (linear, BN1d, ReLU, max over points); the two differ only in the
                        decoration done before the graph (voxelize.decorate)
    (scatter)           numpy, between the graphs: see voxelize.scatter
    pts_backbone        SECOND: strided conv stages, or AWML's ConvNeXt_PC
    pts_neck            SECONDFPN: per-stage upsampling to one stride, concatenated
    pts_bbox_head       CenterHead: shared conv, then one SeparateHead per task

Parameter names follow mmdet3d (`pfn_layers.0.linear`, `blocks.0.0`, `deblocks.0.0`,
`shared_conv.conv/bn`, `task_heads.0.heatmap.0.conv/bn`, `task_heads.0.heatmap.1`),
BatchNorm uses eps=1e-3 and momentum=0.01 as the configs set them, except in the head,
where mmdet3d's CenterHead defaults to BN2d (eps 1e-5) for `shared_conv` (its `norm_cfg`)
and, separately, for the task heads (`separate_head.norm_cfg`): settings
`head_norm_eps` / `separate_head_norm_eps`. Convs before a BN carry no bias.
All classes form one task here (one heatmap with a channel per class).

The two exported graphs are the wrappers at the bottom: `VoxelEncoderGraph` and
`BackboneNeckHeadGraph` (which also applies the optional rot_y_axis_reference layout).
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from .settings import CenterPointSettings

HEADS = OrderedDict([("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2)])
BN_EPS, BN_MOMENTUM = 1e-3, 0.01


def _bn2d(channels: int, eps: float = BN_EPS) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=eps, momentum=BN_MOMENTUM)


class PFNLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, last_layer: bool) -> None:
        super().__init__()
        self.last_layer = last_layer
        if not last_layer:  # the other half is the broadcast max
            out_channels //= 2
        self.linear = nn.Linear(in_channels, out_channels, bias=False)
        self.norm = nn.BatchNorm1d(out_channels, eps=BN_EPS, momentum=BN_MOMENTUM)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)  # (V, P, C)
        x = self.norm(x.permute(0, 2, 1)).permute(0, 2, 1)
        x = torch.relu(x)
        x_max = x.max(dim=1, keepdim=True)[0]  # (V, 1, C)
        if self.last_layer:
            return x_max
        return torch.cat([x, x_max.expand(-1, x.shape[1], -1)], dim=2)


class PillarFeatureNet(nn.Module):
    """(V, P, C) decorated, zero-padded point features -> (V, 1, C') pillar features."""

    def __init__(self, in_channels: int, feat_channels: tuple[int, ...]) -> None:
        super().__init__()
        widths = (in_channels, *feat_channels)
        self.pfn_layers = nn.ModuleList(
            PFNLayer(widths[i], widths[i + 1], last_layer=i == len(feat_channels) - 1)
            for i in range(len(feat_channels))
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        for layer in self.pfn_layers:
            features = layer(features)
        return features


class PointPillarsScatter(nn.Module):
    """Torch twin of voxelize.scatter, used in training (batched coords b, z, y, x)."""

    def __init__(self, channels: int, grid_xy: tuple[int, int]) -> None:
        super().__init__()
        self.channels = channels
        self.nx, self.ny = grid_xy

    def forward(self, pillars: torch.Tensor, coords: torch.Tensor, batch_size: int) -> torch.Tensor:
        feats = pillars.reshape(pillars.shape[0], -1)
        canvas = feats.new_zeros(batch_size, self.channels, self.ny * self.nx)
        index = coords[:, 2].long() * self.nx + coords[:, 3].long()
        canvas[coords[:, 0].long(), :, index] = feats
        return canvas.view(batch_size, self.channels, self.ny, self.nx)


class SECOND(nn.Module):
    def __init__(
        self, in_channels: int, out_channels: tuple[int, ...], layer_nums: tuple[int, ...], strides: tuple[int, ...]
    ) -> None:
        super().__init__()
        blocks = []
        c_in = in_channels
        for c_out, n, s in zip(out_channels, layer_nums, strides, strict=True):
            layers: list[nn.Module] = [
                nn.Conv2d(c_in, c_out, 3, stride=s, padding=1, bias=False),
                _bn2d(c_out),
                nn.ReLU(inplace=True),
            ]
            for _ in range(n):
                layers += [nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _bn2d(c_out), nn.ReLU(inplace=True)]
            blocks.append(nn.Sequential(*layers))
            c_in = c_out
        self.blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for block in self.blocks:
            x = block(x)
            outs.append(x)
        return outs


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of (N, C, H, W)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvNeXtBlock(nn.Module):
    """Residual block: 7x7 depthwise conv, LayerNorm (eps 1e-6), per-pixel MLP (C -> 4C,
    GELU, -> C) and an optional per-channel layer scale `gamma`, added to the input.
    Parameter names are mmpretrain's ConvNeXtBlock with `linear_pw_conv=True`."""

    def __init__(self, channels: int, layer_scale: float) -> None:
        super().__init__()
        self.depthwise_conv = nn.Conv2d(channels, channels, 7, padding=3, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pointwise_conv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.pointwise_conv2 = nn.Linear(4 * channels, channels)
        self.gamma = nn.Parameter(torch.full((channels,), float(layer_scale))) if layer_scale > 0 else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.depthwise_conv(x).permute(0, 2, 3, 1)  # channels last for the MLP
        y = self.pointwise_conv2(self.act(self.pointwise_conv1(self.norm(y)))).permute(0, 3, 1, 2)
        if self.gamma is not None:
            y = y * self.gamma.view(1, -1, 1, 1)
        return x + y


class ConvNeXtPC(nn.Module):
    """AWML's ConvNeXt_PC (first_downsample=1, no large kernels) on the pillar canvas.

    Stage 0 runs at the canvas resolution with the PFN width; stage i > 0 starts with
    `downsample_layers.i` (LayerNorm2d eps 1e-5, 2x2 stride-2 conv with bias) and so has
    stride 2**i. Each stage in `out_indices` is returned through its `norm{i}`
    (LayerNorm2d eps 1e-6), no pooling (gap_before_final_norm=False)."""

    def __init__(
        self, in_channels: int, channels: tuple[int, ...], depths: tuple[int, ...], out_indices: tuple[int, ...],
        layer_scale: float,
    ) -> None:
        super().__init__()
        widths = (in_channels, *channels[1:])
        self.out_indices = tuple(out_indices)
        self.downsample_layers = nn.ModuleList([nn.Identity()])  # index 0: none, as in AWML's layout
        for i in range(1, len(widths)):
            self.downsample_layers.append(
                nn.Sequential(LayerNorm2d(widths[i - 1]), nn.Conv2d(widths[i - 1], widths[i], 2, stride=2))
            )
        self.stages = nn.ModuleList(
            nn.Sequential(*[ConvNeXtBlock(w, layer_scale) for _ in range(d)]) for w, d in zip(widths, depths, strict=True)
        )
        for i in self.out_indices:
            self.add_module(f"norm{i}", LayerNorm2d(widths[i], eps=1e-6))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outs = []
        for i, stage in enumerate(self.stages):
            x = stage(self.downsample_layers[i](x))
            if i in self.out_indices:
                outs.append(getattr(self, f"norm{i}")(x))
        return outs


class SECONDFPN(nn.Module):
    def __init__(
        self,
        in_channels: tuple[int, ...],
        out_channels: tuple[int, ...],
        upsample_strides: tuple[float, ...],
        use_conv_for_no_stride: bool = True,
    ) -> None:
        super().__init__()
        deblocks = []
        for c_in, c_out, s in zip(in_channels, out_channels, upsample_strides, strict=True):
            if s > 1 or (s == 1 and not use_conv_for_no_stride):
                k = int(s)
                up: nn.Module = nn.ConvTranspose2d(c_in, c_out, k, stride=k, bias=False)
            else:
                k = int(round(1 / s))
                up = nn.Conv2d(c_in, c_out, k, stride=k, bias=False)
            deblocks.append(nn.Sequential(up, _bn2d(c_out), nn.ReLU(inplace=True)))
        self.deblocks = nn.ModuleList(deblocks)

    def forward(self, feats: list[torch.Tensor]) -> torch.Tensor:
        ups = [d(f) for d, f in zip(self.deblocks, feats, strict=True)]
        return torch.cat(ups, dim=1) if len(ups) > 1 else ups[0]


class ConvModule(nn.Module):
    """mmcv's ConvModule(conv, bn, relu) with its parameter names."""

    def __init__(self, c_in: int, c_out: int, kernel: int, eps: float) -> None:
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False)
        self.bn = _bn2d(c_out, eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)))


class SeparateHead(nn.Module):
    def __init__(
        self, in_channels: int, heads: dict[str, int], head_conv: int, final_kernel: int, eps: float
    ) -> None:
        super().__init__()
        self.heads = dict(heads)
        for name, channels in heads.items():
            last = nn.Conv2d(head_conv, channels, final_kernel, padding=final_kernel // 2, bias=True)
            if name == "heatmap" and last.bias is not None:  # a low prior keeps focal loss stable
                nn.init.constant_(last.bias, -2.19)
            setattr(self, name, nn.Sequential(ConvModule(in_channels, head_conv, final_kernel, eps), last))

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: getattr(self, name)(x) for name in self.heads}


class CenterHead(nn.Module):
    def __init__(
        self, in_channels: int, num_classes: int, share_conv_channel: int, head_conv: int, final_kernel: int,
        shared_eps: float, separate_eps: float,
    ) -> None:
        super().__init__()
        self.shared_conv = ConvModule(in_channels, share_conv_channel, 3, shared_eps)
        heads = OrderedDict([("heatmap", num_classes), *HEADS.items()])
        self.task_heads = nn.ModuleList([SeparateHead(share_conv_channel, heads, head_conv, final_kernel, separate_eps)])

    def forward(self, x: torch.Tensor) -> list[dict[str, torch.Tensor]]:
        x = self.shared_conv(x)
        return [task(x) for task in self.task_heads]


class CenterPoint(nn.Module):
    def __init__(self, s: CenterPointSettings) -> None:
        super().__init__()
        self.settings = s
        nx, ny, _ = s.grid_size
        self.pts_voxel_encoder = PillarFeatureNet(s.in_channels, s.pfn_channels)
        self.pts_middle_encoder = PointPillarsScatter(s.pillar_channels, (nx, ny))
        self.pts_backbone: nn.Module
        if s.backbone == "ConvNeXt_PC":
            self.pts_backbone = ConvNeXtPC(
                s.pillar_channels, s.convnext_channels, s.convnext_depths, s.convnext_out_indices,
                s.convnext_layer_scale,
            )
        else:
            self.pts_backbone = SECOND(
                s.pillar_channels, s.backbone_out_channels, s.backbone_layer_nums, s.backbone_strides
            )
        self.pts_neck = SECONDFPN(
            s.backbone_output_channels, s.neck_out_channels, s.neck_upsample_strides, s.neck_use_conv_for_no_stride
        )
        self.pts_bbox_head = CenterHead(
            sum(s.neck_out_channels), s.num_classes, s.share_conv_channel, s.head_conv, s.final_kernel,
            s.head_norm_eps, s.separate_head_norm_eps,
        )

    def head_outputs(self, spatial_features: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.pts_bbox_head(self.pts_neck(self.pts_backbone(spatial_features)))[0]

    def forward(self, input_features: torch.Tensor, coords: torch.Tensor, batch_size: int) -> dict[str, torch.Tensor]:
        """Training path: decorated voxels of a batch + (b, z, y, x) coords -> head maps."""
        pillars = self.pts_voxel_encoder(input_features)
        return self.head_outputs(self.pts_middle_encoder(pillars, coords, batch_size))


# -- exported graphs --------------------------------------------------------------------
VOXEL_ENCODER = "pts_voxel_encoder"
BACKBONE_NECK_HEAD = "pts_backbone_neck_head"
HEAD_OUTPUTS = ("heatmap", "reg", "height", "dim", "rot", "vel")


class VoxelEncoderGraph(nn.Module):
    """`input_features` (V, P, C) -> `pillar_features` (V, 1, C')."""

    def __init__(self, model: CenterPoint) -> None:
        super().__init__()
        self.encoder = model.pts_voxel_encoder

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_features)


class BackboneNeckHeadGraph(nn.Module):
    """`spatial_features` (B, C', ny, nx) -> heatmap, reg, height, dim, rot, vel (raw).

    With `rot_y_axis_reference` the outputs follow Autoware's layout: `dim` as (w, l, h)
    and `rot` as (-cos, -sin) instead of (l, w, h) and (sin, cos)."""

    def __init__(self, model: CenterPoint, rot_y_axis_reference: bool = False) -> None:
        super().__init__()
        self.backbone, self.neck, self.head = model.pts_backbone, model.pts_neck, model.pts_bbox_head
        self.rot_y_axis_reference = rot_y_axis_reference

    def forward(self, spatial_features: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.head(self.neck(self.backbone(spatial_features)))[0]
        dim, rot = out["dim"], out["rot"]
        if self.rot_y_axis_reference:
            dim = dim[:, [1, 0, 2]]
            rot = torch.cat([-rot[:, 1:2], -rot[:, 0:1]], dim=1)
        return out["heatmap"], out["reg"], out["height"], dim, rot, out["vel"]
