"""Detection matching (awml_harness/matching.py): defaults, boundaries, greedy order,
borderline boxes and the message, pinned so a deliberate bug shows."""

from __future__ import annotations

import numpy as np
import pytest

from awml_harness.matching import Detections, match_detections, pairwise_center_distance, pairwise_iou


def d2(boxes, scores, labels):
    return Detections(np.asarray(boxes, float).reshape(-1, 4), np.asarray(scores, float), np.asarray(labels, int))


def d3(centres, scores, labels):
    boxes = np.zeros((len(centres), 7))
    if len(centres):
        boxes[:, :3] = np.asarray(centres, float)
        boxes[:, 3:6] = (4.0, 2.0, 1.5)
    return Detections(boxes, np.asarray(scores, float), np.asarray(labels, int), "box3d")


def test_inconsistent_lengths_are_refused_with_the_counts():
    with pytest.raises(ValueError, match="Detections: 2 boxes, 1 scores, 1 labels"):
        d2([[0, 0, 1, 1], [0, 0, 1, 1]], [0.5], [0])
    with pytest.raises(ValueError, match="Detections: 1 boxes, 1 scores, 2 labels"):
        d2([[0, 0, 1, 1]], [0.5], [0, 0])
    assert len(d2([[0, 0, 1, 1]] * 3, [0.1, 0.2, 0.3], [0, 0, 0])) == 3


def test_iou_of_degenerate_and_disjoint_boxes_is_zero():
    iou = pairwise_iou(np.array([[0, 0, 0, 0], [0, 0, 4, 4]]), np.array([[0, 0, 0, 0], [4, 4, 8, 8], [0, 0, 2, 4]]))
    np.testing.assert_allclose(iou, [[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]])
    # inverted boxes have no area
    assert pairwise_iou(np.array([[4, 4, 0, 0]]), np.array([[0, 0, 4, 4]]))[0, 0] == 0.0
    assert pairwise_iou(np.zeros((0, 4)), np.zeros((2, 4))).shape == (0, 2)


def test_center_distance_is_bird_eye_only():
    a = np.array([[0, 0, 0, 1, 1, 1, 0]], float)
    b = np.array([[3, 4, 10, 9, 9, 9, 3], [0, 0, -5, 1, 1, 1, 0]], float)
    np.testing.assert_allclose(pairwise_center_distance(a, b), [[5.0, 0.0]])
    assert pairwise_center_distance(np.zeros((0, 7)), b).shape == (0, 2)
    assert pairwise_center_distance(a, np.zeros((0, 7))).shape == (1, 0)


def test_defaults_2d():
    ref = d2([[0, 0, 10, 10]], [0.9], [0])
    r = match_detections(ref, ref)
    assert (r.score_atol, r.box_atol) == (0.05, 2.0)
    assert (r.num_ref, r.num_test, r.matched, r.borderline) == (1, 1, 1, 0)
    # default IoU threshold 0.5, inclusive: IoU exactly 0.5 matches, just below does not
    half = d2([[0, 0, 10, 20]], [0.9], [0])  # IoU 100/200
    assert match_detections(ref, half, box_atol=100).matched == 1
    below = d2([[0, 0, 10, 20.5]], [0.9], [0])
    assert match_detections(ref, below, box_atol=100).matched == 0
    # default box tolerance 2 px, inclusive
    assert match_detections(ref, d2([[0, 0, 10, 12]], [0.9], [0])).passed
    assert not match_detections(ref, d2([[0, 0, 10, 12.01]], [0.9], [0])).passed
    # default score tolerance 0.05
    assert match_detections(ref, d2([[0, 0, 10, 10]], [0.851], [0])).passed
    assert not match_detections(ref, d2([[0, 0, 10, 10]], [0.849], [0])).passed
    # inclusive (values exact in binary)
    half = d2([[0, 0, 10, 10]], [0.5], [0])
    assert match_detections(half, d2([[0, 0, 10, 10]], [0.75], [0]), score_atol=0.25).passed
    assert not match_detections(half, d2([[0, 0, 10, 10]], [0.75], [0]), score_atol=0.125).passed


