"""ResNet-18 calibration classifier in plain PyTorch, laid out like mmpretrain's.

AWML trains `mmpretrain.ImageClassifier` with a `ResNet(depth=18, in_channels=5)`
backbone, `GlobalAveragePooling` neck and `LinearClsHead(num_classes=2)`. The module
names below reproduce that checkpoint's state_dict keys (`backbone.conv1.weight`,
`backbone.bn1.*`, `backbone.layer1.0.conv1.weight`, `backbone.layer2.0.downsample.0.*`,
`head.fc.weight` ...), so an AWML checkpoint loads strictly without mmpretrain.
`base_channels` scales the width (64 = the real model) so CI can use a narrow copy.
"""

from __future__ import annotations

import torch
from torch import nn


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with an identity (or 1x1 projection) shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet(nn.Module):
    """mmpretrain ResNet, style="pytorch", no deep stem, output of the last stage."""

    def __init__(self, in_channels: int = 5, base_channels: int = 64, blocks: tuple[int, ...] = (2, 2, 2, 2)) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, base_channels, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(base_channels)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = base_channels
        for stage, count in enumerate(blocks):
            out_channels = base_channels * 2**stage
            layer = [BasicBlock(channels, out_channels, stride=1 if stage == 0 else 2)]
            layer += [BasicBlock(out_channels, out_channels) for _ in range(count - 1)]
            self.add_module(f"layer{stage + 1}", nn.Sequential(*layer))
            channels = out_channels
        self.num_stages = len(blocks)
        self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for stage in range(self.num_stages):
            x = getattr(self, f"layer{stage + 1}")(x)
        return x


class GlobalAveragePooling(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gap = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.gap(x), 1)


class LinearClsHead(nn.Module):
    def __init__(self, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x)


class CalibrationClassifier(nn.Module):
    """input [B, 5, H, W] (B, G, R, depth, intensity; /255) -> logits [B, num_classes].

    Exported as-is: AWML's CalibrationONNXWrapper is an identity wrapper."""

    def __init__(self, in_channels: int = 5, num_classes: int = 2, base_channels: int = 64) -> None:
        super().__init__()
        self.backbone = ResNet(in_channels, base_channels)
        self.neck = GlobalAveragePooling()
        self.head = LinearClsHead(self.backbone.out_channels, num_classes)

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 - the ONNX input name
        return self.head(self.neck(self.backbone(input)))
