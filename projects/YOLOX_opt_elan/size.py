"""How big the model's settings make it: parameters and the largest activation, counted
from `model.py`'s layout (ELAN-Darknet, PAFPN-ELAN, decoupled head) without building it
(ProjectAdapter.model_size). Conv weights and BatchNorm; biases of the 1x1 predictors."""

from __future__ import annotations

from .settings import YoloxSettings

# (in, out, blocks) per backbone stage at widen = deepen = 1 (model.ELAN_DARKNET_P5)
STAGES = ((32, 64, 1), (64, 128, 3), (128, 256, 3), (256, 512, 1))
STEM = 32
NECK = 128  # model.NECK_BASE_OUT_CHANNELS


def _conv(cin: int, cout: int, k: int) -> int:
    return k * k * cin * cout + 2 * cout  # conv without bias + BN


def _elan(cin: int, cout: int, blocks: int) -> int:
    mid = int(cout * 0.5)
    return 2 * _conv(cin, mid, 1) + blocks * 2 * _conv(mid, mid, 3) + _conv((blocks + 1) * mid, cout, 1)


def parameters(s: YoloxSettings) -> dict[str, int]:
    """{settings key: parameters}: backbone and neck by widen_factor, the head by its convs."""
    w, d = s.widen_factor, s.deepen_factor
    stem = int(STEM * w)
    backbone = _conv(3, stem, 3) + _conv(stem, stem, 3)
    widths = []
    for cin, cout, blocks in STAGES:
        cin, cout = int(cin * w), int(cout * w)
        backbone += _conv(cin, cout, 3) + _elan(cout, cout, max(round(blocks * d), 1))
        widths.append(cout)
    ch, width, nb = widths[1:], int(NECK * w), s.neck_blocks
    neck = 0
    for i in range(len(ch) - 1, 0, -1):
        neck += _conv(ch[i], ch[i - 1], 1) + _elan(2 * ch[i - 1], ch[i - 1], nb)
    for i in range(len(ch) - 1):
        neck += _conv(ch[i], ch[i], 3) + _elan(2 * ch[i], ch[i + 1], nb)
    neck += sum(_conv(c, width, 1) for c in ch)
    stack = sum(_conv(width, width, 3) for _ in range(s.head_stacked_convs))
    head = len(s.strides) * (2 * stack + (width + 1) * (s.num_classes + 5))
    return {"widen_factor": backbone + neck, "head_stacked_convs": head}


def activations(s: YoloxSettings) -> dict[str, int]:
    """The widest early maps: the stem at stride 2 and stage 1's ELAN concatenation at
    stride 4 (by widen_factor), the input (by input_size)."""
    h, w = s.input_size
    stem = int(STEM * s.widen_factor) * (h // 2) * (w // 2)
    cout = int(STAGES[0][1] * s.widen_factor)
    concat = (max(round(STAGES[0][2] * s.deepen_factor), 1) + 1) * int(cout * 0.5) * (h // 4) * (w // 4)
    return {"widen_factor": max(stem, concat), "input_size": 3 * h * w}
