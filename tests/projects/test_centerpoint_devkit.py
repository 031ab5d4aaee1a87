"""metric="nuscenes" equals the nuScenes devkit itself (nuscenes-devkit, a dev dependency).

Random scenes with tied scores, distances exactly at the thresholds, empty frames,
duplicated predictions, and classes without GT or without predictions go through the
devkit's own `accumulate` / `calc_ap` / `calc_tp` and its `DetectionMetrics` summary
(mean AP, TP errors, NDS) and through CenterDistanceEvaluator; every number must agree.

The devkit side lives in benchmarks/nuscenes_metric_compare.py (also a command-line
comparison on random scenes and the shipped model).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import nuscenes_metric_compare as nuscenes_reference
from projects.CenterPoint.metrics import CenterDistanceEvaluator

CLASSES = ("car", "pedestrian", "barrier", "traffic_cone", "bus")
THRESHOLDS = (0.5, 1.0, 2.0, 4.0)


def devkit() -> Any:
    try:
        return nuscenes_reference.devkit()
    except nuscenes_reference.DevkitMissing as exc:
        pytest.skip(str(exc))


def reference(frames: list[tuple[dict, dict]], class_range: dict[str, float] | None) -> dict[str, Any]:
    devkit()
    return nuscenes_reference.reference(frames, CLASSES, class_range)


def ours(frames: list[tuple[dict, dict]], class_range: dict[str, float] | None) -> dict[str, Any]:
    ev = CenterDistanceEvaluator(CLASSES, THRESHOLDS, class_range=class_range)
    for i, (p, t) in enumerate(frames):
        ev.add(str(i), p, t)
    return ev.compute()


def assert_equal(got: dict[str, Any], ref: dict[str, Any], tol: float = 1e-9) -> None:
    for c in CLASSES:
        for th in THRESHOLDS:
            assert got["AP_by_class_and_distance"][f"{c}@{th:g}m"] == pytest.approx(ref["aps"][c][th], abs=tol), (c, th)
        assert got["per_class_AP"][c] == pytest.approx(ref["per_class"][c], abs=tol), c
        for k, per in ref["errs"].items():
            assert got["per_class_TP_errors"][k][c] == pytest.approx(per[c], abs=tol, nan_ok=True), (k, c)
    assert got["mAP"] == pytest.approx(ref["mAP"], abs=tol)
    for k, v in ref["tp"].items():
        assert got[f"m{k}"] == pytest.approx(v, abs=tol, nan_ok=True), k
    assert got["NDS"] == pytest.approx(ref["NDS"], abs=tol)


# positions on a 0.5 m lattice: equal distances and distances exactly at a threshold occur
coord = st.integers(-8, 8).map(lambda v: v * 0.5)
score = st.integers(1, 9).map(lambda v: v / 10)  # few values: many ties
size = st.sampled_from([0.5, 1.0, 2.0, 4.0])


@st.composite
def frame(draw: Any) -> tuple[dict, dict]:
    def objects(n: int, with_scores: bool) -> dict:
        rows = [[draw(coord), draw(coord), draw(coord), draw(size), draw(size), draw(size),
                 draw(st.floats(-np.pi, np.pi))] for _ in range(n)]
        labels = [draw(st.integers(0, len(CLASSES) - 2)) for _ in range(n)]  # "bus": never any
        vel = [[draw(coord), draw(coord)] for _ in range(n)]
        out = {"boxes": np.asarray(rows, np.float64).reshape(-1, 7), "labels": np.asarray(labels, np.int64),
               "velocities": np.asarray(vel, np.float64).reshape(-1, 2)}
        if with_scores:
            out["scores"] = np.asarray([draw(score) for _ in range(n)], np.float64)
        return out

    target = objects(draw(st.integers(0, 5)), False)
    pred = objects(draw(st.integers(0, 7)), True)
    dup = draw(st.integers(0, 2))  # duplicated predictions (same box, same score)
    if dup and len(pred["labels"]):
        idx = np.asarray([draw(st.integers(0, len(pred["labels"]) - 1)) for _ in range(dup)])
        pred = {k: np.concatenate([v, v[idx]]) for k, v in pred.items()}
    return pred, target


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frames=st.lists(frame(), min_size=1, max_size=5), ranged=st.booleans())
def test_nuscenes_metric_equals_the_devkit(frames: list[tuple[dict, dict]], ranged: bool) -> None:
    devkit()
    class_range = {"car": 3.0, "pedestrian": 2.5, "barrier": 4.0, "traffic_cone": 1.5, "bus": 3.0} if ranged else None
    assert_equal(ours(frames, class_range), reference(frames, class_range))


def test_devkit_comparison_sees_tie_order() -> None:
    # the comparison must be able to fail: one sample, equal scores, the TP listed first
    p = {"boxes": np.array([[0, 0, 0, 1, 1, 1, 0], [3, 3, 0, 1, 1, 1, 0]], np.float64), "scores": np.array([0.5, 0.5]),
         "labels": np.array([0, 0]), "velocities": np.zeros((2, 2))}
    t = {"boxes": np.array([[0, 0, 0, 1, 1, 1, 0]], np.float64), "labels": np.array([0]), "velocities": np.zeros((1, 2))}
    ref = reference([(p, t)], None)
    got = ours([(p, t)], None)
    assert_equal(got, ref)
    # taken in listed order (a stable descending sort) the car AP would differ
    swapped = {k: v[::-1] for k, v in p.items()}
    assert ours([(swapped, t)], None)["per_class_AP"]["car"] != pytest.approx(ref["per_class"]["car"], abs=1e-6)


def test_devkit_tp_error_at_recall_exactly_min_recall() -> None:
    # 10 GT, one match: the highest recall reached is 0.10, the grid index calc_tp excludes,
    # so every TP error of the class is 1 (and ATE would be 0.5 one index later)
    t = {"boxes": np.array([[5.0 * i, 0, 0, 1, 1, 1, 0] for i in range(10)]), "labels": np.zeros(10, np.int64),
         "velocities": np.zeros((10, 2))}
    p = {"boxes": np.array([[0.5, 0, 0, 1, 1, 1, 0]]), "scores": np.array([0.9]), "labels": np.array([0]),
         "velocities": np.zeros((1, 2))}
    ref = reference([(p, t)], None)
    got = ours([(p, t)], None)
    assert got["per_class_TP_errors"]["ATE"]["car"] == 1.0
    assert_equal(got, ref)
