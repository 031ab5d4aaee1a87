"""A compact UNet (Ronneberger et al., 2015) with a 1x1 classifier, in plain PyTorch.

Encoder: `depth` stages of two 3x3 conv-BN-ReLU, each stage after the first starting
with a 2x2 max-pool and doubling the width. Decoder: per stage, bilinear upsampling x2,
concatenation with the encoder feature of the same resolution (the skip connection),
two 3x3 conv-BN-ReLU. Head: dropout-free 1x1 conv to `num_classes` logits at the input
resolution, so `logits` (B, C, H, W) is what mmseg calls `seg_logits` and the mask is its
argmax over C. Input H and W must be multiples of 2^(depth-1).

Everything here exports with the TorchScript ONNX exporter at opset 17 (Conv,
BatchNormalization folded, Relu, MaxPool, Resize, Concat) and converts to fp16.
"""

from __future__ import annotations

import torch
from torch import nn


class ConvBlock(nn.Sequential):
    """Two 3x3 convolutions, each followed by BatchNorm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class UpBlock(nn.Module):
    """Bilinear x2 upsampling, concatenation with the skip feature, ConvBlock."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int) -> None:
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.conv = ConvBlock(in_channels + skip_channels, out_channels)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        return self.conv(torch.cat([self.up(x), skip], dim=1))


class UNet(nn.Module):
    """`image` (B, in_channels, H, W) -> `logits` (B, num_classes, H, W)."""

    def __init__(self, in_channels: int = 3, num_classes: int = 6, base_channels: int = 16, depth: int = 3) -> None:
        super().__init__()
        widths = [base_channels * 2**i for i in range(depth)]
        self.encoder = nn.ModuleList()
        prev = in_channels
        for i, width in enumerate(widths):
            block = ConvBlock(prev, width)
            self.encoder.append(block if i == 0 else nn.Sequential(nn.MaxPool2d(2), block))
            prev = width
        self.decoder = nn.ModuleList(
            UpBlock(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth - 1))
        )
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for stage in self.encoder:
            x = stage(x)
            skips.append(x)
        x = skips.pop()
        for up in self.decoder:
            x = up(x, skips.pop())
        return self.head(x)
