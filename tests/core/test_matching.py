from __future__ import annotations

import numpy as np

from awml_harness.matching import Detections, match_detections, pairwise_iou


def dets2d(boxes, scores, labels):
    return Detections(np.asarray(boxes, float), np.asarray(scores, float), np.asarray(labels), "box2d")


REF = dets2d([[0, 0, 10, 10], [20, 20, 30, 30], [50, 50, 60, 70]], [0.9, 0.89, 0.5], [1, 1, 2])


def test_reordered_boxes_pass():
    order = [2, 0, 1]
    test = dets2d(REF.boxes[order] + 0.3, REF.scores[order] - 0.01, REF.labels[order])
    result = match_detections(REF, test, threshold=0.5)
    assert result.passed and result.matched == 3


def test_dropped_box_fails_and_is_named():
    test = dets2d(REF.boxes[:2], REF.scores[:2], REF.labels[:2])
    result = match_detections(REF, test, threshold=0.5)
    assert not result.passed
    assert result.unmatched_ref == [{"label": 2, "score": 0.5, "box": [50.0, 50.0, 60.0, 70.0]}]
    assert "1 lost" in result.message() and "lost: label=2" in result.message()


def test_class_matters_and_extra_boxes_fail():
    test = dets2d(np.vstack([REF.boxes, [[0, 0, 10, 10]]]), np.append(REF.scores, 0.7), np.append(REF.labels, 3))
    result = match_detections(REF, test)
    assert not result.passed and len(result.unmatched_test) == 1 and result.unmatched_test[0]["label"] == 3


def test_borderline_boxes_near_the_score_threshold_do_not_fail():
    ref = dets2d([[0, 0, 10, 10], [40, 40, 50, 50]], [0.9, 0.31], [0, 0])
    test = dets2d([[0, 0, 10, 10]], [0.9], [0])
    assert match_detections(ref, test, score_threshold=0.3, score_atol=0.05).passed
    assert not match_detections(ref, test, score_threshold=0.1, score_atol=0.05).passed


def test_score_and_box_deltas_are_bounded():
    test = dets2d(REF.boxes, REF.scores + np.array([0, 0.2, 0]), REF.labels)
    result = match_detections(REF, test, score_atol=0.05)
    assert not result.passed and abs(result.max_score_delta - 0.2) < 1e-9
    test = dets2d(REF.boxes + np.array([0, 0, 0, 3.0]), REF.scores, REF.labels)
    assert not match_detections(REF, test, box_atol=2.0, threshold=0.5).passed


def test_3d_matching_uses_bev_center_distance():
    ref = Detections(np.array([[0, 0, 0, 4, 2, 1.5, 0], [10, 0, 0, 4, 2, 1.5, 0]], float), np.array([0.8, 0.7]),
                     np.array([0, 0]), "box3d")
    test = Detections(ref.boxes[::-1] + np.array([0.05, 0, 0.5, 0, 0, 0, 0]), ref.scores[::-1], ref.labels, "box3d")
    r = match_detections(ref, test, threshold=0.5, box_atol=0.6)
    assert r.passed and r.matched == 2
    far = Detections(ref.boxes + np.array([1.0, 0, 0, 0, 0, 0, 0]), ref.scores, ref.labels, "box3d")
    assert not match_detections(ref, far, threshold=0.5).passed


def test_pairwise_iou_hand_values():
    iou = pairwise_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 1, 3, 3], [0, 0, 2, 2], [5, 5, 6, 6]]))
    np.testing.assert_allclose(iou, [[1 / 7, 1.0, 0.0]])


def test_empty_sides():
    empty = dets2d(np.zeros((0, 4)), [], [])
    assert match_detections(empty, empty).passed
    assert not match_detections(REF, empty).passed
