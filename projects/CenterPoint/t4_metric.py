"""AWML's T4MetricV2: tier4 perception_eval's detection mAP / mAPH, per BEV distance range.

Reproduces perception_eval at the commit AWML's Dockerfile pins (9d8c977, "Fix AP
calculation") with AWML's evaluator config (autoware_ml/configs/detection3d/dataset/
t4dataset/base.py: centre-distance-BEV thresholds 0.5/1/2/4 m, ranges [0, 50), [50, 90),
[90, 121), [0, 121) m, no point-count or confidence filter, class-to-class matching).

Per range [lo, hi): predictions and GT are kept when lo <= hypot(x, y) < hi and their
label is a target class (boxes with a NaN are dropped first, as AWML's parser does).
Per frame, predictions in descending score order (equal scores: listed order) take the
best free GT of their class (ties: the GT listed first) when it passes the threshold.
Matchers (perception_eval's five 3D ones; `matching`): "center_distance_bev" (default)
and "center_distance" (3D): smallest centre distance, admitted when < the threshold (m);
"plane_distance": smallest distance of the near footprint edges, < the threshold (m);
"iou_2d" (BEV footprint IoU) and "iou_3d": largest IoU, admitted when strictly > the
threshold (thresholds in [0, 1]; perception_eval asserts it). The pair values, and the
box conventions they inherit from AWML, are in t4_matching.py. AWML's config evaluates
centre-distance-BEV at 0.5/1/2/4 m and plane distance at 2/4 m (for pass/fail); it sets
no IoU thresholds (None), so IoU has no AWML default here either.
Per class and threshold the object results of all frames are concatenated (in each
frame: the matches in matching order, then the unmatched predictions) and sorted by
descending score with perception_eval's own call, `np.argsort(scores)[::-1]`, on that
same list (see "Conventions" 2 for equal scores). Then:

- AP: precision TP / (TP + FP) (0 where both are 0), recall TP / N_gt (0 when N_gt is
  0); the precision envelope (running maximum from the right); np.interp on the recall
  grid 0, 0.01, ..., 1 with 0 beyond the highest recall; mean of max(p - 0.1, 0) over
  grid points 0.11 .. 1.00, divided by 0.9. No GT and no predictions: NaN. GT but no
  predictions: 0. Predictions but no GT: 0 (recall stays 0).
- APH: the same with each TP counting its heading weight w in TP (so precision is
  sum w / (sum w + FP), recall sum w / N_gt). w = round(clip(1 - dh / pi, 0, 1), 10),
  dh the BEV heading difference folded to [0, pi], the heading read as perception_eval
  reads it (below).
- Per class: mean over thresholds of the non-NaN APs; mAP: mean over classes of the
  non-NaN class means (NaN when all are NaN). A class with no GT and no predictions in a
  range is left out of that range's means; one with predictions but no GT counts 0.

Conventions of perception_eval that look like bugs, reproduced here and documented:

1. Heading: the box's orientation is a quaternion about z and perception_eval takes
   `Quaternion.radians` (the rotation *angle*, >= 0) as the yaw, so the heading of a
   box at yaw -a equals that of a box at +a: for yaw in (-pi, pi] the heading is |yaw|,
   and APH sees no error between headings mirrored across the x axis (e.g. +80 deg vs
   -80 deg scores w = 1). `t4_heading` reproduces it exactly.
2. Tie order: the AP list is sorted with `np.argsort(conf)[::-1]`, numpy's default
   (unstable) sort, so the order of equal scores -- which moves precision, and with it
   AP, at every tie -- is whatever numpy's sort kernel leaves, and that depends on the
   CPU: numpy 2.x sorts with SIMD kernels where AVX2/AVX-512 exist, which do not keep
   equal keys in order even for 10 elements; elsewhere the introsort keeps them for up
   to 16. Here the same call is made on the same list, so the result equals
   perception_eval's on the same machine and numpy; it is not a stable definition, and
   two machines can disagree on scores with ties (e.g. fp16 backends, quantized scores).
3. The APH precision divides by sum w + FP rather than TP + FP, so a TP with heading
   weight 0 counts as neither a TP nor an FP.
4. A class/range with predictions but no GT counts 0 in the mean, one with neither is
   left out; so adding a single stray prediction in an empty range lowers mAP.
5. "center_distance" (3D) measures between the boxes' (x, y, z) as AWML hands them over
   (LiDARInstance3DBoxes: z at the bottom face), so it compares bottom centres.
6. The heading weight is rounded to 10 decimals (`round(w, 10)`); kept (np.round).

7. IoU and plane distance see each footprint turned by 90 degrees (AWML's (l, w, h) read
   as (width, length, height)), and IoU 3D treats the bottom z as the centre
   (t4_matching.py); kept.

Not reproduced: point-count and confidence filters (AWML's config sets none), per-class
thresholds (one list for every class here), perception_eval's crashes (ZeroDivisionError
for two empty footprints, an assertion when float rounding puts an IoU above 1 and a
later GT is compared with it): NaN there, never matched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import numpy as np

#: AWML's T4MetricV2 ranges (min_distance / max_distance of base.py): [lo, hi) metres, BEV
DEFAULT_RANGES = ((0.0, 50.0), (50.0, 90.0), (90.0, 121.0), (0.0, 121.0))
#: perception_eval's 3D matchers: name -> centre coordinates compared (0: a pair value of t4_matching)
MATCHING = {"center_distance_bev": 2, "center_distance": 3, "plane_distance": 0, "iou_2d": 0, "iou_3d": 0}
#: matchers whose value is a ratio (higher is better, thresholds in [0, 1], admitted when > threshold)
IOU_MATCHING = ("iou_2d", "iou_3d")
RECALL_GRID = np.linspace(0.0, 1.0, 101)
_FIRST_KEPT = int(round(100 * 0.1)) + 1


def range_name(lo: float, hi: float) -> str:
    """AWML's evaluator name of a range: bev_center_<lo>-<hi> with Python float text."""
    return f"bev_center_{float(lo)}-{float(hi)}"


