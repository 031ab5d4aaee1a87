"""CenterPoint 3D metrics on cases small enough to compute on paper: metric="nuscenes"
(the nuScenes devkit's rules) and metric="t4" (AWML's T4MetricV2 / perception_eval)."""

from __future__ import annotations

import numpy as np
import pytest

from projects.CenterPoint.metrics import CenterDistanceEvaluator, average_precision, match_sample
from projects.CenterPoint.t4_metric import heading_weight, t4_ap, t4_heading


# -- nuscenes: AP on paper ---------------------------------------------------------------
def box(x: float, y: float, yaw: float = 0.0, z: float = 0.0, size: tuple = (4, 2, 1.5)) -> list[float]:
    return [x, y, z, *size, yaw]


def ev_of(preds, gts, classes=("car",), thresholds=(0.5, 1.0, 2.0, 4.0), velocities=None, **kw) -> dict:
    """preds: per sample (boxes, scores, labels); gts: per sample (boxes, labels);
    velocities: per sample (pred (N, 2), gt (M, 2)) or None."""
    ev = CenterDistanceEvaluator(classes, thresholds, **kw)
    for i, ((pb, ps, pl), (gb, gl)) in enumerate(zip(preds, gts, strict=True)):
        pred = {
            "boxes": np.asarray(pb, np.float64).reshape(-1, 7),
            "scores": np.asarray(ps, np.float64),
            "labels": np.asarray(pl, np.int64),
        }
        target = {"boxes": np.asarray(gb, np.float64).reshape(-1, 7), "labels": np.asarray(gl, np.int64)}
        if velocities is not None:
            pred["velocities"] = np.asarray(velocities[i][0], np.float64).reshape(-1, 2)
            target["velocities"] = np.asarray(velocities[i][1], np.float64).reshape(-1, 2)
        ev.add(str(i), pred, target)
    return ev.compute()


def test_perfect_detection_scores_one() -> None:
    r = ev_of([([box(0, 0)], [0.9], [0])], [([box(0, 0)], [0])])
    assert r["mAP"] == pytest.approx(1.0) and r["mAPH"] == pytest.approx(1.0)


def test_one_tp_then_one_fp_with_three_gt() -> None:
    # recall 1/3 at precision 1, then 1/3 at 1/2: grid points 0.11..0.33 (23 of 90) carry
    # precision 1 -> AP = 23 * (1 - 0.1) / 90 / (1 - 0.1) = 23 / 90
    gts = [([box(0, 0), box(10, 0), box(20, 0)], [0, 0, 0])]
    preds = [([box(0.1, 0), box(-10, -10)], [0.9, 0.8], [0, 0])]
    assert ev_of(preds, gts)["mAP"] == pytest.approx(23 / 90)


def test_distance_thresholds_are_separate() -> None:
    # 0.7 m off: a miss at 0.5 m (AP 0, the FP also costs nothing on paper), a hit at 1/2/4 m
    r = ev_of([([box(0.7, 0)], [0.9], [0])], [([box(0, 0)], [0])])
    assert r["AP_by_distance"] == pytest.approx({"0.5m": 0.0, "1m": 1.0, "2m": 1.0, "4m": 1.0})
    assert r["per_class_AP"]["car"] == pytest.approx(0.75)
    assert r["AP_by_class_and_distance"]["car@0.5m"] == 0.0


def test_heading_weight_of_a_box_turned_by_60_degrees() -> None:
    # weight 1 - (pi/3)/pi = 2/3 in precision and recall: grid 0.11..0.66 (56 of 90 points)
    # carry 2/3 - 0.1 -> APH = 56 * (2/3 - 0.1) / 90 / 0.9
    r = ev_of([([box(0, 0, np.pi / 3)], [0.9], [0])], [([box(0, 0)], [0])])
    assert r["mAP"] == pytest.approx(1.0)
    assert r["mAPH"] == pytest.approx(56 * (2 / 3 - 0.1) / 90 / 0.9)


def test_heading_wraps_around() -> None:
    # 0.02 rad apart across +-pi: weight w = 1 - 0.02/pi; recall w < 1 reaches grid 0.99
    # -> APH = 89 * (w - 0.1) / 90 / 0.9
    r = ev_of([([box(0, 0, np.pi - 0.01)], [0.9], [0])], [([box(0, 0, -np.pi + 0.01)], [0])])
    w = 1 - 0.02 / np.pi
    assert r["mAPH"] == pytest.approx(89 * (w - 0.1) / 90 / 0.9, abs=1e-5)


