"""CenterPoint's 3D detection metrics by centre distance, two definitions (`metric=`).

metric="nuscenes" equals the nuScenes devkit (nuscenes-devkit 1.2, nuscenes/eval/
detection: `filter_eval_boxes`, `accumulate`, `calc_ap`, `calc_tp`, `DetectionMetrics`;
checked against it in tests/projects/test_centerpoint_devkit.py and
benchmarks/nuscenes_metric_compare.py). metric="t4" equals AWML's T4MetricV2, i.e. tier4
perception_eval: see projects/CenterPoint/t4_metric.py.

nuscenes, per class c and distance threshold d (metres):

1. Filter (only with `class_range`): boxes of class c with hypot(x, y) >= range[c] are
   dropped from predictions and GT alike.
2. Matching. Predictions of class c in descending score order -- equal scores: the one
   listed last first (the devkit sorts (score, index) pairs ascending and reverses the
   list; index = position in sample order, then in the sample) -- each take the closest
   not yet taken GT of class c in the same sample, if its BEV centre distance
   sqrt(dx * dx + dy * dy) is < d (ties: the GT listed first; a NaN distance is never
   taken); else it is a false positive. Samples share no GT, so the global order
   decomposes into independent (class, sample) groups. `match_groups` runs all groups
   and thresholds at once: it lists every (prediction, GT of its group) pair with its
   distance, keeps the pairs some threshold admits, then works in rounds -- round r
   handles, for every group, its r-th prediction among those with a kept pair (the
   others can take nothing, so they change nobody's outcome) -- each round one
   vectorized step. Python steps: the largest number of such predictions of one class
   in one sample, not the number of predictions.
3. AP (`calc_ap`): precision TP / (TP + FP) and recall TP / N_gt along that order,
   np.interp on the recall grid 0, 0.01, ..., 1 (0 beyond the highest recall; no
   envelope), the points 0.11 .. 1.00 minus 0.1, clipped at 0, averaged, / 0.9.
   A class without GT scores 0 (the devkit's `no_predictions`) and stays in the mean;
   one with GT and no predictions scores 0.
4. TP errors (`calc_tp`, matches at d = 2 m): centre distance (ATE), 1 - IoU of the
   aligned sizes (ASE), |yaw difference| (AOE; period pi for "barrier"), velocity L2
   (AVE; only when every prediction and target carries "velocities"); each a running
   mean along the score order read at the confidences of recall points 0.11 .. the
   highest recall reached; 1 when the class has no match there. Attributes never
   exist here, so the attribute error is 1 (the devkit's rule for all-NaN). The class
   "traffic_cone" has no AOE/AVE/AAE, "barrier" no AVE/AAE (NaN, left out of the
   nan-mean over classes: mATE, mASE, mAOE, mAVE, mAAE).
5. NDS (with velocities): (5 mAP + sum of max(0, 1 - mTPE) over the five) / 10.

Summaries: per class the mean over thresholds (`per_class_AP`); per threshold the mean
over classes (`AP_by_distance`); mAP the mean over all classes. mAPH is the harness's
addition (not in the devkit): AP with each TP weighted 1 - |dyaw| / pi (dyaw folded to
[0, pi], Waymo's heading accuracy) in precision and recall, FPs counting 1.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from awml_harness.project import Evaluator

MIN_RECALL = 0.1
MIN_PRECISION = 0.1
RECALL_GRID = np.linspace(0.0, 1.0, 101)
_FIRST_KEPT = int(round(100 * MIN_RECALL)) + 1


def wrap_angle_abs(delta: np.ndarray) -> np.ndarray:
    """|angle| folded to [0, pi]."""
    return np.abs((np.asarray(delta, np.float64) + np.pi) % (2 * np.pi) - np.pi)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, s + c) for each (s, c)."""
    total = int(counts.sum())
    offsets = np.cumsum(counts) - counts
    return np.arange(total) - np.repeat(offsets - starts, counts)


