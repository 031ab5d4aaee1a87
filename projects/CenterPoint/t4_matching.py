"""perception_eval's IoU and plane-distance matching values, for many box pairs at once.

metric="t4" (t4_metric.py) matches with one of perception_eval's five 3D matchers. The
centre distances are computed inside `metrics.match_groups`; the three here give, per
(prediction, GT) pair, the value perception_eval's `IOU2dMatching`, `IOU3dMatching` and
`PlaneDistanceMatching` compute (evaluation/matching/object_matching.py at 9d8c977) for
boxes built the way AWML's T4MetricV2 builds them:

- `Shape(size=bbox[3:6])`: AWML hands over (dx, dy, dz) = (l, w, h) where perception_eval
  reads (width, length, height); its footprint spans size[1] along the box's heading and
  size[0] across it. So the footprint used for IoU and plane distance is dy along the
  heading and dx across: each box's footprint is its true one turned by 90 degrees about
  its centre. Reproduced (it changes IoU and plane distance whenever dx != dy).
- position = bbox[:3] with LiDARInstance3DBoxes' z at the bottom face, read by
  perception_eval as the centre: the 3D height overlap is that of [z - h/2, z + h/2].
- The footprint's corners, in order: (+L/2, +W/2), (-L/2, +W/2), (-L/2, -W/2),
  (+L/2, -W/2) in the box frame (L = size[1], W = size[0]), turned by the yaw and moved
  to the centre (x, y). Counter-clockwise for positive sizes.

IoU 2D (BEV) = A / (a_p + a_g - A), A the area of the footprints' intersection, a = L * W;
IoU 3D = A * dz / (V_p + V_g - A * dz), dz the height overlap, V = a * h. perception_eval
computes A with shapely; here it is the Sutherland-Hodgman clip of one convex
quadrilateral by the other (exact up to rounding, ~1e-15 relative). A pair whose union is
0 (both footprints empty) is NaN here and never matches; perception_eval raises
ZeroDivisionError there.

Plane distance: the two footprint corners of the GT nearest to the origin (np.argsort of
their distances, perception_eval's call) and the prediction's corners at the same
positions in its corner list -- after turning that list by two places when the yaw
difference (folded once into [-pi, pi]) exceeds pi / 2 in magnitude; the value is
round(sqrt((d1^2 + d2^2) / 2), 10), d1, d2 the BEV distances of the two corner pairs.
(perception_eval orders the two pairs left/right first; the value does not depend on it.)
"""

from __future__ import annotations

import numpy as np

#: box-frame corner signs (along the heading, across it), perception_eval's footprint order
_SIGNS = np.array([[1.0, 1.0], [-1.0, 1.0], [-1.0, -1.0], [1.0, -1.0]])


