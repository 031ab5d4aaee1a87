"""YOLOX pre- and postprocessing in numpy: the same code runs for every backend.

Preprocess follows mmdet's YOLOX test pipeline: a BGR uint8 image is resized keeping
its aspect ratio so that it fits the network input (bilinear, half-pixel centres like
cv2.INTER_LINEAR, rounded back to uint8 as the image stays uint8 there), padded with 114
on the bottom and right, and fed as float 0-255 with no mean/std.

Postprocess decodes the exported `(B, A, 4 + 1 + C)` tensor: anchor points per level
(row-major, stride 8 first), centre = (xy + grid) * stride, size = exp(wh) * stride,
score = objectness * best class score, score threshold, class-aware NMS, top-k, and the
boxes are mapped back to the original image by the kept scale factor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_MAX_LOG_WH = 15.0  # exp() guard: an untrained net must not produce inf boxes


@dataclass(frozen=True)
class Letterbox:
    """Where the original image sits in the padded network input."""

    scale: float  # resize ratio (min over height and width ratios)
    resized_hw: tuple[int, int]
    original_hw: tuple[int, int]

    @property
    def scale_xy(self) -> tuple[float, float]:
        """Per-axis factor actually applied (after rounding the size), as mmdet keeps it."""
        return (self.resized_hw[1] / self.original_hw[1], self.resized_hw[0] / self.original_hw[0])


def letterbox_geometry(original_hw: tuple[int, int], input_hw: tuple[int, int]) -> Letterbox:
    h, w = original_hw
    scale = min(input_hw[0] / h, input_hw[1] / w)
    # at least one pixel: a 1x385 strip must not vanish (found by the property tests)
    new_h = max(1, min(int(h * scale + 0.5), input_hw[0]))
    new_w = max(1, min(int(w * scale + 0.5), input_hw[1]))
    return Letterbox(scale=scale, resized_hw=(new_h, new_w), original_hw=(h, w))


def resize_bilinear(image: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """(H, W, C) -> (h, w, C) float32, half-pixel centres, edges clamped. Vectorized."""
    in_h, in_w = image.shape[:2]
    out_h, out_w = out_hw
    src = image.astype(np.float32)

    def axis(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pos = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
        pos = np.clip(pos, 0.0, n_in - 1)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, n_in - 1)
        return lo, hi, (pos - lo).astype(np.float32)

    y0, y1, fy = axis(in_h, out_h)
    x0, x1, fx = axis(in_w, out_w)
    fx = fx[None, :, None]
    fy = fy[:, None, None]
    rows = src[:, x0] * (1 - fx) + src[:, x1] * fx  # separable: along x on the input rows first
    return rows[y0] * (1 - fy) + rows[y1] * fy


def letterbox(
    image_bgr: np.ndarray, input_hw: tuple[int, int], pad_value: float = 114.0
) -> tuple[np.ndarray, Letterbox]:
    """(H, W, 3) uint8 BGR -> ((1, 3, h, w) float32 BGR 0-255, geometry)."""
    geo = letterbox_geometry(image_bgr.shape[:2], input_hw)
    if geo.resized_hw == tuple(image_bgr.shape[:2]):
        resized = image_bgr.astype(np.float32)
    else:
        resized = np.clip(np.rint(resize_bilinear(image_bgr, geo.resized_hw)), 0, 255)
    canvas = np.full((input_hw[0], input_hw[1], 3), pad_value, dtype=np.float32)
    canvas[: geo.resized_hw[0], : geo.resized_hw[1]] = resized
    return np.ascontiguousarray(canvas.transpose(2, 0, 1)[None]), geo


def priors(input_hw: tuple[int, int], strides: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """Grid (x, y) cell indices (A, 2) and per-point stride (A,), in output order."""
    grids, point_strides = [], []
    for s in strides:
        h, w = input_hw[0] // s, input_hw[1] // s
        ys, xs = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
        grids.append(np.stack([xs.ravel(), ys.ravel()], axis=1))
        point_strides.append(np.full(h * w, s, dtype=np.float32))
    return np.concatenate(grids), np.concatenate(point_strides)


def num_priors(input_hw: tuple[int, int], strides: Sequence[int]) -> int:
    return sum((input_hw[0] // s) * (input_hw[1] // s) for s in strides)


def decode_boxes(raw: np.ndarray, grid: np.ndarray, stride: np.ndarray) -> np.ndarray:
    """raw (A, 4) dx, dy, log w, log h -> (A, 4) x1, y1, x2, y2 in network-input pixels."""
    centre = (raw[:, :2] + grid) * stride[:, None]
    size = np.exp(np.minimum(raw[:, 2:4], _MAX_LOG_WH)) * stride[:, None]
    return np.concatenate([centre - size / 2, centre + size / 2], axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float, max_keep: int | None = None) -> np.ndarray:
    """Greedy NMS; indices kept, highest score first (ties broken by index, stable)."""
    order = np.argsort(-scores, kind="stable")
    boxes = boxes.astype(np.float64)
    areas = np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None)
    keep: list[int] = []
    while order.size:
        i = order[0]
        keep.append(int(i))
        if max_keep is not None and len(keep) >= max_keep:
            break
        rest = order[1:]
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        wh = np.clip(rb - lt, 0, None)
        inter = wh[:, 0] * wh[:, 1]
        union = areas[i] + areas[rest] - inter
        iou = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float,
                max_keep: int | None = None) -> np.ndarray:
    """Class-aware NMS: boxes of different labels never suppress each other (each class
    is shifted to its own coordinate range, then one NMS runs)."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    span = float(np.max(boxes) - min(float(np.min(boxes)), 0.0)) + 1.0
    shifted = boxes.astype(np.float64) + (labels.astype(np.float64) * span)[:, None]
    return nms(shifted, scores, iou_threshold, max_keep)


@dataclass(frozen=True)
class PostprocessParams:
    input_hw: tuple[int, int]
    strides: tuple[int, ...]
    num_classes: int
    score_threshold: float
    nms_iou_threshold: float
    max_detections: int | None  # None: no cap


def postprocess(output: np.ndarray, geo: Letterbox, params: PostprocessParams) -> dict[str, np.ndarray]:
    """One image's `(A, 5 + C)` (or `(1, A, 5 + C)`) -> boxes in original-image pixels."""
    out = np.asarray(output, dtype=np.float32)
    if out.ndim == 3:
        out = out[0]
    expected = num_priors(params.input_hw, params.strides)
    if out.shape != (expected, 5 + params.num_classes):
        raise ValueError(f"YOLOX output has shape {out.shape}, expected ({expected}, {5 + params.num_classes})")
    grid, stride = priors(params.input_hw, params.strides)
    cls = out[:, 5:]
    labels = np.argmax(cls, axis=1)
    scores = out[:, 4] * cls[np.arange(len(cls)), labels]
    keep = np.flatnonzero(scores >= params.score_threshold)
    boxes = decode_boxes(out[keep, :4], grid[keep], stride[keep])
    scores, labels = scores[keep], labels[keep]
    kept = batched_nms(boxes, scores, labels, params.nms_iou_threshold, params.max_detections)
    boxes, scores, labels = boxes[kept], scores[kept], labels[kept]
    sx, sy = geo.scale_xy
    boxes = boxes / np.array([sx, sy, sx, sy], dtype=np.float64)
    h, w = geo.original_hw
    boxes = np.clip(boxes, 0, [w, h, w, h])
    return {
        "boxes": boxes.astype(np.float32).reshape(-1, 4),
        "scores": scores.astype(np.float32),
        "labels": labels.astype(np.int64),
    }