def _small_ints(values: np.ndarray, bound: int) -> np.ndarray:
    """Non-negative ints < bound, as int16 when they fit: numpy's stable sort is then a radix sort."""
    return values.astype(np.int16) if bound <= np.iinfo(np.int16).max else values


def match_groups(
    pred_xy: np.ndarray,
    pred_group: np.ndarray,
    order: np.ndarray,
    gt_xy: np.ndarray,
    gt_group: np.ndarray,
    thresholds: np.ndarray,
    pair_cost: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None,
) -> np.ndarray:
    """Greedy matching of many independent groups (one per class and sample) at once.

    pred_xy (P, D), pred_group (P,) non-negative ints; `order` (P,) the processing
    order, a permutation of range(P) (only its restriction to each group matters);
    gt_xy (G, D), gt_group (G,); D >= 2 coordinates (2: BEV, 3: 3D centre distance).
    Returns (T, P): the index into gt_xy of the GT each prediction takes per threshold,
    -1 for a false positive.

    Exactly the sequential rule of the nuScenes devkit's `accumulate` and of
    perception_eval's matcher: in processing order, each prediction takes, among the GT
    of its group not yet taken at that threshold, the one at the smallest distance
    sqrt(dx * dx + dy * dy [+ dz * dz]), provided it is < the threshold; ties go to the
    GT listed first; a NaN distance is never the smallest nor admitted. Work: one pass over the
    (prediction, GT) pairs of each group, then rounds -- round r handles the r-th
    prediction of every group that has any admissible pair -- over those pairs only.

    pair_cost: instead of the centre distance, cost(pred_index, gt_index) of every pair
    (arrays of equal length) with the same rule: smallest cost wins, admitted when
    < the threshold (t4_metric passes -IoU with -thresholds for perception_eval's IoU > t).
    """
    thresholds = np.asarray(thresholds, np.float64)
    t, p = len(thresholds), len(pred_xy)
    matched = np.full((t, p), -1, np.int64)
    if p == 0 or len(gt_xy) == 0 or t == 0:
        return matched
    pred_group = np.asarray(pred_group, np.int64)
    gt_group = np.asarray(gt_group, np.int64)
    order = np.asarray(order, np.int64)
    # GT grouped (stable, so listed order inside a group); per prediction its group's slice
    n_keys = int(max(pred_group.max(), gt_group.max())) + 1
    gcount = np.bincount(gt_group, minlength=n_keys)
    gstart = np.cumsum(gcount) - gcount
    gperm = np.argsort(_small_ints(gt_group, n_keys), kind="stable")
    # every (prediction, GT of its group) pair, prediction-major, GT in listed order
    counts = gcount[pred_group]
    pos = _ranges(gstart[pred_group], counts)  # into gperm
    gt_of_pair = np.take(gperm, pos)
    if pair_cost is not None:
        dist = np.asarray(pair_cost(np.repeat(np.arange(p), counts), gt_of_pair), np.float64)
    else:
        pred_cols = np.ascontiguousarray(pred_xy.T)  # (D, P): contiguous columns gather faster
        gt_cols = np.ascontiguousarray(gt_xy.T)
        sq = None
        for c in range(pred_xy.shape[1]):  # 2 columns: BEV; 3: the 3D centre distance
            d = np.repeat(pred_cols[c], counts) - np.take(gt_cols[c], gt_of_pair)
            sq = d * d if sq is None else sq + d * d
        dist = np.sqrt(sq)
    # pairs some threshold admits: strictly below it (a NaN distance admits nothing, as
    # `d < best` and `d < threshold` are both false for it)
    keep = dist < thresholds.max()
    pair_pred = np.repeat(np.arange(p), counts)
    pair_pred, pair_gt, dist = pair_pred[keep], gt_of_pair[keep], dist[keep]
    if len(pair_pred) == 0:
        return matched
    # predictions with an admissible pair (the others take nothing and block nothing):
    # their rank inside their group, in processing order
    n_pairs = np.bincount(pair_pred, minlength=p)
    first_pair = np.cumsum(n_pairs) - n_pairs
    live = order[n_pairs[order] > 0]
    by_group = live[np.argsort(_small_ints(pred_group[live], n_keys), kind="stable")]
    keys = pred_group[by_group]
    new_group = np.empty(len(keys), bool)
    new_group[0] = True
    np.not_equal(keys[1:], keys[:-1], out=new_group[1:])
    run_start = np.flatnonzero(new_group)
    rank = np.arange(len(keys)) - np.repeat(run_start, np.diff(np.append(run_start, len(keys))))
    n_rounds = int(rank.max()) + 1
    by_rank = by_group[np.argsort(_small_ints(rank, n_rounds), kind="stable")]
    round_bounds = np.concatenate([[0], np.cumsum(np.bincount(rank, minlength=n_rounds))])
    # pairs laid out round by round: each round one contiguous slice, one segment per prediction
    seg_len = n_pairs[by_rank]
    seg_start = np.cumsum(seg_len) - seg_len
    idx = _ranges(first_pair[by_rank], seg_len)
    pair_gt, dist = pair_gt[idx], dist[idx]
    admit = dist[None, :] < thresholds[:, None]  # (T, pairs)
    seg_of_pair = np.repeat(np.arange(len(by_rank)), seg_len)
    taken = np.zeros((t, len(gt_xy)), bool)
    for r in range(n_rounds):
        lo, hi = round_bounds[r], round_bounds[r + 1]
        a = seg_start[lo]
        b = seg_start[hi - 1] + seg_len[hi - 1]
        local = seg_start[lo:hi] - a
        gts = pair_gt[a:b]
        ok = admit[:, a:b] & ~taken[:, gts]  # (T, m)
        d = np.where(ok, dist[a:b], np.inf)
        best = np.minimum.reduceat(d, local, axis=1)  # (T, k)
        at = np.where(ok & (d == best[:, seg_of_pair[a:b] - lo]), np.arange(b - a), b - a)
        first = np.minimum.reduceat(at, local, axis=1)  # (T, k): the first pair at the minimum
        tt, kk = np.nonzero(first < b - a)
        g = gts[first[tt, kk]]
        matched[tt, by_rank[lo + kk]] = g
        taken[tt, g] = True
    return matched


