"""A straightforward nuScenes-style center-distance AP: per class, per threshold, plain
Python loops over predictions and ground truth (the P4 3D reference).

Same rules as projects/CenterPoint/metrics.py, metric="nuscenes" (greedy matching in
descending score order -- equal scores: the prediction listed last first, as the nuScenes
devkit sorts -- to the closest unmatched GT of the same class and sample with BEV distance < d;
101-point interpolated precision above recall 0.1, minus precision 0.1; APH weights TPs
by 1 - |dyaw| / pi). Only the final interpolation and means use numpy, so the values
can be compared for equality, not closeness.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

RECALL_GRID = np.linspace(0.0, 1.0, 101)


def _wrap_abs(delta: float) -> float:
    return abs((delta + math.pi) % (2 * math.pi) - math.pi)


def _ap(hits: list[tuple[float, bool, float]], num_gt: int) -> float:
    if num_gt == 0:
        return float("nan")
    if not hits:
        return 0.0
    tp = fp = n_tp = 0.0
    precision, recall = [], []
    for _, is_tp, weight in hits:
        if is_tp:
            tp += weight
            n_tp += 1
        else:
            fp += 1
        precision.append(tp / (n_tp + fp))
        recall.append(tp / num_gt)
    interp = np.interp(RECALL_GRID, recall, precision, right=0.0)
    kept = interp[11:] - 0.1
    return float(np.mean(np.clip(kept, 0.0, None)) / 0.9)


def evaluate(frames: Sequence[tuple[dict[str, Any], dict[str, Any]]], class_names: Sequence[str],
             thresholds: Sequence[float] = (0.5, 1.0, 2.0, 4.0)) -> dict[str, Any]:
    per_ap, per_aph, by_dist = {}, {}, {float(d): [] for d in thresholds}
    for label, _name in enumerate(class_names):
        # every prediction of this class: (score, frame, box); GT per frame
        preds, gts, num_gt = [], [], 0
        for f, (pred, target) in enumerate(frames):
            for box, score, lab in zip(pred["boxes"].tolist(), pred["scores"].tolist(), pred["labels"].tolist(), strict=True):
                if lab == label:
                    preds.append((score, f, box))
            g = [box for box, lab in zip(target["boxes"].tolist(), target["labels"].tolist(), strict=True) if lab == label]
            gts.append(g)
            num_gt += len(g)
        if num_gt == 0:  # the devkit scores a class without GT 0 and keeps it in the mean
            per_ap[class_names[label]] = per_aph[class_names[label]] = 0.0
            for d in thresholds:
                by_dist[float(d)].append(0.0)
            continue
        # the devkit's order: (score, index) pairs sorted ascending, then reversed
        order = [i for _, i in sorted((p[0], i) for i, p in enumerate(preds))][::-1]
        aps, aphs = [], []
        for d in thresholds:
            taken = [[False] * len(g) for g in gts]
            hits = []
            for i in order:
                score, f, box = preds[i]
                best, best_dist = -1, math.inf
                for j, gt in enumerate(gts[f]):
                    dx, dy = box[0] - gt[0], box[1] - gt[1]
                    dist = math.sqrt(dx * dx + dy * dy)
                    if not taken[f][j] and dist < d and dist < best_dist:
                        best, best_dist = j, dist
                if best >= 0:
                    taken[f][best] = True
                    hits.append((score, True, 1.0 - _wrap_abs(box[6] - gts[f][best][6]) / math.pi))
                else:
                    hits.append((score, False, 0.0))
            ap = _ap([(s, t, 1.0) for s, t, _ in hits], num_gt)
            aph = _ap(hits, num_gt)
            aps.append(ap)
            aphs.append(aph)
            by_dist[float(d)].append(ap)
        per_ap[class_names[label]] = float(np.mean(aps))
        per_aph[class_names[label]] = float(np.mean(aphs))
    return {
        "mAP": float(np.mean(list(per_ap.values()))) if per_ap else 0.0,
        "mAPH": float(np.mean(list(per_aph.values()))) if per_aph else 0.0,
        "per_class_AP": per_ap, "per_class_APH": per_aph,
        "AP_by_distance": {f"{d:g}m": float(np.mean(v)) for d, v in by_dist.items() if v},
    }
