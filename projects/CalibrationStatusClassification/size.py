"""How big the model's settings make it: parameters and the largest activation, counted
from `model.py`'s ResNet-18 layout without building it (ProjectAdapter.model_size)."""

from __future__ import annotations

import math

STAGE_BLOCKS = (2, 2, 2, 2)  # ResNet-18


def resnet18_parameters(in_channels: int, base: int, num_classes: int) -> int:
    total = 49 * in_channels * base + 2 * base  # 7x7 stem conv + BN
    cin = base
    for stage, blocks in enumerate(STAGE_BLOCKS):
        width = base * 2**stage
        for block in range(blocks):
            total += 9 * cin * width + 9 * width * width + 4 * width  # two 3x3 convs + BNs
            if block == 0 and cin != width:
                total += cin * width + 2 * width  # 1x1 downsample + BN
            cin = width
    return total + cin * num_classes + num_classes


def activations(in_channels: int, base: int, hw: tuple[int, int] | None) -> dict[str, int]:
    """The stem's output (base channels at half the input size), and the input itself."""
    if hw is None:
        return {}
    h, w = hw
    return {"base_channels": base * math.ceil(h / 2) * math.ceil(w / 2), "input_size": in_channels * h * w}