def test_classes_without_gt_score_zero_and_stay_in_the_mean() -> None:
    # the devkit: accumulate returns no_predictions for npos == 0, calc_ap of it is 0, and
    # mean_ap averages over every class
    r = ev_of([([box(0, 0)], [0.9], [0])], [([box(0, 0), box(9, 9)], [0, 1])], classes=("car", "bus", "bike"))
    assert r["per_class_AP"] == pytest.approx({"car": 1.0, "bus": 0.0, "bike": 0.0})
    assert r["mAP"] == pytest.approx(1 / 3)
    assert r["definition"] == "nuscenes"


def test_label_mismatch_is_a_false_positive() -> None:
    r = ev_of([([box(0, 0)], [0.9], [1])], [([box(0, 0)], [0])], classes=("car", "truck"))
    assert r["per_class_AP"] == {"car": 0.0, "truck": 0.0}


def test_greedy_matching_takes_the_closest_free_gt_in_score_order() -> None:
    gt = np.array([box(0, 0), box(1.5, 0)])
    pred = np.array([box(0.8, 0), box(0.1, 0)])
    m = match_sample(pred, np.array([0.9, 0.5]), gt, np.array([1.0, 2.0]))
    # pred 0 (score .9) is 0.8 m from GT 0 and 0.7 m from GT 1: it takes the closer GT 1;
    # pred 1 then takes GT 0 (0.1 m) -- at both thresholds
    assert m[0].tolist() == [1, 0]
    assert m[1].tolist() == [1, 0]


def test_ap_is_zero_below_min_precision() -> None:
    scores = np.linspace(1, 0, 20)
    is_tp = np.zeros(20, bool)
    is_tp[-1] = True  # precision 1/20 at recall 1
    assert average_precision(scores, np.ones(20), is_tp, 1) == 0.0


def test_sample_order_does_not_change_ap() -> None:
    preds = [([box(0, 0)], [0.3], [0]), ([box(5, 5), box(30, 30)], [0.9, 0.6], [0, 0])]
    gts = [([box(0, 0)], [0]), ([box(5, 5)], [0])]
    a = ev_of(preds, gts)
    b = ev_of(preds[::-1], gts[::-1])
    assert a["mAP"] == pytest.approx(b["mAP"])


def test_evaluator_equals_the_python_loop_reference() -> None:
    # benchmarks/map3d_reference.py: per-class, per-threshold Python loops; the values must be
    # identical, not close. The second set quantizes positions and scores so that equal
    # distances and equal scores (the tie-breaking rules) occur often.
    from benchmarks import map3d_reference
    from benchmarks.gen import frames_3d

    names = ["car", "truck", "bus", "bicycle", "pedestrian"]
    frames = frames_3d(120, seed=3)
    tied = []
    for pred, target in frames_3d(120, seed=4):
        pred, target = dict(pred), dict(target)
        pred["boxes"] = pred["boxes"].copy()
        pred["boxes"][:, :2] = np.round(pred["boxes"][:, :2] * 2) / 2
        pred["scores"] = np.round(pred["scores"] * 5) / 5
        target["boxes"] = target["boxes"].copy()
        target["boxes"][:, :2] = np.round(target["boxes"][:, :2] * 2) / 2
        tied.append((pred, target))
    for data in (
        frames,
        tied,
        frames[:1],
        [({"boxes": np.zeros((0, 7)), "scores": np.zeros(0), "labels": np.zeros(0, int)}, frames[0][1])],
    ):
        ev = CenterDistanceEvaluator(names)
        for i, (pred, target) in enumerate(data):
            ev.add(str(i), pred, target)
        got = ev.compute()
        ref = map3d_reference.evaluate(data, names)
        for key, value in ref.items():
            assert got[key] == value, key


def test_equal_scores_take_the_prediction_listed_last_first() -> None:
    # the devkit sorts (score, index) ascending and reverses: of two equal scores the later
    # one goes first. Here the later one is the TP: precision 1 at recall 1, then 1/2 at
    # recall 1 (np.interp takes the last of equal recalls at the grid's end) -> 89 points at
    # 1 and one at 1/2; listed the other way round the FP goes first: precision 0 at
    # recall 0, then 1/2 at recall 1 -> interpolated precision r / 2 (no envelope)
    gt = [([box(0, 0)], [0])]
    fp_then_tp = [([box(30, 30), box(0, 0)], [0.5, 0.5], [0, 0])]
    tp_then_fp = [([box(0, 0), box(30, 30)], [0.5, 0.5], [0, 0])]
    tp_first = (89 * 0.9 + 0.4) / 90 / 0.9
    assert ev_of(fp_then_tp, gt)["mAP"] == pytest.approx(tp_first)
    grid = np.linspace(0, 1, 101)[11:]
    assert ev_of(tp_then_fp, gt)["mAP"] == pytest.approx(np.mean(np.clip(grid / 2 - 0.1, 0, None)) / 0.9)
    # across samples likewise: the later sample's prediction first
    gts = [([], []), ([box(0, 0)], [0])]
    assert ev_of([([box(9, 9)], [0.5], [0]), ([box(0, 0)], [0.5], [0])], gts)["mAP"] == pytest.approx(tp_first)


