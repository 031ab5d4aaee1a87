"""YOLOX with the ELAN-Darknet backbone ("opt-elan") in plain PyTorch.

Module and parameter names follow the mmcv/mmdet/AWML layout (`backbone.stem.conv.0.conv`,
`backbone.stage2.1.blocks.0.conv1.bn`, `neck.top_down_blocks.0.final_conv`,
`bbox_head.multi_level_conv_cls.2` ...) so that an AWML checkpoint loads with strict key
checking and no renaming. Only the layout is mirrored; the code is written for this
harness and needs neither mmcv nor mmdet.

Structure (widths at widen_factor=1, AWML's ELANDarknet "P5" arch):
    stem        3 -> 32, two 3x3 convs (first with stride 2)
    stage1..4   stride-2 3x3 conv then ELAN: 64, 128, 256, 512 channels
    neck        PAFPN with ELAN blocks on stages 2..4 (strides 8, 16, 32)
    head        YOLOX decoupled head: per level stacked cls/reg convs, 1x1 cls/reg/obj
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence

import torch
from torch import nn

from .settings import YoloxSettings

# in_channels, out_channels, num_blocks, expand_ratio, add_identity (before widen/deepen)
ELAN_DARKNET_P5: tuple[tuple[int, int, int, float, bool], ...] = (
    (32, 64, 1, 0.5, True),
    (64, 128, 3, 0.5, True),
    (128, 256, 3, 0.5, True),
    (256, 512, 1, 0.5, False),
)
NECK_BASE_OUT_CHANNELS = 128  # AWML neck/head width at widen_factor=1


def make_activation(name: str) -> nn.Module:
    if name == "ReLU6":
        return nn.ReLU6(inplace=True)
    if name == "ReLU":
        return nn.ReLU(inplace=True)
    if name == "SiLU":
        return nn.SiLU(inplace=True)
    if name == "LeakyReLU":
        return nn.LeakyReLU(0.1, inplace=True)
    raise ValueError(f"unknown activation {name!r}")


class ConvModule(nn.Module):
    """Conv2d (no bias) -> BatchNorm -> activation; attribute names as in mmcv's ConvModule."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, act: str = "ReLU6") -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=1e-3, momentum=0.03)
        self.activate = make_activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    """Two 3x3 convs with an optional residual (AWML's DarknetBottleneckOpt)."""

    def __init__(self, channels: int, add_identity: bool, act: str) -> None:
        super().__init__()
        self.conv1 = ConvModule(channels, channels, 3, act=act)
        self.conv2 = ConvModule(channels, channels, 3, act=act)
        self.add_identity = add_identity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.conv2(self.conv1(x))
        return out + x if self.add_identity else out


