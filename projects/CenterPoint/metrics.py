"""nuScenes-style 3D detection AP by BEV center distance, plus heading-weighted APH.

Algorithm, per class c and distance threshold d (metres):

1. Matching. Predictions of class c, in descending score order (stable: ties keep
   sample order, then the order inside the sample), are matched greedily to
   ground-truth boxes of class c *in the same sample*: each takes the closest not yet
   matched GT whose BEV (x, y) center distance sqrt(dx * dx + dy * dy) is < d (ties:
   the GT listed first); if none, it is a false positive. Samples share no GT, so the
   global score order decomposes into independent (class, sample) groups, each processed
   in its own score order. `match_groups` runs all groups, classes and thresholds at
   once, in rounds: round r takes the r-th prediction of every group, with each group's
   GT padded to a dense row (padding never matches), so the number of Python steps is
   the largest number of predictions of one class in one sample, not the total.
2. Curve. Over all samples, sorted by score (stable): TP and FP cumulative sums give
   precision = TP / (TP + FP) and recall = TP / N_gt. Precision is linearly
   interpolated (np.interp, 0 beyond the highest recall reached) on the 101-point recall
   grid 0, 0.01, ..., 1 -- no monotone envelope, as in the nuScenes devkit.
3. AP. Like the devkit's `calc_ap`: keep the grid points above min_recall = 0.1
   (indices round(100 * 0.1) + 1 .. 100, i.e. recall 0.11 .. 1.00), subtract
   min_precision = 0.1, clip at 0, average, and divide by 1 - min_precision, so a
   perfect detector scores 1 and one never above 10 % precision scores 0.
4. APH. As AP, but each TP counts with weight 1 - |dyaw| / pi (dyaw wrapped to
   [0, pi]) in both precision and recall (Waymo's heading accuracy), FPs count 1.

Summaries: per class, the mean over thresholds (`per_class_AP`, `per_class_APH`);
per threshold, the mean over classes (`AP_by_distance`); `mAP` / `mAPH` the mean over
classes of the per-class values. A class with no GT in the evaluated samples has no
defined AP (the devkit would print nan) and is left out of the means and the dicts;
a class with GT but no predictions scores 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from awml_harness.project import Evaluator

MIN_RECALL = 0.1
MIN_PRECISION = 0.1
RECALL_GRID = np.linspace(0.0, 1.0, 101)
_FIRST_KEPT = int(round(100 * MIN_RECALL)) + 1


def wrap_angle_abs(delta: np.ndarray) -> np.ndarray:
    """|angle| folded to [0, pi]."""
    return np.abs((np.asarray(delta, np.float64) + np.pi) % (2 * np.pi) - np.pi)


def match_groups(
    pred_xy: np.ndarray,
    pred_group: np.ndarray,
    order: np.ndarray,
    gt_xy: np.ndarray,
    gt_group: np.ndarray,
    thresholds: np.ndarray,
) -> np.ndarray:
    """Greedy matching of many independent groups (one per class and sample) at once.

    pred_xy (P, >=2), pred_group (P,) int; `order` (P,) the processing order (a
    permutation of range(P): only its restriction to each group matters); gt_xy
    (G, >=2), gt_group (G,) int. Returns (T, P): the index into gt_xy of the GT each
    prediction takes per threshold, -1 for a false positive.
    """
    thresholds = np.asarray(thresholds, np.float64)
    t, p = len(thresholds), len(pred_xy)
    matched = np.full((t, p), -1, np.int64)
    if p == 0 or len(gt_xy) == 0:
        return matched
    pred_group = np.asarray(pred_group, np.int64)
    gt_group = np.asarray(gt_group, np.int64)
    # compact the group ids that have predictions
    groups, pg = np.unique(pred_group, return_inverse=True)
    pg = pg.reshape(-1)
    n_groups = len(groups)
    # GT of each group as a dense row in listed order; padding lies at infinity
    gperm = np.argsort(gt_group, kind="stable")
    gsorted = gt_group[gperm]
    gstart = np.searchsorted(gsorted, groups, side="left")
    gcount = np.searchsorted(gsorted, groups, side="right") - gstart
    width = int(gcount.max()) if n_groups else 0
    if width == 0:
        return matched
    has = np.flatnonzero(gcount)
    rows = np.repeat(has, gcount[has])
    cols = np.arange(len(rows)) - np.repeat(np.cumsum(gcount[has]) - gcount[has], gcount[has])
    gidx = np.full((n_groups, width), -1, np.int64)  # dense row -> index into gt_xy
    gidx[rows, cols] = gperm[_ranges(gstart[has], gcount[has])]
    gx = np.full((n_groups, width), np.inf)
    gy = np.full((n_groups, width), np.inf)
    gx[rows, cols] = gt_xy[gidx[rows, cols], 0]
    gy[rows, cols] = gt_xy[gidx[rows, cols], 1]
    dx = pred_xy[:, 0:1] - gx[pg]
    dy = pred_xy[:, 1:2] - gy[pg]
    dist = np.sqrt(dx * dx + dy * dy)  # (P, W)
    base = np.where(dist[None] >= thresholds[:, None, None], np.inf, dist[None])  # (T, P, W)
    # rank of each prediction inside its group, in processing order
    order = np.asarray(order, np.int64)
    seq = order[np.argsort(pg[order], kind="stable")]
    sg = pg[seq]
    first = np.searchsorted(sg, np.arange(n_groups))
    rank = np.empty(p, np.int64)
    rank[seq] = np.arange(p) - first[sg]
    by_rank = np.argsort(rank, kind="stable")
    bounds = np.searchsorted(rank[by_rank], np.arange(int(rank.max()) + 2))
    taken = np.zeros((t, n_groups, width), bool)
    for r in range(len(bounds) - 1):
        sel = by_rank[bounds[r] : bounds[r + 1]]  # one prediction per group at most
        g = pg[sel]
        cand = np.where(taken[:, g], np.inf, base[:, sel])  # (T, k, W)
        best = cand.argmin(axis=2)  # (T, k)
        hit = np.isfinite(np.take_along_axis(cand, best[:, :, None], axis=2)[:, :, 0])
        matched[:, sel] = np.where(hit, gidx[g[None, :], best], -1)
        tt, kk = np.nonzero(hit)
        taken[tt, g[kk], best[tt, kk]] = True
    return matched


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c)."""
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(offsets - starts, counts)


