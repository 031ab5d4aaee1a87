"""CalibrationStatusClassification metrics on hand-made confusion cases."""

from __future__ import annotations

import json

import numpy as np
import pytest

from projects.CalibrationStatusClassification.metrics import (
    ClassificationEvaluator,
    confusion_matrix,
    metrics_from_confusion,
)

NAMES = ("miscalibrated", "calibrated")


def test_confusion_matrix_rows_are_truth() -> None:
    cm = confusion_matrix([0, 0, 0, 1, 1, 1, 1], [0, 1, 0, 1, 1, 0, 1], 2)
    assert cm.tolist() == [[2, 1], [1, 3]]


def test_mixed_case_by_hand() -> None:
    m = metrics_from_confusion(np.array([[2, 1], [1, 3]]), NAMES)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["per_class_precision"] == pytest.approx({"miscalibrated": 2 / 3, "calibrated": 3 / 4})
    assert m["per_class_recall"] == pytest.approx({"miscalibrated": 2 / 3, "calibrated": 3 / 4})
    assert m["per_class_f1"] == pytest.approx({"miscalibrated": 2 / 3, "calibrated": 3 / 4})
    assert m["macro_f1"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert m["num_samples"] == 7


def test_asymmetric_case_by_hand() -> None:
    # 4 miscalibrated: 3 caught; 6 calibrated: 4 kept, 2 false alarms
    m = metrics_from_confusion(np.array([[3, 1], [2, 4]]), NAMES)
    p0, p1 = 3 / 5, 4 / 5
    r0, r1 = 3 / 4, 4 / 6
    assert m["per_class_precision"]["miscalibrated"] == pytest.approx(p0)
    assert m["per_class_precision"]["calibrated"] == pytest.approx(p1)
    assert m["macro_recall"] == pytest.approx((r0 + r1) / 2)
    assert m["per_class_f1"]["miscalibrated"] == pytest.approx(2 * p0 * r0 / (p0 + r0))
    assert m["confusion_matrix"] == {"miscalibrated": {"miscalibrated": 3, "calibrated": 1},
                                     "calibrated": {"miscalibrated": 2, "calibrated": 4}}


def test_never_predicted_class_scores_zero_not_nan() -> None:
    m = metrics_from_confusion(confusion_matrix([0, 1, 1], [1, 1, 1], 2), NAMES)
    assert m["per_class_precision"]["miscalibrated"] == 0.0
    assert m["per_class_f1"]["miscalibrated"] == 0.0
    assert m["per_class_recall"]["calibrated"] == 1.0
    json.dumps(m, allow_nan=False)


def test_perfect_and_empty() -> None:
    perfect = metrics_from_confusion(np.diag([5, 5]), NAMES)
    assert perfect["accuracy"] == perfect["macro_f1"] == 1.0
    empty = metrics_from_confusion(np.zeros((2, 2), int), NAMES)
    assert empty["accuracy"] == 0.0 and empty["num_samples"] == 0


def test_out_of_range_labels_are_rejected() -> None:
    with pytest.raises(ValueError, match="outside"):
        confusion_matrix([0, 2], [0, 1], 2)
    with pytest.raises(ValueError, match="labels but"):
        confusion_matrix([0, 1], [0], 2)


def test_evaluator_accumulates_and_merges() -> None:
    a, b = ClassificationEvaluator(NAMES), ClassificationEvaluator(NAMES)
    assert ClassificationEvaluator.headline == "accuracy"
    a.add("0-calibrated", {"label": 1, "probs": np.array([0.1, 0.9])}, 1)
    a.add("0-miscalibrated", {"label": 1, "probs": np.array([0.4, 0.6])}, 0)
    b.add("1-calibrated", {"label": 1}, 1)
    b.add("1-miscalibrated", {"label": 0}, 0)
    a.merge(b)
    m = a.compute()
    assert m["accuracy"] == pytest.approx(0.75)
    assert m["confusion_matrix"]["miscalibrated"] == {"miscalibrated": 1, "calibrated": 1}
    assert "accuracy" in m and all(isinstance(v, (int, float, dict)) for v in m.values())