def _unit_quaternion(yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(w, z) of AWML's Quaternion(cos(yaw / 2), 0, 0, sin(yaw / 2)), normalised as
    pyquaternion normalises before rotating (only when off unit length by >= 1e-14)."""
    w, z = np.cos(yaw / 2), np.sin(yaw / 2)
    ss = w * w + z * z
    unit = np.abs(1.0 - ss) < 1e-14
    norm = np.sqrt(ss)
    return np.where(unit, w, w / norm), np.where(unit, z, z / norm)


def footprints(boxes: np.ndarray) -> np.ndarray:
    """(N, 7) boxes [x, y, z, dx, dy, dz, yaw] -> (N, 4, 2) perception_eval footprint corners
    (dy along the heading, dx across: AWML's size order read as (width, length, height))."""
    boxes = np.asarray(boxes, np.float64)
    half = np.stack([boxes[:, 4], boxes[:, 3]], axis=1) / 2.0  # (N, 2): along, across
    local = _SIGNS[None] * half[:, None, :]  # (N, 4, 2)
    w, z = _unit_quaternion(boxes[:, 6])
    w, z = w[:, None], z[:, None]
    x, y = local[..., 0], local[..., 1]
    # q * (0, x, y, 0) * conj(q) for q = (w, 0, 0, z), in pyquaternion's product order
    b, c = w * x - z * y, w * y + z * x
    rx, ry = b * w - c * z, b * z + c * w
    return np.stack([rx + boxes[:, 0:1], ry + boxes[:, 1:2]], axis=-1)


def _clip(poly: np.ndarray, count: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One Sutherland-Hodgman step: keep the part of each convex polygon poly[n, :count[n]]
    left of (or on) the directed line a[n] -> b[n]. Returns (N, 8, 2) and the new counts."""
    n, m, _ = poly.shape
    cols = np.arange(m)
    valid = cols[None, :] < count[:, None]
    nxt_idx = np.where(cols[None, :] + 1 < count[:, None], cols[None, :] + 1, 0)
    nxt = np.take_along_axis(poly, nxt_idx[..., None], axis=1)
    edge = (b - a)[:, None, :]

    def side(p: np.ndarray) -> np.ndarray:
        rel = p - a[:, None, :]
        return edge[..., 0] * rel[..., 1] - edge[..., 1] * rel[..., 0]

    s_cur, s_nxt = side(poly), side(nxt)
    inside_cur, inside_nxt = s_cur >= 0, s_nxt >= 0
    crosses = valid & (inside_cur != inside_nxt)
    denom = np.where(crosses, s_cur - s_nxt, 1.0)
    t = (s_cur / denom)[..., None]
    cut = poly + t * (nxt - poly)
    # each vertex emits itself (if inside) then the crossing of its outgoing edge (if any)
    cand = np.stack([poly, cut], axis=2).reshape(n, 2 * m, 2)
    keep = np.stack([valid & inside_cur, crosses], axis=2).reshape(n, 2 * m)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :8]
    out = np.take_along_axis(cand, order[..., None], axis=1)
    return out, np.minimum(keep.sum(axis=1), 8)


def _area(poly: np.ndarray, count: np.ndarray) -> np.ndarray:
    """Shoelace area of polygon poly[n, :count[n]] (0 when count < 3)."""
    m = poly.shape[1]
    cols = np.arange(m)
    valid = cols[None, :] < count[:, None]
    nxt_idx = np.where(cols[None, :] + 1 < count[:, None], cols[None, :] + 1, 0)
    nxt = np.take_along_axis(poly, nxt_idx[..., None], axis=1)
    cross = poly[..., 0] * nxt[..., 1] - nxt[..., 0] * poly[..., 1]
    return np.abs(np.where(valid, cross, 0.0).sum(axis=1)) / 2.0


def intersection_area(fp_a: np.ndarray, fp_b: np.ndarray) -> np.ndarray:
    """(N, 4, 2) x (N, 4, 2) counter-clockwise convex quadrilaterals -> (N,) intersection areas."""
    n = len(fp_a)
    poly = np.zeros((n, 8, 2))
    poly[:, :4] = fp_a
    count = np.full(n, 4)
    for k in range(4):
        poly, count = _clip(poly, count, fp_b[:, k], fp_b[:, (k + 1) % 4])
    return np.where(count >= 3, _area(poly, count), 0.0)


def _footprint_area(boxes: np.ndarray) -> np.ndarray:
    return boxes[:, 3] * boxes[:, 4]


def _ratio(inter: np.ndarray, union: np.ndarray) -> np.ndarray:
    return np.divide(inter, union, out=np.full(len(inter), np.nan), where=union > 0)


def iou_bev(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """perception_eval's IOU2dMatching value of paired (N, 7) boxes: footprint IoU."""
    inter = intersection_area(footprints(pred), footprints(gt))
    return _ratio(inter, _footprint_area(pred) + _footprint_area(gt) - inter)


def iou_3d(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """perception_eval's IOU3dMatching value: footprint intersection x height overlap of
    [z - h/2, z + h/2] (z as handed over, read as the centre) over the union volume."""
    inter = intersection_area(footprints(pred), footprints(gt))
    top = np.minimum(pred[:, 2] + pred[:, 5] / 2, gt[:, 2] + gt[:, 5] / 2)
    bottom = np.maximum(pred[:, 2] - pred[:, 5] / 2, gt[:, 2] - gt[:, 5] / 2)
    vol = inter * np.maximum(0.0, top - bottom)
    return _ratio(vol, _footprint_area(pred) * pred[:, 5] + _footprint_area(gt) * gt[:, 5] - vol)


def _quaternion_yaw(yaw: np.ndarray) -> np.ndarray:
    """pyquaternion's yaw_pitch_roll[0] of AWML's quaternion: the yaw wrapped to [-pi, pi]."""
    w, z = _unit_quaternion(yaw)
    return np.arctan2(2 * (w * z), 1 - 2 * (z * z))


def plane_distance(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """perception_eval's PlaneDistanceMatching value of paired (N, 7) boxes (module docstring)."""
    fp_p, fp_g = footprints(pred), footprints(gt)
    err = _quaternion_yaw(gt[:, 6]) - _quaternion_yaw(pred[:, 6])
    err = np.where(err < -np.pi, err + 2 * np.pi, np.where(err > np.pi, err - 2 * np.pi, err))
    flip = np.abs(err) > np.pi / 2
    fp_p = np.where(flip[:, None, None], fp_p[:, [2, 3, 0, 1]], fp_p)
    order = np.argsort(np.sqrt(fp_g[..., 0] ** 2 + fp_g[..., 1] ** 2), axis=1)[:, :2]
    g = np.take_along_axis(fp_g, order[..., None], axis=1)
    p = np.take_along_axis(fp_p, order[..., None], axis=1)
    d = np.sqrt(((p - g) ** 2).sum(axis=-1))  # (N, 2)
    return np.round(np.sqrt(0.5 * (d[:, 0] ** 2 + d[:, 1] ** 2)), 10)


#: matcher name -> (pair value function, higher is better)
PAIR_MATCHERS = {"iou_2d": (iou_bev, True), "iou_3d": (iou_3d, True), "plane_distance": (plane_distance, False)}
