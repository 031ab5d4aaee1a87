"""nuScenes-style 3D detection AP by BEV center distance, plus heading-weighted APH.

Algorithm, per class c and distance threshold d (metres):

1. Matching. Predictions of class c, in descending score order, are matched greedily to
   ground-truth boxes of class c *in the same sample*: each takes the closest not yet
   matched GT whose BEV (x, y) center distance is < d; if none, it is a false positive.
   Samples share no GT, so this global score order decomposes into one pass per sample;
   inside a sample the pass is vectorized over all GT boxes and all thresholds at once.
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


def wrap_angle_abs(delta: np.ndarray) -> np.ndarray:
    """|angle| folded to [0, pi]."""
    return np.abs((np.asarray(delta, np.float64) + np.pi) % (2 * np.pi) - np.pi)


def match_sample(pred_xy: np.ndarray, pred_scores: np.ndarray, gt_xy: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(P,) predictions vs (G,) GT of one class in one sample -> (T, P) index of the
    matched GT per threshold, -1 for a false positive."""
    t, p, g = len(thresholds), len(pred_xy), len(gt_xy)
    matched = np.full((t, p), -1, np.int64)
    if p == 0 or g == 0:
        return matched
    dist = np.linalg.norm(pred_xy[:, None, :2] - gt_xy[None, :, :2], axis=-1)  # (P, G)
    taken = np.zeros((t, g), bool)
    rows = np.arange(t)
    for i in np.argsort(-pred_scores, kind="stable"):
        cand = np.where(taken | (dist[i][None, :] >= thresholds[:, None]), np.inf, dist[i][None, :])
        best = cand.argmin(axis=1)
        hit = np.isfinite(cand[rows, best])
        matched[hit, i] = best[hit]
        taken[rows[hit], best[hit]] = True
    return matched


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
    precision = tp / (n_tp + fp)
    recall = tp / num_gt
    interp = np.interp(RECALL_GRID, recall, precision, right=0.0)
    kept = interp[int(round(100 * MIN_RECALL)) + 1 :] - MIN_PRECISION
    return float(np.mean(np.clip(kept, 0.0, None)) / (1.0 - MIN_PRECISION))


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

    def _class_curves(self, label: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """scores (P,), is_tp (T, P), heading weight (T, P), num_gt for one class."""
        scores, tps, weights, num_gt = [], [], [], 0
        for prediction, target in self.samples.values():
            pm = np.asarray(prediction["labels"]) == label
            gm = np.asarray(target["labels"]) == label
            pb = np.asarray(prediction["boxes"], np.float64).reshape(-1, 7)[pm]
            ps = np.asarray(prediction["scores"], np.float64)[pm]
            gb = np.asarray(target["boxes"], np.float64).reshape(-1, 7)[gm]
            num_gt += len(gb)
            matched = match_sample(pb, ps, gb, self.thresholds)
            hit = matched >= 0
            dyaw = (
                wrap_angle_abs(pb[:, 6][None, :] - gb[np.maximum(matched, 0), 6])
                if len(gb)
                else np.zeros(matched.shape)
            )
            scores.append(ps)
            tps.append(hit)
            weights.append(np.where(hit, 1.0 - dyaw / np.pi, 0.0))
        t = len(self.thresholds)
        cat = lambda xs, shape: np.concatenate(xs, axis=-1) if xs else np.zeros(shape)  # noqa: E731
        return cat(scores, (0,)), cat(tps, (t, 0)).astype(bool), cat(weights, (t, 0)), num_gt

    def compute(self) -> dict[str, Any]:
        per_ap: dict[str, float] = {}
        per_aph: dict[str, float] = {}
        by_class_dist: dict[str, float] = {}
        dist_ap: dict[float, list[float]] = {float(d): [] for d in self.thresholds}
        for label, name in enumerate(self.class_names):
            scores, is_tp, weight, num_gt = self._class_curves(label)
            if num_gt == 0:
                continue
            aps, aphs = [], []
            for k, d in enumerate(self.thresholds):
                ap = average_precision(scores, np.ones(len(scores)), is_tp[k], num_gt)
                aph = average_precision(scores, weight[k], is_tp[k], num_gt)
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