def test_defaults_3d():
    ref = d3([[0, 0, 0]], [0.9], [0])
    r = match_detections(ref, ref)
    assert r.passed and (r.score_atol, r.box_atol) == (0.05, 0.1)
    # default centre distance 0.5 m, inclusive
    assert match_detections(ref, d3([[0.3, 0.4, 0]], [0.9], [0]), box_atol=1).matched == 1
    assert match_detections(ref, d3([[0.3, 0.41, 0]], [0.9], [0]), box_atol=1).matched == 0
    assert match_detections(ref, d3([[0.1, 0, 0]], [0.9], [0])).passed
    assert not match_detections(ref, d3([[0.11, 0, 0]], [0.9], [0])).passed
    # the box delta covers every parameter, not only the centre
    other_yaw = Detections(ref.boxes + np.array([0, 0, 0, 0, 0, 0, 0.2]), ref.scores, ref.labels, "box3d")
    r = match_detections(ref, other_yaw)
    assert r.matched == 1 and not r.passed and r.max_box_delta == pytest.approx(0.2)


def test_explicit_threshold_is_used():
    ref = d2([[0, 0, 10, 10]], [0.9], [0])
    shifted = d2([[0, 0, 10, 13]], [0.9], [0])  # IoU 100/130
    assert match_detections(ref, shifted, threshold=0.75, box_atol=5).matched == 1
    assert match_detections(ref, shifted, threshold=0.8, box_atol=5).matched == 0
    ref3 = d3([[0, 0, 0]], [0.9], [0])
    assert match_detections(ref3, d3([[1.5, 0, 0]], [0.9], [0]), threshold=2.0, box_atol=5).passed
    assert match_detections(ref3, d3([[1.5, 0, 0]], [0.9], [0]), threshold=1.0, box_atol=5).matched == 0


def test_highest_scoring_reference_box_claims_the_closest_test_box_first():
    # two reference boxes compete for one test box; the more confident one wins it
    ref = d2([[0, 0, 10, 10], [0, 0, 10, 11]], [0.5, 0.9], [0, 0])
    test = d2([[0, 0, 10, 10]], [0.5], [0])
    r = match_detections(ref, test, threshold=0.5, box_atol=5, score_atol=0.45)
    assert r.matched == 1
    assert r.unmatched_ref == [{"label": 0, "score": 0.5, "box": [0.0, 0.0, 10.0, 10.0]}]


def test_the_closest_candidate_is_paired_not_the_first_listed():
    ref = d3([[0, 0, 0]], [0.9], [0])
    test = d3([[0.4, 0, 0], [0.05, 0, 0]], [0.9, 0.9], [0, 0])
    r = match_detections(ref, test, threshold=0.5, box_atol=0.1)
    assert r.max_box_delta == pytest.approx(0.05)
    assert [b["box"][0] for b in r.unmatched_test] == [0.4]
    ref2 = d2([[0, 0, 10, 10]], [0.9], [0])
    test2 = d2([[0, 0, 10, 14], [0, 0, 10, 11]], [0.9, 0.9], [0, 0])
    r = match_detections(ref2, test2, threshold=0.5, box_atol=1.0)
    assert r.max_box_delta == 1.0 and [b["box"][3] for b in r.unmatched_test] == [14.0]


def test_among_equally_close_boxes_the_nearest_score_is_paired():
    ref = d2([[0, 0, 10, 10]], [0.6], [0])
    test = d2([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.62], [0, 0])
    r = match_detections(ref, test, score_atol=0.05)
    assert r.max_score_delta == pytest.approx(0.02)
    assert r.unmatched_test[0]["score"] == 0.9


def test_boxes_pair_only_within_their_class():
    ref = d2([[0, 0, 10, 10], [0, 0, 10, 10]], [0.9, 0.8], [1, 2])
    test = d2([[0, 0, 10, 10], [0, 0, 10, 10]], [0.8, 0.9], [2, 1])
    r = match_detections(ref, test)
    assert r.passed and r.matched == 2 and r.max_score_delta == 0.0
    swapped = d2([[0, 0, 10, 10]], [0.9], [2])
    r = match_detections(d2([[0, 0, 10, 10]], [0.9], [1]), swapped)
    assert r.matched == 0 and len(r.unmatched_ref) == 1 and len(r.unmatched_test) == 1


