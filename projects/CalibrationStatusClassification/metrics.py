"""Classification metrics from a confusion matrix: accuracy, per-class and macro P/R/F1.

Everything derives from one integer confusion matrix (rows = true class, columns =
predicted class), so per-class numbers, macro averages and the matrix in the report
can never disagree. A class with no predictions (precision) or no samples (recall)
scores 0 rather than NaN, so the metrics JSON stays valid and deltas stay finite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from awml_harness.project import Evaluator


def confusion_matrix(labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    labels_a = np.asarray(labels, dtype=np.int64).ravel()
    preds_a = np.asarray(preds, dtype=np.int64).ravel()
    if labels_a.shape != preds_a.shape:
        raise ValueError(f"{labels_a.size} labels but {preds_a.size} predictions")
    for name, arr in (("label", labels_a), ("prediction", preds_a)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            raise ValueError(f"{name} outside 0..{num_classes - 1}: {sorted(set(arr.tolist()))}")
    return np.bincount(labels_a * num_classes + preds_a, minlength=num_classes**2).reshape(num_classes, num_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)


def metrics_from_confusion(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    cm = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(cm)
    precision = _safe_div(tp, cm.sum(axis=0))
    recall = _safe_div(tp, cm.sum(axis=1))
    f1 = _safe_div(2 * precision * recall, precision + recall)
    total = cm.sum()
    names = list(class_names)
    return {
        "accuracy": float(tp.sum() / total) if total else 0.0,
        "macro_precision": float(precision.mean()),
        "macro_recall": float(recall.mean()),
        "macro_f1": float(f1.mean()),
        "num_samples": int(total),
        "per_class_precision": {n: float(v) for n, v in zip(names, precision, strict=True)},
        "per_class_recall": {n: float(v) for n, v in zip(names, recall, strict=True)},
        "per_class_f1": {n: float(v) for n, v in zip(names, f1, strict=True)},
        # rows: true class, columns: predicted class
        "confusion_matrix": {t: {p: int(confusion[i][j]) for j, p in enumerate(names)} for i, t in enumerate(names)},
    }


class ClassificationEvaluator(Evaluator):
    """Collects (predicted label, true label) pairs; predictions are `{"label": int, ...}`."""

    headline: ClassVar[str] = "accuracy"
    directions: ClassVar[Mapping[str, str]] = {"accuracy": "higher", "macro_*": "higher"}

    def __init__(self, class_names: Sequence[str]) -> None:
        self.class_names = tuple(class_names)
        self.labels: dict[str, int] = {}
        self.preds: dict[str, int] = {}

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        pred = prediction["label"] if isinstance(prediction, dict) else prediction
        true = target["label"] if isinstance(target, dict) else target
        self.preds[sample_id] = int(pred)
        self.labels[sample_id] = int(true)

    def merge(self, other: ClassificationEvaluator) -> None:
        self.preds.update(other.preds)
        self.labels.update(other.labels)

    def compute(self) -> dict[str, Any]:
        ids = sorted(self.labels)
        cm = confusion_matrix([self.labels[i] for i in ids], [self.preds[i] for i in ids], len(self.class_names))
        return metrics_from_confusion(cm, self.class_names)