def t4_heading(yaw: np.ndarray) -> np.ndarray:
    """perception_eval's `get_heading_bev` of a box built as AWML builds it.

    AWML: Quaternion(cos(yaw / 2), 0, 0, sin(yaw / 2)); perception_eval: r = its
    `.radians` = wrap(2 * atan2(|vector|, scalar)) (pyquaternion, after normalising), then
    h = -r - pi / 2 moved once into [-pi, pi].
    """
    yaw = np.asarray(yaw, np.float64)
    w, z = np.cos(yaw / 2), np.sin(yaw / 2)
    norm = np.sqrt(w * w + z * z)
    unit = np.abs(norm - 1.0) < 1e-14  # pyquaternion's is_unit tolerance
    w = np.where(unit, w, w / norm)
    z = np.where(unit, z, z / norm)
    r = 2.0 * np.arctan2(np.abs(z), w)
    r = (r + np.pi) % (2 * np.pi) - np.pi
    r = np.where(r == -np.pi, np.pi, r)
    h = -r - np.pi / 2
    h = np.where(h > np.pi, h - 2 * np.pi, h)
    return np.where(h < -np.pi, h + 2 * np.pi, h)


def heading_weight(pred_yaw: np.ndarray, gt_yaw: np.ndarray) -> np.ndarray:
    """TPMetricsAph: round(clip(1 - dh / pi, 0, 1), 10), dh = |h_p - h_g| folded at pi."""
    diff = np.abs(t4_heading(pred_yaw) - t4_heading(gt_yaw))
    diff = np.where(diff > np.pi, 2 * np.pi - diff, diff)
    return np.round(np.clip(1.0 - diff / np.pi, 0.0, 1.0), 10)