def match_sample(pred_xy: np.ndarray, pred_scores: np.ndarray, gt_xy: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(P,) predictions vs (G,) GT of one class in one sample -> (T, P) index of the
    matched GT per threshold, -1 for a false positive."""
    pred_xy = np.asarray(pred_xy, np.float64).reshape(len(pred_xy), -1)
    gt_xy = np.asarray(gt_xy, np.float64).reshape(len(gt_xy), -1)
    order = np.argsort(-np.asarray(pred_scores, np.float64), kind="stable")
    return match_groups(pred_xy, np.zeros(len(pred_xy), np.int64), order, gt_xy, np.zeros(len(gt_xy), np.int64),
                        np.asarray(thresholds, np.float64))


def _ap_from_sorted(tp: np.ndarray, n_tp: np.ndarray, fp: np.ndarray, num_gt: int) -> float:
    precision = tp / (n_tp + fp)
    recall = tp / num_gt
    interp = np.interp(RECALL_GRID, recall, precision, right=0.0)
    kept = interp[_FIRST_KEPT:] - MIN_PRECISION
    return float(np.mean(np.clip(kept, 0.0, None)) / (1.0 - MIN_PRECISION))


def average_precision(scores: np.ndarray, tp_weight: np.ndarray, is_tp: np.ndarray, num_gt: int) -> float:
    """AP from per-prediction scores, TP flags and TP weights (1 for AP, heading accuracy for APH)."""
    if num_gt == 0:
        return float("nan")
    if len(scores) == 0:
        return 0.0
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(np.where(is_tp[order], tp_weight[order], 0.0))
    fp = np.cumsum(~is_tp[order])
    n_tp = np.cumsum(is_tp[order])
    return _ap_from_sorted(tp, n_tp, fp, num_gt)


class CenterDistanceEvaluator(Evaluator):
    headline = "mAP"

    def __init__(self, class_names: Sequence[str], thresholds: Sequence[float] = (0.5, 1.0, 2.0, 4.0)) -> None:
        self.class_names = tuple(class_names)
        self.thresholds = np.asarray(thresholds, np.float64)
        self.samples: dict[str, tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]] = {}

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        self.samples[sample_id] = (prediction, target)

    def merge(self, other: CenterDistanceEvaluator) -> None:
        self.samples.update(other.samples)

    def _gather(self) -> tuple[np.ndarray, ...]:
        """All samples concatenated in sample order, restricted to the evaluated classes:
        pred boxes (P, 7), scores, labels, sample index; GT boxes (G, 7), labels, sample index."""
        items = list(self.samples.values())
        num_classes = len(self.class_names)

        def cat(arrays: list[np.ndarray], tail: tuple[int, ...]) -> np.ndarray:
            return np.concatenate(arrays) if arrays else np.zeros((0, *tail))

        p_labels = [np.asarray(p["labels"]).reshape(-1) for p, _ in items]
        g_labels = [np.asarray(t["labels"]).reshape(-1) for _, t in items]
        p_boxes = cat([np.asarray(p["boxes"], np.float64).reshape(-1, 7) for p, _ in items], (7,))
        p_scores = cat([np.asarray(p["scores"], np.float64).reshape(-1) for p, _ in items], ())
        g_boxes = cat([np.asarray(t["boxes"], np.float64).reshape(-1, 7) for _, t in items], (7,))
        frames = np.arange(len(items))
        p_frame = np.repeat(frames, [len(x) for x in p_labels])
        g_frame = np.repeat(frames, [len(x) for x in g_labels])
        out = []
        for boxes, labels, frame, scores in ((p_boxes, cat(p_labels, ()), p_frame, p_scores),
                                             (g_boxes, cat(g_labels, ()), g_frame, None)):
            valid = np.isin(labels, np.arange(num_classes))
            if not valid.all():
                boxes, labels, frame = boxes[valid], labels[valid], frame[valid]
                scores = scores[valid] if scores is not None else None
            out.extend([boxes, labels.astype(np.int64), frame] + ([scores] if scores is not None else []))
        p_boxes, p_lab, p_frame, p_scores, g_boxes, g_lab, g_frame = out
        return p_boxes, p_scores, p_lab, p_frame, g_boxes, g_lab, g_frame

    def compute(self) -> dict[str, Any]:
        p_boxes, p_scores, p_lab, p_frame, g_boxes, g_lab, g_frame = self._gather()
        num_frames = len(self.samples)
        num_classes = len(self.class_names)
        # per class in descending score order (stable: sample order, then order in the sample)
        order = np.lexsort((-p_scores, p_lab))
        matched = match_groups(p_boxes[:, :2], p_lab * num_frames + p_frame, order,
                               g_boxes[:, :2], g_lab * num_frames + g_frame, self.thresholds)  # (T, P)
        hit = matched >= 0
        dyaw = wrap_angle_abs(p_boxes[:, 6][None, :] - g_boxes[np.maximum(matched, 0), 6]) if len(g_boxes) else 0.0
        weight = np.where(hit, 1.0 - dyaw / np.pi, 0.0)
        num_gt = np.bincount(g_lab, minlength=num_classes)
        bounds = np.searchsorted(p_lab[order], np.arange(num_classes + 1))

        per_ap: dict[str, float] = {}
        per_aph: dict[str, float] = {}
        by_class_dist: dict[str, float] = {}
        dist_ap: dict[float, list[float]] = {float(d): [] for d in self.thresholds}
        for label, name in enumerate(self.class_names):
            n = int(num_gt[label])
            if n == 0:
                continue
            sel = order[bounds[label] : bounds[label + 1]]
            if len(sel):
                h = hit[:, sel]
                n_tp = np.cumsum(h, axis=1)
                fp = np.cumsum(~h, axis=1)
                tp_aph = np.cumsum(np.where(h, weight[:, sel], 0.0), axis=1)
                tp_ap = np.cumsum(np.where(h, 1.0, 0.0), axis=1)
            aps, aphs = [], []
            for k, d in enumerate(self.thresholds):
                if len(sel):
                    ap = _ap_from_sorted(tp_ap[k], n_tp[k], fp[k], n)
                    aph = _ap_from_sorted(tp_aph[k], n_tp[k], fp[k], n)
                else:
                    ap = aph = 0.0
                aps.append(ap)
                aphs.append(aph)
                dist_ap[float(d)].append(ap)
                by_class_dist[f"{name}@{d:g}m"] = ap
            per_ap[name] = float(np.mean(aps))
            per_aph[name] = float(np.mean(aphs))
        return {
            "mAP": float(np.mean(list(per_ap.values()))) if per_ap else 0.0,
            "mAPH": float(np.mean(list(per_aph.values()))) if per_aph else 0.0,
            "num_samples": len(self.samples),
            "per_class_AP": per_ap,
            "per_class_APH": per_aph,
            "AP_by_distance": {f"{d:g}m": float(np.mean(v)) for d, v in dist_ap.items() if v},
            "AP_by_class_and_distance": by_class_dist,
        }
