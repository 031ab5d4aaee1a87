"""Detection-aware verification: match boxes, not list positions.

Two backends can emit the same detections in a different order (near-equal scores swap
places after sorting, NMS visits them in another order). Comparing the lists
element-wise then fails for nothing, while a lost box above the threshold is the real
regression. So: per class, greedily pair each reference box (highest score first) with
the closest unpaired test box (IoU for 2D boxes, BEV center distance for 3D), then
report unpaired boxes on either side and the worst score/box deltas among pairs.

Boxes whose score lies within `score_atol` of the score threshold may legitimately
appear on one side only; they are listed as "borderline" and do not fail the check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np


@dataclass(frozen=True)
class Detections:
    """boxes: (N, 4) x1,y1,x2,y2 for "box2d"; (N, >=7) x,y,z,l,w,h,yaw[,...] for "box3d"."""

    boxes: np.ndarray
    scores: np.ndarray
    labels: np.ndarray
    kind: Literal["box2d", "box3d"] = "box2d"

    def __post_init__(self) -> None:
        n = len(self.scores)
        if len(self.boxes) != n or len(self.labels) != n:
            raise ValueError(f"Detections: {len(self.boxes)} boxes, {n} scores, {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.scores)


@dataclass(frozen=True)
class MatchResult:
    passed: bool
    num_ref: int
    num_test: int
    matched: int
    unmatched_ref: list[dict] = field(default_factory=list)  # lost boxes
    unmatched_test: list[dict] = field(default_factory=list)  # extra boxes
    borderline: int = 0
    max_score_delta: float = 0.0
    max_box_delta: float = 0.0
    worst_pair: dict | None = None
    score_atol: float = 0.0
    box_atol: float = 0.0

    def message(self, limit: int = 5) -> str:
        lines = [
            f"detections: {self.matched}/{self.num_ref} reference boxes matched, "
            f"{len(self.unmatched_ref)} lost, {len(self.unmatched_test)} extra "
            f"(max score delta {self.max_score_delta:.4g} vs allowed {self.score_atol:.4g}, "
            f"max box delta {self.max_box_delta:.4g} vs allowed {self.box_atol:.4g})"
        ]
        for title, boxes in (("lost", self.unmatched_ref), ("extra", self.unmatched_test)):
            for b in boxes[:limit]:
                lines.append(f"  {title}: label={b['label']} score={b['score']:.4f} box={b['box']}")
            if len(boxes) > limit:
                lines.append(f"  ... {len(boxes) - limit} more {title}")
        if self.worst_pair and (self.max_score_delta > self.score_atol or self.max_box_delta > self.box_atol):
            lines.append(f"  worst pair: {self.worst_pair}")
        return "\n".join(lines)


def pairwise_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of xyxy boxes (N,4) x (M,4)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def pairwise_center_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """BEV (x, y) center distance matrix of 3D boxes."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    return np.linalg.norm(a[:, None, :2] - b[None, :, :2], axis=-1)


def _box_record(det: Detections, i: int) -> dict:
    return {"label": int(det.labels[i]), "score": float(det.scores[i]),
            "box": [round(float(v), 3) for v in np.asarray(det.boxes[i]).ravel()]}


def match_settings(defaults: Any, detection: Any) -> dict[str, Any]:
    """Keyword arguments of `match_detections`: the project's defaults
    (`ProjectAdapter.match_settings()`) under the config's `verification.detection`
    overrides, one rule for verification and for the auto_mixed search alike."""
    settings = dict(defaults)
    if detection.threshold is not None:
        settings["threshold"] = detection.threshold
    if detection.box_atol is not None:
        settings["box_atol"] = detection.box_atol
    settings["score_atol"] = detection.score_atol
    if detection.min_score is not None:  # unmatched boxes up to min_score + score_atol are borderline
        settings["score_threshold"] = max(float(settings.get("score_threshold", 0.0)), detection.min_score)
    return settings