def t4_ap(scores: np.ndarray, tp_value: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """perception_eval's `Ap` over one class and threshold.

    scores / tp_value / is_tp (N,) in list order (the order perception_eval
    accumulates object results in); tp_value is 1 (AP) or the heading weight (APH).
    """
    n = len(scores)
    if num_gt == 0 and n == 0:
        return float("nan")
    if n == 0:
        return 0.0
    # perception_eval's exact call: numpy's default sort on the same list, reversed, so equal
    # scores come out in the same order as there on this machine (see convention 2)
    order = np.argsort(np.asarray(scores, np.float64))[::-1]
    tp = np.cumsum(np.where(is_tp, tp_value, 0.0)[order])
    fp = np.cumsum(np.where(is_tp, 0.0, 1.0)[order])
    denom = tp + fp
    precision = np.divide(tp, denom, out=np.zeros(n), where=denom != 0)
    recall = tp / num_gt if num_gt > 0 else np.zeros(n)
    envelope = np.maximum.accumulate(precision[::-1])[::-1]
    interp = np.interp(RECALL_GRID, recall, envelope, right=0)
    kept = interp[_FIRST_KEPT:] - 0.1
    kept[kept < 0] = 0.0
    return float(np.mean(kept)) / (1.0 - 0.1)


def _pair_cost(fn: Callable[[np.ndarray, np.ndarray], np.ndarray], sign: float, pb: np.ndarray, gb: np.ndarray,
               i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """sign * fn of the pairs (prediction i[k], GT j[k])."""
    return sign * fn(pb[i], gb[j])


def _mean(values: list[float]) -> float:
    """perception_eval's Map._mean: plain mean of the non-NaN values, NaN if none."""
    valid = [v for v in values if not np.isnan(v)]
    return sum(valid) / len(valid) if valid else float("nan")


def t4_metrics(
    class_names: Sequence[str],
    thresholds: np.ndarray,
    p_boxes: np.ndarray,
    p_scores: np.ndarray,
    p_lab: np.ndarray,
    p_frame: np.ndarray,
    g_boxes: np.ndarray,
    g_lab: np.ndarray,
    g_frame: np.ndarray,
    distance_ranges: Sequence[tuple[float, float]] | None = None,
    matching: str = "center_distance_bev",
) -> dict[str, Any]:
    """mAP / mAPH per range and per class; the headline mAP / mAPH are those of the last
    range, the one T4MetricV2 reports as its main evaluator (AWML's [0, 121))."""
    from .metrics import match_groups
    from .t4_matching import PAIR_MATCHERS

    if matching not in MATCHING:
        raise ValueError(f"matching {matching!r}: expected one of {sorted(MATCHING)}")
    thresholds = np.asarray(thresholds, np.float64)
    if matching in IOU_MATCHING and not ((thresholds >= 0) & (thresholds <= 1)).all():
        raise ValueError(f"matching {matching!r}: thresholds {thresholds.tolist()} must lie in [0, 1] (IoU)")
    dims = MATCHING[matching]
    unit = "" if matching in IOU_MATCHING else "m"
    # IoU / plane distance: a value per (prediction, GT) pair; match_groups takes the smallest
    # cost below the threshold, so IoU goes in as -IoU against -t (IoU > t, largest wins)
    pair_fn, sign = None, 1.0
    if not dims:
        pair_fn, higher = PAIR_MATCHERS[matching]
        sign = -1.0 if higher else 1.0
    ranges = tuple(distance_ranges) if distance_ranges else DEFAULT_RANGES
    ok = ~np.isnan(p_boxes).any(axis=1) & ~np.isnan(p_scores)
    p_boxes, p_scores, p_lab, p_frame = p_boxes[ok], p_scores[ok], p_lab[ok], p_frame[ok]
    ok = ~np.isnan(g_boxes).any(axis=1)
    g_boxes, g_lab, g_frame = g_boxes[ok], g_lab[ok], g_frame[ok]
    p_dist = np.hypot(p_boxes[:, 0], p_boxes[:, 1])
    g_dist = np.hypot(g_boxes[:, 0], g_boxes[:, 1])
    num_classes = len(class_names)
    n_frames = int(max(p_frame.max(initial=-1), g_frame.max(initial=-1))) + 1
    by_range: dict[str, dict[str, Any]] = {}
    for lo, hi in ranges:
        pk = (p_dist >= lo) & (p_dist < hi)
        gk = (g_dist >= lo) & (g_dist < hi)
        pb, ps, pl, pf = p_boxes[pk], p_scores[pk], p_lab[pk], p_frame[pk]
        gb, gl, gf = g_boxes[gk], g_lab[gk], g_frame[gk]
        # matching order inside each frame: descending score, equal scores in listed order
        order = np.argsort(-ps, kind="stable")
        pair_cost = partial(_pair_cost, pair_fn, sign, pb, gb) if pair_fn is not None else None
        matched = match_groups(pb[:, :max(dims, 2)], pl * n_frames + pf, order, gb[:, :max(dims, 2)],
                               gl * n_frames + gf, sign * thresholds, pair_cost=pair_cost)
        rank = np.empty(len(ps), np.int64)
        rank[order] = np.arange(len(ps))
        num_gt = np.bincount(gl, minlength=num_classes)
        per_ap: dict[str, float] = {}
        per_aph: dict[str, float] = {}
        by_class_thr: dict[str, float] = {}
        for label, name in enumerate(class_names):
            sel = np.flatnonzero(pl == label)
            aps, aphs = [], []
            for k, d in enumerate(thresholds):
                m = matched[k, sel]
                is_tp = m >= 0
                # list order: frame by frame; in a frame the matches, then the FPs, each by rank
                lst = sel[np.lexsort((rank[sel], ~is_tp, pf[sel]))]
                m = matched[k, lst]
                is_tp = m >= 0
                w = np.zeros(len(lst))
                w[is_tp] = heading_weight(pb[lst[is_tp], 6], gb[m[is_tp], 6])
                ap = t4_ap(ps[lst], np.ones(len(lst)), is_tp, int(num_gt[label]))
                aph = t4_ap(ps[lst], w, is_tp, int(num_gt[label]))
                aps.append(ap)
                aphs.append(aph)
                by_class_thr[f"{name}@{d:g}{unit}"] = ap
            per_ap[name] = _mean(aps)
            per_aph[name] = _mean(aphs)
        by_range[range_name(lo, hi)] = {
            "mAP": _mean(list(per_ap.values())),
            "mAPH": _mean(list(per_aph.values())),
            "per_class_AP": per_ap,
            "per_class_APH": per_aph,
            "AP_by_class_and_distance": by_class_thr,
            "num_ground_truths": int(len(gl)),
            "num_predictions": int(len(pl)),
        }
    head = by_range[range_name(*ranges[-1])]
    return {
        "mAP": head["mAP"],
        "mAPH": head["mAPH"],
        "headline_range": range_name(*ranges[-1]),
        "per_class_AP": head["per_class_AP"],
        "per_class_APH": head["per_class_APH"],
        "by_range": by_range,
    }