def match_sample(pred_xy: np.ndarray, pred_scores: np.ndarray, gt_xy: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """(P,) predictions vs (G,) GT of one class in one sample -> (T, P) index of the
    matched GT per threshold, -1 for a false positive."""
    pred_xy = np.asarray(pred_xy, np.float64)
    gt_xy = np.asarray(gt_xy, np.float64)
    order = np.argsort(-np.asarray(pred_scores, np.float64), kind="stable")
    return match_groups(
        pred_xy,
        np.zeros(len(pred_xy), np.int64),
        order,
        gt_xy,
        np.zeros(len(gt_xy), np.int64),
        np.asarray(thresholds, np.float64),
    )


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


def _concat(arrays: list[Any], tail: tuple[int, ...], dtype: Any) -> np.ndarray:
    """Per-sample arrays -> one (N, *tail) array: np.asarray(a, dtype).reshape(-1, *tail)
    of each, concatenated."""
    if not arrays:
        return np.zeros((0, *tail), dtype or np.float64)
    try:  # fast path: one concatenate; it only succeeds with (n_i, *tail) arrays
        out = np.concatenate(arrays)
        if out.shape[1:] == tail:
            return out if dtype is None else out.astype(dtype, copy=False)
    except (ValueError, TypeError):
        pass
    return np.concatenate([np.asarray(a, dtype).reshape(-1, *tail) for a in arrays])


def _labels(arrays: list[Any]) -> tuple[np.ndarray, list[int]]:
    """Per-sample label arrays -> their concatenation (each flattened) and lengths."""
    out = _concat(arrays, (), None)
    if out.ndim == 1 and arrays and all(isinstance(a, np.ndarray) for a in arrays):
        lengths = [len(a) for a in arrays]  # all 1-D, or the fast concatenate would have failed
        if sum(lengths) == len(out):
            return out, lengths
    return out, [np.asarray(a).size for a in arrays]


#: the nuScenes devkit's detection_cvpr_2019 values: NDS weight of mAP, TP-error threshold (m)
MEAN_AP_WEIGHT = 5
DIST_TH_TP = 2.0
METRICS = ("nuscenes", "t4")


def cummean(x: np.ndarray) -> np.ndarray:
    """Running mean ignoring NaN; all NaN -> ones (the devkit's rule: an unknown error is 1)."""
    x = np.asarray(x, np.float64)
    nan = np.isnan(x)
    if not nan.any():  # the same numbers as below, without the NaN bookkeeping
        return np.cumsum(x) / np.arange(1, len(x) + 1)
    if nan.all():
        return np.ones(len(x))
    count = np.cumsum(~np.isnan(x))
    total = np.nancumsum(x)
    return np.divide(total, count, out=np.zeros_like(total), where=count != 0)


def tp_errors(conf: np.ndarray, recall: np.ndarray, match_conf: np.ndarray,
              errors: Mapping[str, np.ndarray]) -> dict[str, float]:
    """One class's TP errors as the devkit's `accumulate` + `calc_tp` compute them.

    conf (P,) / recall (P,): every prediction of the class in processing order with the
    recall reached after it; match_conf (M,) and each errors[k] (M,): the matched ones.
    The running mean of an error (NaN-aware, all NaN -> 1) is read at the interpolated
    confidence of each recall point 0, 0.01, ..., 1 (precision's grid) and averaged from
    recall 0.11 up to the highest recall reached (the last point of non-zero interpolated
    confidence); 1 when nothing lies there.
    """
    if len(match_conf) == 0:
        return dict.fromkeys(errors, 1.0)
    conf_i = np.interp(RECALL_GRID, recall, conf, right=0)
    nonzero = np.flatnonzero(conf_i)
    last = int(nonzero[-1]) if len(nonzero) else 0
    if last < _FIRST_KEPT:
        return dict.fromkeys(errors, 1.0)
    at = conf_i[last::-1]  # increasing for np.interp, like the devkit's reversed arrays
    xp = match_conf[::-1]
    out = {}
    for key, e in errors.items():
        running = cummean(e)[::-1]
        out[key] = float(np.mean(np.interp(at, xp, running)[::-1][_FIRST_KEPT:]))
    return out


class CenterDistanceEvaluator(Evaluator):
    """3D detection metrics by centre distance; `metric` names the definition.

    "nuscenes" (this module): the nuScenes devkit's `accumulate` / `calc_ap` / `calc_tp`
    and `DetectionMetrics` (see the module docstring; mAPH is the harness's addition).
    "t4" (projects/CenterPoint/t4_metric.py): AWML's T4MetricV2, i.e. tier4
    perception_eval's `Map` per BEV distance range.
    """

    headline = "mAP"
    # AP-like scores rise, the devkit's true-positive errors (metres, 1 - IoU, radians, m/s) fall
    directions: ClassVar[Mapping[str, str]] = {"mAP": "higher", "mAPH": "higher", "NDS": "higher", "mATE": "lower",
                                               "mASE": "lower", "mAOE": "lower", "mAVE": "lower", "mAAE": "lower"}

    def __init__(
        self,
        class_names: Sequence[str],
        thresholds: Sequence[float] = (0.5, 1.0, 2.0, 4.0),
        metric: str = "nuscenes",
        class_range: Mapping[str, float] | None = None,
        distance_ranges: Sequence[tuple[float, float]] | None = None,
        matching: str = "center_distance_bev",
    ) -> None:
        if metric not in METRICS:
            raise ValueError(f"metric {metric!r}: expected one of {METRICS}")
        self.class_names = tuple(class_names)
        self.thresholds = np.asarray(thresholds, np.float64)
        self.metric = metric
        self.class_range = dict(class_range) if class_range else None
        self.distance_ranges = tuple((float(a), float(b)) for a, b in distance_ranges) if distance_ranges else None
        self.matching = matching
        if self.class_range is not None:
            missing = [n for n in self.class_names if n not in self.class_range]
            if missing:
                raise ValueError(f"class_range: no range for {missing}; expected one per class in {self.class_names}")
        self.samples: dict[str, tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray]]] = {}

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        self.samples[sample_id] = (prediction, target)

    def merge(self, other: CenterDistanceEvaluator) -> None:
        self.samples.update(other.samples)

    def _gather(self) -> tuple[np.ndarray, ...]:
        """All samples concatenated in sample order, restricted to the evaluated classes:
        pred boxes (P, 7), scores, labels, sample index, velocities (P, 2) or None; GT boxes
        (G, 7), labels, sample index, velocities (G, 2) or None. Velocities only when every
        prediction and every target carries them."""
        items = list(self.samples.values())
        preds = [p for p, _ in items]
        targets = [t for _, t in items]
        p_labels, p_counts = _labels([p["labels"] for p in preds])
        g_labels, g_counts = _labels([t["labels"] for t in targets])
        frames = np.arange(len(items))
        p_frame = np.repeat(frames, p_counts)
        g_frame = np.repeat(frames, g_counts)
        p_boxes = _concat([p["boxes"] for p in preds], (7,), np.float64)
        p_scores = _concat([p["scores"] for p in preds], (), np.float64)
        g_boxes = _concat([t["boxes"] for t in targets], (7,), np.float64)
        has_vel = bool(items) and all("velocities" in p for p in preds) and all("velocities" in t for t in targets)
        p_vel = _concat([p["velocities"] for p in preds], (2,), np.float64) if has_vel else None
        g_vel = _concat([t["velocities"] for t in targets], (2,), np.float64) if has_vel else None
        classes = np.arange(len(self.class_names))
        valid = np.isin(p_labels, classes)
        if not valid.all():
            p_boxes, p_scores, p_labels, p_frame = p_boxes[valid], p_scores[valid], p_labels[valid], p_frame[valid]
            p_vel = p_vel[valid] if p_vel is not None else None
        valid = np.isin(g_labels, classes)
        if not valid.all():
            g_boxes, g_labels, g_frame = g_boxes[valid], g_labels[valid], g_frame[valid]
            g_vel = g_vel[valid] if g_vel is not None else None
        return (p_boxes, p_scores, p_labels.astype(np.int64), p_frame, p_vel,
                g_boxes, g_labels.astype(np.int64), g_frame, g_vel)

    def compute(self) -> dict[str, Any]:
        if self.metric == "t4":
            from .t4_metric import t4_metrics

            p_boxes, p_scores, p_lab, p_frame, _, g_boxes, g_lab, g_frame, _ = self._gather()
            out = t4_metrics(
                self.class_names, self.thresholds, p_boxes, p_scores, p_lab, p_frame, g_boxes, g_lab, g_frame,
                distance_ranges=self.distance_ranges, matching=self.matching,
            )
            return {"definition": "t4", **out, "num_samples": len(self.samples)}
        return {"definition": "nuscenes", **self._nuscenes(), "num_samples": len(self.samples)}

    def _nuscenes(self) -> dict[str, Any]:
        p_boxes, p_scores, p_lab, p_frame, p_vel, g_boxes, g_lab, g_frame, g_vel = self._gather()
        if self.class_range is not None:  # the devkit's filter_eval_boxes: ego distance < range
            limit = np.asarray([self.class_range[n] for n in self.class_names], np.float64)
            keep = np.hypot(p_boxes[:, 0], p_boxes[:, 1]) < limit[p_lab]
            p_boxes, p_scores, p_lab, p_frame = p_boxes[keep], p_scores[keep], p_lab[keep], p_frame[keep]
            p_vel = p_vel[keep] if p_vel is not None else None
            keep = np.hypot(g_boxes[:, 0], g_boxes[:, 1]) < limit[g_lab]
            g_boxes, g_lab, g_frame = g_boxes[keep], g_lab[keep], g_frame[keep]
            g_vel = g_vel[keep] if g_vel is not None else None
        num_frames = len(self.samples)
        num_classes = len(self.class_names)
        # per class in descending score order; equal scores: the one listed last first (the
        # devkit sorts (score, index) pairs ascending and reverses the list)
        order = np.argsort(p_scores, kind="stable")[::-1]
        order = order[np.argsort(_small_ints(p_lab[order], num_classes), kind="stable")]
        thresholds = self.thresholds
        tp_k = np.flatnonzero(thresholds == DIST_TH_TP)
        if len(tp_k) == 0:
            thresholds = np.append(thresholds, DIST_TH_TP)
        k_tp = int(tp_k[0]) if len(tp_k) else len(thresholds) - 1
        matched = match_groups(
            p_boxes[:, :2],
            p_lab * num_frames + p_frame,
            order,
            g_boxes[:, :2],
            g_lab * num_frames + g_frame,
            thresholds,
        )  # (T, P)
        # everything from here on in that order; heading weights computed once per (pred, GT)
        # pair where consecutive thresholds repeat the match
        matched = matched[:, order]
        scores = p_scores[order]

        yaw, gt_yaw = p_boxes[order, 6], g_boxes[:, 6]
        hit = matched >= 0
        weight = np.zeros(matched.shape)
        for k in range(len(thresholds)):
            m = matched[k]
            new = hit[k]
            if k:
                same = m == matched[k - 1]
                weight[k][same] = weight[k - 1][same]
                new = new & ~same
            weight[k][new] = 1.0 - wrap_angle_abs(yaw[new] - gt_yaw[m[new]]) / np.pi
        num_gt = np.bincount(g_lab, minlength=num_classes)
        bounds = np.searchsorted(p_lab[order], np.arange(num_classes + 1))

        # TP-error geometry of every match at DIST_TH_TP, in processing order (the devkit's
        # center_distance, 1 - scale_iou, yaw_diff with period pi for barriers, velocity_l2)
        tp_hit = hit[k_tp]
        tp_before = np.concatenate([[0], np.cumsum(tp_hit)])
        idx, gm = order[tp_hit], matched[k_tp][tp_hit]
        pb, gb = np.take(p_boxes, idx, axis=0), np.take(g_boxes, gm, axis=0)  # (faster than [idx])
        mins = np.minimum(pb[:, 3:6], gb[:, 3:6])
        inter = mins[:, 0] * mins[:, 1] * mins[:, 2]
        union = pb[:, 3] * pb[:, 4] * pb[:, 5] + gb[:, 3] * gb[:, 4] * gb[:, 5] - inter
        barrier = self.class_names.index("barrier") if "barrier" in self.class_names else -1
        period = np.where(p_lab[idx] == barrier, np.pi, 2 * np.pi)
        tp_geom = {
            "ATE": np.hypot(pb[:, 0] - gb[:, 0], pb[:, 1] - gb[:, 1]),
            "ASE": 1.0 - inter / union,
            # the devkit's angle_diff (its quaternions wrap the yaws first; a multiple of the
            # period changes nothing here but the last bits)
            "AOE": np.abs((gb[:, 6] - pb[:, 6] + period / 2) % period - period / 2),
        }
        if p_vel is not None and g_vel is not None:
            tp_geom["AVE"] = np.hypot(*(p_vel[idx] - g_vel[gm]).T)
        per_ap: dict[str, float] = {}
        per_aph: dict[str, float] = {}
        by_class_dist: dict[str, float] = {}
        dist_ap: dict[float, list[float]] = {float(d): [] for d in self.thresholds}
        errors: dict[str, dict[str, float]] = {k: {} for k in ("ATE", "ASE", "AOE", "AVE", "AAE")}
        for label, name in enumerate(self.class_names):
            n = int(num_gt[label])
            a, b = bounds[label], bounds[label + 1]
            if b > a and n:
                h = hit[:, a:b]
                n_tp = np.cumsum(h, axis=1)
                fp = np.arange(1, b - a + 1) - n_tp
                tp_aph = np.cumsum(weight[:, a:b], axis=1)  # weight is 0 where not a TP
                tp_ap = n_tp.astype(np.float64)
            aps, aphs = [], []
            for k, d in enumerate(self.thresholds):
                if b > a and n:
                    ap = _ap_from_sorted(tp_ap[k], n_tp[k], fp[k], n)
                    aph = _ap_from_sorted(tp_aph[k], n_tp[k], fp[k], n)
                else:  # no GT (the devkit's no_predictions) or no predictions: 0
                    ap = aph = 0.0
                aps.append(ap)
                aphs.append(aph)
                dist_ap[float(d)].append(ap)
                by_class_dist[f"{name}@{d:g}m"] = ap
            per_ap[name] = float(np.mean(aps))
            per_aph[name] = float(np.mean(aphs))
            # TP errors at DIST_TH_TP (the class's slice of the arrays computed below the loop)
            if b > a and n:
                lo, hi = tp_before[a], tp_before[b]
                errs = {k: v[lo:hi] for k, v in tp_geom.items()}
                got = tp_errors(scores[a:b], (tp_before[a + 1 : b + 1] - lo) / n, scores[a:b][tp_hit[a:b]], errs)
                got["AAE"] = 1.0  # attributes never exist here: all NaN -> 1 (the devkit's cummean)
                for key, v in got.items():
                    errors[key][name] = v
            else:
                for key in errors:
                    errors[key][name] = 1.0
            if name == "traffic_cone":  # the devkit: no attribute, speed or heading for cones
                errors["AAE"][name] = errors["AVE"][name] = errors["AOE"][name] = float("nan")
            elif name == "barrier":
                errors["AAE"][name] = errors["AVE"][name] = float("nan")
        out: dict[str, Any] = {
            "mAP": float(np.mean(list(per_ap.values()))) if per_ap else 0.0,
            "mAPH": float(np.mean(list(per_aph.values()))) if per_aph else 0.0,
        }
        means = {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN (every class a cone)
            for key, per in errors.items():
                means[key] = float(np.nanmean([per.get(n, np.nan) for n in self.class_names]))
        for key in ("ATE", "ASE", "AOE"):
            out[f"m{key}"] = means[key]
        with_velocity = p_vel is not None
        if with_velocity:  # NDS needs all five; attributes never exist here: mAAE as the devkit scores that
            out["mAVE"] = means["AVE"]
            out["mAAE"] = means["AAE"]
            scores_tp = [max(0.0, 1.0 - means[k]) for k in ("ATE", "ASE", "AOE", "AVE", "AAE")]
            out["NDS"] = (MEAN_AP_WEIGHT * out["mAP"] + float(np.sum(scores_tp))) / (MEAN_AP_WEIGHT + 5)
        return {
            **out,
            "per_class_AP": per_ap,
            "per_class_APH": per_aph,
            "AP_by_distance": {f"{d:g}m": float(np.mean(v)) for d, v in dist_ap.items() if v},
            "AP_by_class_and_distance": by_class_dist,
            "per_class_TP_errors": {k: v for k, v in errors.items() if with_velocity or k not in ("AVE", "AAE")},
        }