def test_borderline_boxes_on_either_side_are_counted_not_failed():
    # scores exact in binary so the inclusive cut (score_threshold + score_atol) is tested exactly
    ref = d2([[0, 0, 10, 10], [50, 50, 60, 60]], [0.875, 0.375], [0, 0])
    test = d2([[0, 0, 10, 10], [80, 80, 90, 90]], [0.875, 0.25], [0, 0])
    r = match_detections(ref, test, score_threshold=0.25, score_atol=0.125)
    assert r.passed and r.borderline == 2 and r.unmatched_ref == [] and r.unmatched_test == []
    r = match_detections(ref, test, score_threshold=0.25, score_atol=0.0625)
    assert not r.passed and r.borderline == 1 and r.unmatched_test == []
    assert r.unmatched_ref == [{"label": 0, "score": 0.375, "box": [50.0, 50.0, 60.0, 60.0]}]
    r = match_detections(ref, test, score_threshold=0.0, score_atol=0.125)
    assert r.borderline == 0 and len(r.unmatched_ref) == 1
    assert r.unmatched_test == [{"label": 0, "score": 0.25, "box": [80.0, 80.0, 90.0, 90.0]}]
    # the default score_threshold is 0: only boxes scoring <= score_atol are borderline
    low = d2([[0, 0, 10, 10]], [0.0625], [0])
    empty = d2(np.zeros((0, 4)), [], [])
    assert match_detections(low, empty, score_atol=0.0625).passed
    assert not match_detections(low, empty, score_atol=0.0624).passed


def test_worst_pair_is_the_pair_with_the_largest_delta():
    ref = d2([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.9, 0.8, 0.7], [0, 0, 0])
    test = d2([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.89, 0.6, 0.69], [0, 0, 0])
    r = match_detections(ref, test)
    assert r.max_score_delta == pytest.approx(0.2) and r.max_box_delta == 0.0
    assert r.worst_pair == {"ref": {"label": 0, "score": 0.8, "box": [20.0, 20.0, 30.0, 30.0]},
                            "test": {"label": 0, "score": 0.6, "box": [20.0, 20.0, 30.0, 30.0]}}
    moved = d2([[0, 0, 10, 10.5], [20, 20, 30, 30], [40, 40, 53, 50]], [0.9, 0.8, 0.7], [0, 0, 0])
    r = match_detections(ref, moved)
    assert r.max_box_delta == 3.0 and r.worst_pair["test"]["box"] == [40.0, 40.0, 53.0, 50.0]
    assert match_detections(ref, ref).worst_pair is not None


def test_box_records_round_to_millimetres():
    ref = d2([[0.12345, 1.98765, 10, 10]], [0.9], [3])
    r = match_detections(ref, d2(np.zeros((0, 4)), [], []))
    assert r.unmatched_ref == [{"label": 3, "score": 0.9, "box": [0.123, 1.988, 10.0, 10.0]}]
    assert type(r.unmatched_ref[0]["label"]) is int


def test_message_lists_lost_and_extra_boxes_up_to_the_limit():
    ref = d2([[i * 20, 0, i * 20 + 10, 10] for i in range(7)], [0.9] * 7, [0] * 7)
    test = d2([[500, 500, 510, 510]], [0.8], [1])
    r = match_detections(ref, test)
    lines = r.message(limit=5).splitlines()
    assert lines[0] == ("detections: 0/7 reference boxes matched, 7 lost, 1 extra "
                        "(max score delta 0 vs allowed 0.05, max box delta 0 vs allowed 2)")
    assert lines[1] == "  lost: label=0 score=0.9000 box=[0.0, 0.0, 10.0, 10.0]"
    assert sum(line.startswith("  lost:") for line in lines) == 5
    assert "  ... 2 more lost" in lines
    assert "  extra: label=1 score=0.8000 box=[500.0, 500.0, 510.0, 510.0]" in lines
    assert not any("more extra" in line for line in lines)
    assert not any("worst pair" in line for line in lines)
    assert len(r.message(limit=7).splitlines()) == 1 + 7 + 1
    exact = d2([[i * 20, 0, i * 20 + 10, 10] for i in range(5)], [0.9] * 5, [0] * 5)
    assert not any("more lost" in line for line in match_detections(exact, test).message(limit=5).splitlines())


def test_message_shows_the_worst_pair_only_when_a_delta_is_too_large():
    ref = d2([[0, 0, 10, 10]], [0.9], [0])
    ok = match_detections(ref, d2([[0, 0, 10, 10]], [0.88], [0]))
    assert "worst pair" not in ok.message()
    bad_score = match_detections(ref, d2([[0, 0, 10, 10]], [0.7], [0]))
    assert bad_score.message().splitlines()[-1].startswith("  worst pair: {'ref': ")
    bad_box = match_detections(ref, d2([[0, 0, 10, 13]], [0.9], [0]), threshold=0.5)
    assert "worst pair" in bad_box.message() and "max box delta 3 vs allowed 2" in bad_box.message()


def test_iou_is_computed_in_float_whatever_the_box_dtype():
    a = np.array([[0, 0, 20, 20]], np.uint8)  # areas of 400 do not fit in uint8
    b = np.array([[10, 10, 30, 30]], np.uint8)
    np.testing.assert_allclose(pairwise_iou(a, b), [[1 / 7]])
    np.testing.assert_allclose(pairwise_iou(a, b.astype(float)), [[1 / 7]])
    np.testing.assert_allclose(pairwise_iou(a.astype(float), b), [[1 / 7]])


