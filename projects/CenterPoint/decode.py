"""Head maps -> 3D boxes: CenterPointBBoxCoder's decode plus circle NMS, in numpy.

Per image (batch 1): sigmoid the heatmap, take the top `pre_max_size` (class, cell)
pairs, place each box at its cell plus the regressed sub-cell offset, scaled to metres
(`out_size_factor * voxel_size` per cell, from the range minimum); `dim` is log-size
(exp), yaw is atan2(sin, cos); `height` is the box's gravity-center z and is turned
into the bottom-center z of mmdet3d's LiDAR boxes (the `bbox_3d` convention of the
info files). Then drop scores below the threshold, run circle NMS per class and keep
the best `post_max_size`.

Circle NMS here compares the BEV center *distance* with the class radius in metres
(mmdet3d compares the squared distance with its `min_radius`; our radii are metres so
the config reads naturally).

Boxes: (N, 7) [x, y, z_bottom, l, w, h, yaw]; velocities (N, 2) travel separately.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .settings import CenterPointSettings


def from_rot_y_axis_reference(dim: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undo the export layout: dim (w, l, h) -> (l, w, h); rot (-cos, -sin) -> (sin, cos)."""
    return dim[:, [1, 0, 2]], np.concatenate([-rot[:, 1:2], -rot[:, 0:1]], axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def circle_nms(centers: np.ndarray, scores: np.ndarray, labels: np.ndarray, radius: Sequence[float]) -> np.ndarray:
    """Indices kept by greedy class-wise circle NMS, highest score first.

    A box is suppressed when a kept box of the same class lies within its class radius
    (BEV center distance). One pass over the boxes in score order, each step a vector
    operation over the rest."""
    order = np.argsort(-scores, kind="stable")
    centers, labels = centers[order], labels[order]
    r = np.asarray(radius, np.float64)[labels]
    d2 = ((centers[:, None, :2] - centers[None, :, :2]) ** 2).sum(-1)
    suppress = (d2 < (r**2)[:, None]) & (labels[:, None] == labels[None, :])
    alive = np.ones(len(order), bool)
    for i in range(len(order)):
        if alive[i]:
            later = suppress[i].copy()
            later[: i + 1] = False
            alive &= ~later
    return order[alive]


def decode(outputs: Mapping[str, np.ndarray], s: CenterPointSettings) -> dict[str, np.ndarray]:
    heat = sigmoid(np.asarray(outputs["heatmap"], np.float64)[0])  # (K, H, W)
    reg = np.asarray(outputs["reg"], np.float64)[0]
    height = np.asarray(outputs["height"], np.float64)[0]
    dim = np.asarray(outputs["dim"], np.float64)
    rot = np.asarray(outputs["rot"], np.float64)
    if s.rot_y_axis_reference:
        dim, rot = from_rot_y_axis_reference(dim, rot)
    dim, rot = dim[0], rot[0]
    vel = np.asarray(outputs["vel"], np.float64)[0]
    k, h, w = heat.shape

    flat = heat.reshape(-1)
    top = min(s.pre_max_size, flat.size)
    cand = np.argpartition(-flat, top - 1)[:top]
    cand = cand[np.lexsort((cand, -flat[cand]))]  # score desc, index asc: ties are stable
    scores = flat[cand]
    keep = scores >= s.score_threshold
    cand, scores = cand[keep], scores[keep]
    labels = cand // (h * w)
    ys, xs = (cand % (h * w)) // w, cand % w

    step_x = s.out_size_factor * s.voxel_size[0]
    step_y = s.out_size_factor * s.voxel_size[1]
    x = (xs + reg[0, ys, xs]) * step_x + s.point_cloud_range[0]
    y = (ys + reg[1, ys, xs]) * step_y + s.point_cloud_range[1]
    size = np.exp(dim[:, ys, xs]).T  # (N, 3) l, w, h
    z = height[0, ys, xs] - size[:, 2] / 2
    yaw = np.arctan2(rot[0, ys, xs], rot[1, ys, xs])
    boxes = np.column_stack([x, y, z, size, yaw])
    velocity = vel[:, ys, xs].T

    kept = circle_nms(boxes[:, :2], scores, labels, s.nms_radius)[: s.post_max_size]
    return {
        "boxes": boxes[kept].astype(np.float32).reshape(-1, 7),
        "scores": scores[kept].astype(np.float32),
        "labels": labels[kept].astype(np.int64),
        "velocities": velocity[kept].astype(np.float32).reshape(-1, 2),
    }