def test_a_nan_distance_matches_nothing_but_does_not_block_other_gt() -> None:
    # the devkit's `d < min_dist` is false for NaN: that GT is skipped, the next one is taken
    gt = np.array([box(0, 0), box(0.2, 0)])
    gt[0][0] = np.nan
    m = match_sample(np.array([box(0.1, 0)]), np.array([0.9]), gt, np.array([1.0]))
    assert m.tolist() == [[1]]


def test_class_range_filters_predictions_and_gt_by_ego_distance() -> None:
    # the devkit's filter_eval_boxes keeps boxes with hypot(x, y) < range of their class
    preds = [([box(0, 0), box(40, 0)], [0.9, 0.95], [0, 0])]
    gts = [([box(0, 0), box(45, 0)], [0, 0])]
    assert ev_of(preds, gts, class_range={"car": 30.0})["mAP"] == pytest.approx(1.0)
    # without the range: the 40 m prediction is an FP at the top, the 45 m GT is missed
    assert ev_of(preds, gts)["mAP"] < 0.5
    with pytest.raises(ValueError, match="class_range"):
        CenterDistanceEvaluator(("car", "bus"), class_range={"car": 50.0})


def test_tp_errors_and_nds_of_one_match() -> None:
    # one TP 0.3 m off, half the volume ((2, 2, 1.5) vs (4, 2, 1.5): IoU 6 / 12), turned by
    # 0.5 rad, 1 m/s off: every recall point reads the single match's error; no attributes
    # exist, so the devkit's attr_err is NaN per match -> 1 (mAAE 1, attribute score 0)
    r = ev_of(
        [([box(0.3, 0, 0.5, size=(2, 2, 1.5))], [0.9], [0])], [([box(0, 0)], [0])],
        velocities=[([[1.0, 0.0]], [[0.0, 0.0]])],
    )
    assert r["mATE"] == pytest.approx(0.3)
    assert r["mASE"] == pytest.approx(0.5)
    assert r["mAOE"] == pytest.approx(0.5)
    assert r["mAVE"] == pytest.approx(1.0)
    assert r["mAAE"] == 1.0
    # mAP: a hit at 0.5/1/2/4 m -> 1; NDS = (5 * 1 + 0.7 + 0.5 + 0.5 + 0 + 0) / 10
    assert r["NDS"] == pytest.approx((5 + 0.7 + 0.5 + 0.5) / 10)


def test_without_velocities_there_is_no_mave_and_no_nds() -> None:
    r = ev_of([([box(0.3, 0)], [0.9], [0])], [([box(0, 0)], [0])])
    assert r["mATE"] == pytest.approx(0.3) and r["mASE"] == pytest.approx(0.0)
    assert "mAVE" not in r and "NDS" not in r


def test_tp_errors_of_classes_without_matches_are_one_and_cone_heading_is_ignored() -> None:
    r = ev_of(
        [([box(0, 0, 1.0), box(9, 9)], [0.9, 0.8], [0, 1])], [([box(0, 0), box(20, 20)], [0, 1])],
        classes=("traffic_cone", "car"), velocities=[([[0, 0], [0, 0]], [[0, 0], [0, 0]])],
    )
    assert r["per_class_TP_errors"]["ATE"] == {"traffic_cone": 0.0, "car": 1.0}
    # cones: no orientation, speed or attribute error (NaN, left out of the nan-mean)
    assert np.isnan(r["per_class_TP_errors"]["AOE"]["traffic_cone"])
    assert r["mAOE"] == 1.0 and r["mATE"] == pytest.approx(0.5)


# -- t4: perception_eval's rules on paper -------------------------------------------------
def t4_of(preds, gts, classes=("car",), **kw) -> dict:
    return ev_of(preds, gts, classes, metric="t4", **kw)


def test_t4_ap_uses_the_precision_envelope() -> None:
    # FP 0.9, TP 0.8, TP 0.7 with 2 GT: precision 0, 1/2, 2/3 at recall 0, 1/2, 1; the
    # envelope is 2/3 everywhere -> AP = (2/3 - 0.1) / 0.9 at every threshold
    preds = [([box(30, 30), box(0, 0), box(10, 0)], [0.9, 0.8, 0.7], [0, 0, 0])]
    gts = [([box(0, 0), box(10, 0)], [0, 0])]
    r = t4_of(preds, gts)
    assert r["definition"] == "t4"
    assert r["mAP"] == pytest.approx((2 / 3 - 0.1) / 0.9)
    # nuscenes: no envelope, precision rises linearly from 0 -> lower
    assert ev_of(preds, gts)["mAP"] < r["mAP"] - 0.05