class ELAN(nn.Module):
    """Efficient layer aggregation: a short 1x1 branch plus a chain of bottlenecks whose
    every intermediate output is concatenated, then fused by a 1x1 conv."""

    def __init__(self, cin: int, cout: int, num_blocks: int, expand_ratio: float, add_identity: bool, act: str) -> None:
        super().__init__()
        mid = int(cout * expand_ratio)
        self.main_conv = ConvModule(cin, mid, 1, act=act)
        self.short_conv = ConvModule(cin, mid, 1, act=act)
        self.blocks = nn.Sequential(*[Bottleneck(mid, add_identity, act) for _ in range(num_blocks)])
        self.final_conv = ConvModule((num_blocks + 1) * mid, cout, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        parts = [self.short_conv(x)]
        y = self.main_conv(x)
        for block in self.blocks:
            y = block(y)
            parts.append(y)
        return self.final_conv(torch.cat(parts, dim=1))


class Stem(nn.Module):
    def __init__(self, cout: int, act: str) -> None:
        super().__init__()
        self.conv = nn.Sequential(ConvModule(3, cout, 3, 2, act=act), ConvModule(cout, cout, 3, 1, act=act))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class ELANDarknet(nn.Module):
    """Backbone; returns the outputs of stages 2, 3, 4 (strides 8, 16, 32)."""

    def __init__(self, widen: float, deepen: float, act: str) -> None:
        super().__init__()
        self.stem = Stem(int(ELAN_DARKNET_P5[0][0] * widen), act)
        stages, widths = [], []
        for cin, cout, blocks, ratio, identity in ELAN_DARKNET_P5:
            cin, cout = int(cin * widen), int(cout * widen)
            n = max(round(blocks * deepen), 1)
            down = ConvModule(cin, cout, 3, 2, act=act)
            stages.append(nn.Sequential(down, ELAN(cout, cout, n, ratio, identity, act)))
            widths.append(cout)
        self.stage1, self.stage2, self.stage3, self.stage4 = stages
        self.out_channels: list[int] = widths[1:]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = self.stage1(self.stem(x))
        c3 = self.stage2(x)
        c4 = self.stage3(c3)
        c5 = self.stage4(c4)
        return c3, c4, c5


class PAFPNELAN(nn.Module):
    """YOLOX PAFPN with ELAN blocks: top-down then bottom-up fusion, 1x1 output convs."""

    def __init__(self, in_channels: Sequence[int], out_channels: int, num_blocks: int, act: str) -> None:
        super().__init__()
        ch = list(in_channels)
        n = len(ch)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.reduce_layers = nn.ModuleList()
        self.top_down_blocks = nn.ModuleList()
        for idx in range(n - 1, 0, -1):
            self.reduce_layers.append(ConvModule(ch[idx], ch[idx - 1], 1, act=act))
            self.top_down_blocks.append(ELAN(ch[idx - 1] * 2, ch[idx - 1], num_blocks, 0.5, False, act))
        self.downsamples = nn.ModuleList()
        self.bottom_up_blocks = nn.ModuleList()
        for idx in range(n - 1):
            self.downsamples.append(ConvModule(ch[idx], ch[idx], 3, 2, act=act))
            self.bottom_up_blocks.append(ELAN(ch[idx] * 2, ch[idx + 1], num_blocks, 0.5, False, act))
        self.out_convs = nn.ModuleList([ConvModule(c, out_channels, 1, act=act) for c in ch])

    def forward(self, feats: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
        n = len(feats)
        inner = [feats[-1]]
        for k, idx in enumerate(range(n - 1, 0, -1)):
            high = self.reduce_layers[k](inner[0])
            inner[0] = high
            fused = self.top_down_blocks[k](torch.cat([self.upsample(high), feats[idx - 1]], dim=1))
            inner.insert(0, fused)
        outs = [inner[0]]
        for idx in range(n - 1):
            down = self.downsamples[idx](outs[-1])
            outs.append(self.bottom_up_blocks[idx](torch.cat([down, inner[idx + 1]], dim=1)))
        return tuple(conv(o) for conv, o in zip(self.out_convs, outs, strict=True))


class YOLOXHead(nn.Module):
    """Decoupled head, one branch set per level (mmdet's YOLOXHead layout)."""

    def __init__(self, num_classes: int, in_channels: int, feat_channels: int, stacked_convs: int,
                 num_levels: int, act: str) -> None:
        super().__init__()
        self.num_classes = num_classes

        def stack() -> nn.Sequential:
            return nn.Sequential(*[
                ConvModule(in_channels if i == 0 else feat_channels, feat_channels, 3, act=act)
                for i in range(stacked_convs)
            ])

        out_in = feat_channels if stacked_convs > 0 else in_channels
        self.multi_level_cls_convs = nn.ModuleList([stack() for _ in range(num_levels)])
        self.multi_level_reg_convs = nn.ModuleList([stack() for _ in range(num_levels)])
        self.multi_level_conv_cls = nn.ModuleList([nn.Conv2d(out_in, num_classes, 1) for _ in range(num_levels)])
        self.multi_level_conv_reg = nn.ModuleList([nn.Conv2d(out_in, 4, 1) for _ in range(num_levels)])
        self.multi_level_conv_obj = nn.ModuleList([nn.Conv2d(out_in, 1, 1) for _ in range(num_levels)])
        prior_bias = -math.log((1 - 0.01) / 0.01)  # start every score near 0.01
        for conv in (*self.multi_level_conv_cls, *self.multi_level_conv_obj):
            nn.init.constant_(conv.bias, prior_bias)

    def forward(
        self, feats: Sequence[torch.Tensor]
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        """Per level: class logits (B, C, H, W), raw box (B, 4, H, W), objectness logit (B, 1, H, W)."""
        cls_scores, bbox_preds, objectnesses = [], [], []
        for i, x in enumerate(feats):
            cls_feat = self.multi_level_cls_convs[i](x)
            reg_feat = self.multi_level_reg_convs[i](x)
            cls_scores.append(self.multi_level_conv_cls[i](cls_feat))
            bbox_preds.append(self.multi_level_conv_reg[i](reg_feat))
            objectnesses.append(self.multi_level_conv_obj[i](reg_feat))
        return cls_scores, bbox_preds, objectnesses


class YOLOX(nn.Module):
    def __init__(self, settings: YoloxSettings) -> None:
        super().__init__()
        act = settings.activation
        self.backbone = ELANDarknet(settings.widen_factor, settings.deepen_factor, act)
        width = int(NECK_BASE_OUT_CHANNELS * settings.widen_factor)
        self.neck = PAFPNELAN(self.backbone.out_channels, width, settings.neck_blocks, act)
        self.bbox_head = YOLOXHead(settings.num_classes, width, width, settings.head_stacked_convs,
                                   len(settings.strides), act)

    def forward(self, images: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
        return self.bbox_head(self.neck(self.backbone(images)))


class YOLOXExportWrapper(nn.Module):
    """What is exported and what every backend runs: images (B, 3, H, W) BGR 0-255 ->
    (B, A, 4 + 1 + C) = raw box regression, sigmoid objectness, sigmoid class scores,
    levels concatenated stride-8 first, each level row-major over (y, x)."""

    def __init__(self, model: YOLOX) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        cls_scores, bbox_preds, objectnesses = self.model(images)
        levels = []
        for cls, box, obj in zip(cls_scores, bbox_preds, objectnesses, strict=True):
            out = torch.cat([box, obj.sigmoid(), cls.sigmoid()], dim=1)
            levels.append(out.reshape(out.shape[0], out.shape[1], -1))
        return torch.cat(levels, dim=2).permute(0, 2, 1)


_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "ReLU6": nn.ReLU6, "ReLU": nn.ReLU, "SiLU": nn.SiLU, "LeakyReLU": nn.LeakyReLU,
}


def replace_activation(module: nn.Module, old: str, new: str) -> int:
    """Swap every `old` activation module for `new`, in place; returns how many.
    (ReLU6 -> ReLU before export, as AWML deploys it.) Exact type match, so ReLU6,
    a subclass of Hardtanh, is never confused with other clamps."""
    old_cls = _ACTIVATIONS[old]
    count = 0
    for parent in module.modules():
        for name, child in list(parent.named_children()):
            if type(child) is old_cls:
                setattr(parent, name, make_activation(new))
                count += 1
    return count


def build_yolox(settings: YoloxSettings) -> YOLOX:
    """Seeded construction, so a random-init model (no checkpoint) is reproducible."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        return YOLOX(settings)


def export_module(model: YOLOX, settings: YoloxSettings) -> YOLOXExportWrapper:
    """A deep copy in eval mode with the export activation swapped in; the trained
    model itself is left untouched."""
    copy_ = copy.deepcopy(model).eval()
    if settings.export_activation is not None and settings.export_activation != settings.activation:
        replace_activation(copy_, settings.activation, settings.export_activation)
    return YOLOXExportWrapper(copy_).eval()
