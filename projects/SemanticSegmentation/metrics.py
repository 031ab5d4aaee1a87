"""Semantic segmentation metrics as mmseg's `IoUMetric` defines them, from one confusion matrix.

Pixels are accumulated over the whole evaluation set (not averaged per image), pixels
whose label is `ignore_index` are left out, and per class

    IoU_c = |pred = c and label = c| / |pred = c or label = c|
    Acc_c = |pred = c and label = c| / |label = c|

mIoU and mAcc average over the classes that occur (in the labels or the predictions for
IoU, in the labels for Acc); a class that never occurs has no IoU, it is not counted
as 0 or 1. pixel_accuracy (mmseg's aAcc) is correct pixels / labelled pixels.
Per-class values are in the JSON as `per_class_iou` / `per_class_acc`; a class without
a value is left out of those tables (listed under `absent_classes`) so the document
holds no NaN. The confusion matrix (rows = label, columns = prediction) is kept too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from awml_harness.project import Evaluator


def confusion_matrix(label: np.ndarray, pred: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """(num_classes, num_classes) int64 counts; rows = label, columns = prediction."""
    label = np.asarray(label).ravel().astype(np.int64)
    pred = np.asarray(pred).ravel().astype(np.int64)
    if label.shape != pred.shape:
        raise ValueError(f"label has {label.size} pixels, prediction {pred.size}")
    keep = label != ignore_index
    label, pred = label[keep], pred[keep]
    for name, arr in (("label", label), ("prediction", pred)):
        if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
            bad = sorted(set(arr[(arr < 0) | (arr >= num_classes)].tolist()))[:10]
            raise ValueError(f"{name} values outside 0..{num_classes - 1} (and {ignore_index} = ignore): {bad}")
    return np.bincount(label * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def metrics_from_confusion(confusion: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    cm = np.asarray(confusion, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    label_area = cm.sum(axis=1).astype(np.float64)
    pred_area = cm.sum(axis=0).astype(np.float64)
    union = label_area + pred_area - tp
    has_iou, has_acc = union > 0, label_area > 0
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=has_iou)
    acc = np.divide(tp, label_area, out=np.zeros_like(tp), where=has_acc)
    total = float(label_area.sum())
    names = list(class_names)
    return {
        "mIoU": float(iou[has_iou].mean()) if has_iou.any() else 0.0,
        "mAcc": float(acc[has_acc].mean()) if has_acc.any() else 0.0,
        "pixel_accuracy": float(tp.sum() / total) if total else 0.0,
        "num_pixels": int(total),
        "per_class_iou": {n: float(v) for n, v, ok in zip(names, iou, has_iou, strict=True) if ok},
        "per_class_acc": {n: float(v) for n, v, ok in zip(names, acc, has_acc, strict=True) if ok},
        "absent_classes": [n for n, ok in zip(names, has_iou, strict=True) if not ok],
        "confusion_matrix": {t: {p: int(cm[i, j]) for j, p in enumerate(names)} for i, t in enumerate(names)},
    }


class SegmentationEvaluator(Evaluator):
    """Adds each image's confusion matrix into a running total; predictions and targets
    are (H, W) integer masks. An image's matrix is kept by sample id, so an image added
    twice (a replay) is counted once."""

    headline: ClassVar[str] = "mIoU"
    directions: ClassVar[Mapping[str, str]] = {"mIoU": "higher", "mAcc": "higher", "pixel_accuracy": "higher"}

    def __init__(self, class_names: Sequence[str], ignore_index: int = 255) -> None:
        self.class_names = tuple(class_names)
        self.ignore_index = ignore_index
        self.per_image: dict[str, np.ndarray] = {}

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        pred = prediction["mask"] if isinstance(prediction, dict) else prediction
        label = target["mask"] if isinstance(target, dict) else target
        pred, label = np.asarray(pred), np.asarray(label)
        if pred.shape != label.shape:
            raise ValueError(f"{sample_id}: predicted mask {pred.shape} vs label map {label.shape}")
        self.per_image[sample_id] = confusion_matrix(label, pred, len(self.class_names), self.ignore_index)

    def compute(self) -> dict[str, Any]:
        n = len(self.class_names)
        total = np.zeros((n, n), np.int64)
        for cm in self.per_image.values():
            total += cm
        out = metrics_from_confusion(total, self.class_names)
        out["num_images"] = len(self.per_image)
        return out
