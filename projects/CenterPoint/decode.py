"""Head maps -> 3D boxes, as mmdet3d's CenterHead.predict_by_feat does for a circle-NMS
config, in numpy.

For the one task of the head (batch 1):

1. `CenterPointBBoxCoder.decode`: sigmoid the heatmap, take the top `pre_max_size`
   (the coder's `max_num`) (class, cell) pairs over all classes of the task, place each
   box at its cell plus the regressed sub-cell offset scaled to metres
   (`out_size_factor * voxel_size` per cell, from the range minimum); `dim` is log-size
   (exp, `norm_bbox=True`), yaw is atan2(sin, cos), `height` the gravity-centre z. Keep
   the boxes whose score is strictly above `score_threshold` (0 keeps all) and whose
   gravity centre lies inside `post_center_range` (when given).
2. `circle_nms` across all classes of the task: greedy in score order, a box is dropped
   when a kept box's BEV centre lies at a *squared* distance <= `min_radius[task]`
   (mmdet3d's unit: m^2), whatever the two labels; the first `post_max_size` survivors.
3. z becomes the bottom centre (`z - h / 2`) of mmdet3d's LiDAR boxes (the `bbox_3d`
   convention of the info files).

With `rot_y_axis_reference` the graph emits AWML's Autoware layout (`dim` as w, l, h and
`rot` as -cos, -sin); AWML's coder (`y_axis_reference=True`) decodes those channels as
usual, then swaps l/w and turns the yaw into `-yaw - pi/2`. That is done here too, so
the yaw lies in (-3pi/2, pi/2] exactly as AWML reports it.

Boxes: (N, 7) [x, y, z_bottom, l, w, h, yaw]; velocities (N, 2) travel separately.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .settings import CenterPointSettings


def from_rot_y_axis_reference(dim: np.ndarray, rot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Undo the export layout on the maps: dim (w, l, h) -> (l, w, h); rot (-cos, -sin) -> (sin, cos)."""
    return dim[:, [1, 0, 2]], np.concatenate([-rot[:, 1:2], -rot[:, 0:1]], axis=1)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def circle_nms(centers: np.ndarray, scores: np.ndarray, min_radius: float, post_max_size: int) -> np.ndarray:
    """Indices kept by mmdet3d's circle NMS, highest score first.

    The order is numpy's `argsort(scores)[::-1]`, as in mmdet3d (so ties resolve the
    same way); box j is suppressed by a kept box i earlier in that order when
    (xi - xj)^2 + (yi - yj)^2 <= min_radius, labels not considered. Returns at most
    `post_max_size` indices. One pass in score order, each step a vector operation."""
    order = np.argsort(scores)[::-1]
    xy = np.asarray(centers, np.float64)[order, :2]
    d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
    suppress = d2 <= min_radius
    alive = np.ones(len(order), bool)
    for i in range(len(order)):
        if alive[i]:
            later = suppress[i].copy()
            later[: i + 1] = False
            alive &= ~later
    return order[alive][:post_max_size]


def decode(outputs: Mapping[str, np.ndarray], s: CenterPointSettings) -> dict[str, np.ndarray]:
    heat = sigmoid(np.asarray(outputs["heatmap"], np.float64)[0])  # (K, H, W)
    reg = np.asarray(outputs["reg"], np.float64)[0]
    height = np.asarray(outputs["height"], np.float64)[0]
    dim = np.asarray(outputs["dim"], np.float64)[0]
    rot = np.asarray(outputs["rot"], np.float64)[0]
    vel = np.asarray(outputs["vel"], np.float64)[0]
    k, h, w = heat.shape

    flat = heat.reshape(-1)
    top = min(s.pre_max_size, flat.size)
    cand = np.argpartition(-flat, top - 1)[:top]
    cand = cand[np.lexsort((cand, -flat[cand]))]  # score desc, index asc: ties are stable
    scores = flat[cand]
    labels = cand // (h * w)
    ys, xs = (cand % (h * w)) // w, cand % w

    step_x = s.out_size_factor * s.voxel_size[0]
    step_y = s.out_size_factor * s.voxel_size[1]
    x = (xs + reg[0, ys, xs]) * step_x + s.point_cloud_range[0]
    y = (ys + reg[1, ys, xs]) * step_y + s.point_cloud_range[1]
    size = np.exp(dim[:, ys, xs]).T  # (N, 3): l, w, h (w, l, h in the y-axis layout)
    z = height[0, ys, xs]  # gravity centre until the very end
    yaw = np.arctan2(rot[0, ys, xs], rot[1, ys, xs])
    if s.rot_y_axis_reference:
        size = size[:, [1, 0, 2]]
        yaw = -yaw - np.pi / 2
    boxes = np.column_stack([x, y, z, size, yaw]).reshape(-1, 7)
    velocity = vel[:, ys, xs].T.reshape(-1, 2)

    keep = np.ones(len(scores), bool)
    if s.score_threshold:
        keep &= scores > s.score_threshold
    if s.post_center_range is not None:
        lo, hi = np.asarray(s.post_center_range[:3]), np.asarray(s.post_center_range[3:])
        keep &= np.all((boxes[:, :3] >= lo) & (boxes[:, :3] <= hi), axis=1)
    boxes, scores, labels, velocity = boxes[keep], scores[keep], labels[keep], velocity[keep]

    kept = circle_nms(boxes[:, :2], scores, s.min_radius[0], s.post_max_size)
    boxes = boxes[kept]
    boxes[:, 2] -= boxes[:, 5] / 2
    return {
        "boxes": boxes.astype(np.float32).reshape(-1, 7),
        "scores": scores[kept].astype(np.float32),
        "labels": labels[kept].astype(np.int64),
        "velocities": velocity[kept].astype(np.float32).reshape(-1, 2),
    }
