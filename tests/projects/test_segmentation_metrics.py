"""SemanticSegmentation metrics (mmseg IoUMetric semantics) against independent computations:
a hand-counted case and per-class boolean set algebra, which shares no code with the
bincount confusion matrix the evaluator uses."""

from __future__ import annotations

import numpy as np
import pytest

from projects.SemanticSegmentation.metrics import SegmentationEvaluator, confusion_matrix

NAMES = ("a", "b", "c")


def test_a_hand_counted_case():
    label = np.array([[0, 0, 1, 1],
                      [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1],
                     [2, 0, 2, 2]])
    ev = SegmentationEvaluator(NAMES)
    ev.add("x", pred, label)
    m = ev.compute()
    # labelled pixels: 7 (one ignored). a: tp 1, label 2, pred 2 -> IoU 1/3; b: tp 2, label 3,
    # pred 3 -> IoU 2/4; c: tp 1, label 2, pred 2 (the prediction under the ignored pixel
    # does not count) -> IoU 1/3
    assert m["per_class_iou"] == pytest.approx({"a": 1 / 3, "b": 1 / 2, "c": 1 / 3})
    assert m["mIoU"] == pytest.approx(7 / 18)
    assert m["per_class_acc"] == pytest.approx({"a": 1 / 2, "b": 2 / 3, "c": 1 / 2})
    assert m["pixel_accuracy"] == pytest.approx(4 / 7)
    assert m["num_pixels"] == 7 and m["absent_classes"] == []
    assert m["confusion_matrix"]["b"] == {"a": 0, "b": 2, "c": 1}


def _by_sets(labels, preds, num_classes, ignore=255):
    """Per-class IoU / accuracy from boolean masks over all images."""
    label = np.concatenate([x.ravel() for x in labels])
    pred = np.concatenate([x.ravel() for x in preds])
    keep = label != ignore
    label, pred = label[keep], pred[keep]
    iou, acc = {}, {}
    for c in range(num_classes):
        inter = np.logical_and(label == c, pred == c).sum()
        union = np.logical_or(label == c, pred == c).sum()
        if union:
            iou[c] = inter / union
        if (label == c).sum():
            acc[c] = inter / (label == c).sum()
    return iou, acc, float((label == pred).mean())


@pytest.mark.parametrize("seed", range(5))
def test_random_masks_equal_the_set_algebra(seed):
    rng = np.random.default_rng(seed)
    names = tuple(f"k{i}" for i in range(5))
    labels = [rng.integers(0, 4, (7, 9)) for _ in range(4)]  # class 4 never labelled
    for lab in labels:
        lab[rng.random(lab.shape) < 0.1] = 255
    preds = [np.where(rng.random(lab.shape) < 0.6, np.where(lab == 255, 0, lab), rng.integers(0, 5, lab.shape))
             for lab in labels]
    ev = SegmentationEvaluator(names)
    for i, (p, lab) in enumerate(zip(preds, labels, strict=True)):
        ev.add(f"s{i}", p.astype(np.uint8), lab.astype(np.uint8))
    m = ev.compute()
    iou, acc, pix = _by_sets(labels, preds, 5)
    assert m["per_class_iou"] == pytest.approx({names[c]: v for c, v in iou.items()})
    assert m["per_class_acc"] == pytest.approx({names[c]: v for c, v in acc.items()})
    assert m["mIoU"] == pytest.approx(np.mean(list(iou.values())))
    assert m["mAcc"] == pytest.approx(np.mean(list(acc.values())))
    assert m["pixel_accuracy"] == pytest.approx(pix)


def test_a_class_never_seen_has_no_iou_and_does_not_lower_miou():
    label = np.array([[0, 1], [0, 1]])
    m = SegmentationEvaluator(NAMES)
    m.add("x", label, label)
    out = m.compute()
    assert out["mIoU"] == 1.0 and out["absent_classes"] == ["c"] and "c" not in out["per_class_iou"]


def test_a_replayed_image_counts_once_and_images_accumulate_pixels():
    ev = SegmentationEvaluator(NAMES)
    ev.add("x", np.array([[0, 0]]), np.array([[0, 1]]))
    ev.add("x", np.array([[0, 0]]), np.array([[0, 1]]))
    ev.add("y", np.array([[1, 1, 1, 1]]), np.array([[1, 1, 1, 1]]))
    m = ev.compute()
    # accumulated over pixels (mmseg), not a mean of per-image IoUs: b has tp 4, union 5
    assert m["per_class_iou"]["b"] == pytest.approx(4 / 5) and m["num_images"] == 2


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="outside 0..2"):
        confusion_matrix(np.array([0, 3]), np.array([0, 0]), 3)
    with pytest.raises(ValueError, match="mask"):
        SegmentationEvaluator(NAMES).add("x", np.zeros((2, 2)), np.zeros((2, 3)))