def test_t4_aph_divides_by_weighted_tp_plus_fp() -> None:
    # one TP turned by 60 degrees (w = 2/3): precision (2/3) / (2/3 + 0) = 1 up to recall
    # 2/3 -> grid 0.11 .. 0.66 (56 points) at 1 - 0.1 -> APH = 56 / 90
    r = t4_of([([box(0, 0, np.pi / 3)], [0.9], [0])], [([box(0, 0)], [0])])
    assert r["mAP"] == pytest.approx(1.0)
    assert r["mAPH"] == pytest.approx(56 / 90)
    assert t4_ap(np.array([0.9]), np.array([2 / 3]), np.array([True]), 1) == pytest.approx(56 / 90)


def test_t4_heading_is_the_quaternion_angle_so_mirrored_yaws_are_equal() -> None:
    # perception_eval reads Quaternion.radians (>= 0): yaw -1 and +1 have the same heading
    assert t4_heading(np.array([1.0]))[0] == pytest.approx(t4_heading(np.array([-1.0]))[0])
    assert heading_weight(np.array([-1.0]), np.array([1.0]))[0] == 1.0
    assert heading_weight(np.array([np.pi / 2]), np.array([0.0]))[0] == pytest.approx(0.5)
    r = t4_of([([box(0, 0, -1.0)], [0.9], [0])], [([box(0, 0, 1.0)], [0])])
    assert r["mAPH"] == pytest.approx(1.0)


def test_t4_ranges_are_bev_distance_half_open_and_a_class_without_anything_is_left_out() -> None:
    # GT and prediction at exactly 50 m: in [50, 90), not in [0, 50)
    preds = [([box(50, 0), box(3, 4)], [0.9, 0.8], [0, 1])]
    gts = [([box(50, 0)], [0])]
    r = t4_of(preds, gts, classes=("car", "truck", "bus"))
    near, mid, far = (r["by_range"][k] for k in ("bev_center_0.0-50.0", "bev_center_50.0-90.0", "bev_center_90.0-121.0"))
    # [0, 50): no car GT or prediction -> car NaN (left out); truck: a prediction, no GT -> 0
    assert np.isnan(near["per_class_AP"]["car"]) and near["per_class_AP"]["truck"] == 0.0
    assert near["mAP"] == 0.0
    # [50, 90): car 1, truck and bus empty -> left out -> mAP 1
    assert mid["per_class_AP"]["car"] == pytest.approx(1.0) and mid["mAP"] == pytest.approx(1.0)
    assert np.isnan(far["mAP"])
    # the headline is the last range (T4MetricV2's main evaluator), [0, 121): car 1, truck 0,
    # bus left out
    assert r["headline_range"] == "bev_center_0.0-121.0"
    assert r["mAP"] == pytest.approx(0.5)


def test_t4_center_distance_3d_counts_height() -> None:
    preds = [([box(0, 0, z=1.0)], [0.9], [0])]
    gts = [([box(0, 0)], [0])]
    assert t4_of(preds, gts)["mAP"] == pytest.approx(1.0)
    # 1 m apart in z: a miss at 0.5 m, a hit at 2 and 4 m; exactly 1.0 is not < 1.0
    r = t4_of(preds, gts, matching="center_distance")
    assert r["by_range"]["bev_center_0.0-121.0"]["AP_by_class_and_distance"] == pytest.approx({
        "car@0.5m": 0.0, "car@1m": 0.0, "car@2m": 1.0, "car@4m": 1.0})
    with pytest.raises(ValueError, match="matching"):
        t4_of(preds, gts, matching="iou_bev")


def test_t4_equal_scores_put_the_frame_false_positives_first() -> None:
    # per frame perception_eval lists the matches, then the FPs; the AP sorts by reversing
    # np.argsort, so of equal scores the FP comes first: precision 0 then 1/2 at recall 1
    # -> envelope 1/2 -> AP (0.5 - 0.1) / 0.9, whichever order the predictions came in
    gt = [([box(0, 0)], [0])]
    for preds in ([([box(0, 0), box(30, 30)], [0.5, 0.5], [0, 0])], [([box(30, 30), box(0, 0)], [0.5, 0.5], [0, 0])]):
        assert t4_of(preds, gt)["mAP"] == pytest.approx(0.4 / 0.9)


def test_t4_boxes_with_nan_are_dropped_not_counted() -> None:
    preds = [([box(np.nan, 0), box(0, 0)], [0.95, 0.9], [0, 0])]
    assert t4_of(preds, [([box(0, 0)], [0])])["mAP"] == pytest.approx(1.0)


def test_t4_gt_but_no_predictions_scores_zero() -> None:
    r = t4_of([([], [], [])], [([box(0, 0)], [0])])
    assert r["mAP"] == 0.0 and r["per_class_AP"] == {"car": 0.0}