def test_no_boxes_given_as_an_empty_list():
    b = np.zeros((2, 7))
    assert pairwise_center_distance([], b).shape == (0, 2)
    assert pairwise_center_distance(b, []).shape == (2, 0)


def test_a_class_seen_on_one_side_only_does_not_stop_the_other_classes():
    ref = d2([[0, 0, 10, 10], [50, 50, 60, 60]], [0.9, 0.9], [0, 1])
    test = d2([[50, 50, 60, 60]], [0.9], [1])
    r = match_detections(ref, test)
    assert r.matched == 1 and [b["label"] for b in r.unmatched_ref] == [0] and r.unmatched_test == []


def test_a_reference_box_without_candidate_does_not_stop_the_next_one():
    ref = d2([[100, 100, 110, 110], [0, 0, 10, 10]], [0.9, 0.8], [0, 0])
    test = d2([[0, 0, 10, 10]], [0.8], [0])
    r = match_detections(ref, test)
    assert r.matched == 1 and [b["box"][0] for b in r.unmatched_ref] == [100.0]


def test_equally_close_boxes_pair_by_nearest_score_not_lowest():
    ref = d2([[0, 0, 10, 10]], [0.85], [0])
    test = d2([[0, 0, 10, 10], [0, 0, 10, 10]], [0.3, 0.9], [0, 0])
    r = match_detections(ref, test, score_threshold=0.5)
    assert r.max_score_delta == pytest.approx(0.05) and r.worst_pair["test"]["score"] == 0.9


def test_borderline_counts_every_box_and_the_cut_is_inclusive_on_the_test_side():
    ref = d2([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]], [0.875, 0.25, 0.375], [0, 0, 0])
    test = d2([[0, 0, 10, 10], [70, 70, 80, 80], [90, 90, 99, 99]], [0.875, 0.375, 0.125], [0, 0, 0])
    r = match_detections(ref, test, score_threshold=0.25, score_atol=0.125)
    assert r.passed and r.borderline == 4


def test_worst_pair_is_the_first_pair_when_all_pairs_agree():
    ref = d2([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.8], [0, 0])
    r = match_detections(ref, ref)
    assert r.worst_pair == {"ref": {"label": 0, "score": 0.9, "box": [0.0, 0.0, 10.0, 10.0]},
                            "test": {"label": 0, "score": 0.9, "box": [0.0, 0.0, 10.0, 10.0]}}


def test_message_default_limit_and_worst_pair_at_exact_tolerance():
    ref = d2([[i * 20, 0, i * 20 + 10, 10] for i in range(6)], [0.9] * 6, [0] * 6)
    empty = d2(np.zeros((0, 4)), [], [])
    assert match_detections(ref, empty).message().splitlines()[-1] == "  ... 1 more lost"
    half = d2([[0, 0, 10, 10]], [0.5], [0])
    at_score = match_detections(half, d2([[0, 0, 10, 10]], [0.75], [0]), score_atol=0.25)
    at_box = match_detections(half, d2([[0, 0, 10, 12]], [0.5], [0]), box_atol=2.0)
    assert at_score.passed and at_box.passed
    assert "worst pair" not in at_score.message() and "worst pair" not in at_box.message()


def test_iou_hand_values_for_non_square_tiny_and_thin_boxes():
    # width 3 x height 2 against 4 x 4: overlap 2 x 2 = 4, union 6 + 16 - 4 = 18
    np.testing.assert_allclose(pairwise_iou(np.array([[1, 5, 4, 7]]), np.array([[2, 4, 6, 8]])), [[4 / 18]])
    np.testing.assert_allclose(pairwise_iou(np.array([[2, 4, 6, 8]]), np.array([[1, 5, 4, 7]])), [[4 / 18]])
    # sub-pixel boxes: union below 1
    np.testing.assert_allclose(pairwise_iou(np.array([[0, 0, 0.5, 0.5]]), np.array([[0, 0, 0.5, 0.25]])), [[0.5]])
    # a box thinner than a pixel, either way round
    np.testing.assert_allclose(pairwise_iou(np.array([[0, 0, 0.5, 4]]), np.array([[0, 0, 4, 4]])), [[2 / 16]])
    np.testing.assert_allclose(pairwise_iou(np.array([[0, 0, 4, 4]]), np.array([[0, 0, 4, 0.5]])), [[2 / 16]])