def box_delta(a: np.ndarray, b: np.ndarray, is_3d: bool) -> float:
    """The largest parameter difference of two matched boxes; a 3D box's yaw (index 6) as
    an angle, so -3.06 and 3.05 rad (0.12 apart across +-pi) are not 6.1 apart."""
    diff = np.abs(np.asarray(a, np.float64).ravel() - np.asarray(b, np.float64).ravel())
    if is_3d and diff.size > 6:
        diff[6] = abs((diff[6] + np.pi) % (2 * np.pi) - np.pi)
    return float(diff.max()) if diff.size else 0.0


def match_detections(
    ref: Detections,
    test: Detections,
    *,
    threshold: float | None = None,
    score_atol: float = 0.05,
    box_atol: float | None = None,
    score_threshold: float = 0.0,
) -> MatchResult:
    """Greedy per-class matching. `threshold`: min IoU (box2d, default 0.5) or max
    center distance in metres (box3d, default 0.5). `box_atol`: max abs difference of
    box parameters among pairs (default: 2 px for 2D, 0.1 for 3D). `score_threshold`:
    the postprocess threshold, so boxes near it count as borderline, not lost."""
    is_3d = ref.kind == "box3d"
    if threshold is None:
        threshold = 0.5
    if box_atol is None:
        box_atol = 0.1 if is_3d else 2.0
    used = np.zeros(len(test), dtype=bool)
    pairs: list[tuple[int, int]] = []
    for label in np.unique(np.concatenate([ref.labels, test.labels]).astype(np.int64)):
        ri = np.flatnonzero(ref.labels == label)
        ti = np.flatnonzero(test.labels == label)
        if len(ri) == 0 or len(ti) == 0:
            continue
        ri = ri[np.argsort(-ref.scores[ri], kind="stable")]
        if is_3d:
            cost = pairwise_center_distance(ref.boxes[ri], test.boxes[ti])
            ok = cost <= threshold
        else:
            cost = -pairwise_iou(ref.boxes[ri], test.boxes[ti])
            ok = -cost >= threshold
        for row, r in enumerate(ri):
            cand = np.flatnonzero(ok[row] & ~used[ti])
            if len(cand) == 0:
                continue
            # closest box first; among equally close ones the nearest score
            best = cand[np.lexsort((np.abs(test.scores[ti[cand]] - ref.scores[r]), cost[row, cand]))[0]]
            used[ti[best]] = True
            pairs.append((int(r), int(ti[best])))

    matched_ref = {r for r, _ in pairs}
    borderline_cut = score_threshold + score_atol
    lost, extra, borderline = [], [], 0
    for i in range(len(ref)):
        if i not in matched_ref:
            if ref.scores[i] <= borderline_cut:
                borderline += 1
            else:
                lost.append(_box_record(ref, i))
    for j in np.flatnonzero(~used):
        if test.scores[j] <= borderline_cut:
            borderline += 1
        else:
            extra.append(_box_record(test, int(j)))
    max_score = max_box = 0.0
    worst = None
    for r, t in pairs:
        ds = abs(float(ref.scores[r]) - float(test.scores[t]))
        db = box_delta(ref.boxes[r], test.boxes[t], is_3d) if ref.boxes.size else 0.0
        if ds > max_score or db > max_box or worst is None:
            worst = {"ref": _box_record(ref, r), "test": _box_record(test, t)}
        max_score, max_box = max(max_score, ds), max(max_box, db)
    passed = not lost and not extra and max_score <= score_atol and max_box <= box_atol
    return MatchResult(
        passed=passed, num_ref=len(ref), num_test=len(test), matched=len(pairs),
        unmatched_ref=lost, unmatched_test=extra, borderline=borderline,
        max_score_delta=max_score, max_box_delta=max_box, worst_pair=worst,
        score_atol=score_atol, box_atol=box_atol,
    )
