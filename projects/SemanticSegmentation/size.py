"""How big the model's settings make it: parameters and the largest activation, counted
from `model.py`'s UNet without building it (ProjectAdapter.model_size)."""

from __future__ import annotations


def _block(cin: int, cout: int) -> int:
    return 9 * cin * cout + 9 * cout * cout + 4 * cout  # two 3x3 convs + BNs


def unet_parameters(in_channels: int, base: int, depth: int, num_classes: int) -> int:
    widths = [base * 2**i for i in range(depth)]
    total, prev = 0, in_channels
    for w in widths:
        total += _block(prev, w)
        prev = w
    total += sum(_block(widths[i + 1] + widths[i], widths[i]) for i in range(depth - 1))
    return total + widths[0] * num_classes + num_classes


def activations(in_channels: int, base: int, depth: int, num_classes: int, hw: tuple[int, int] | None) -> dict[str, int]:
    """The full-resolution maps: the last decoder's concatenation (3 x base, or base at
    depth 1) or the logits; unknown before the data is read unless the config declares H, W."""
    if hw is None:
        return {}
    h, w = hw
    widest = 3 * base if depth > 1 else base
    return {"base_channels": max(in_channels, widest, num_classes) * h * w}
