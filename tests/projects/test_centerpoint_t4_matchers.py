"""metric="t4" with perception_eval's IoU and plane-distance matchers, on hand-computed boxes.

Boxes are [x, y, z, dx, dy, dz, yaw] as AWML hands them to perception_eval, whose footprint
puts dy along the heading and dx across (projects/CenterPoint/t4_matching.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from projects.CenterPoint.metrics import CenterDistanceEvaluator
from projects.CenterPoint.settings import CenterPointSettings
from projects.CenterPoint.t4_matching import footprints, intersection_area, iou_3d, iou_bev, plane_distance

HEAD = "bev_center_0.0-121.0"


def bx(x: float, y: float, z: float = 0.0, dx: float = 2.0, dy: float = 2.0, dz: float = 2.0,
       yaw: float = 0.0) -> list[float]:
    return [x, y, z, dx, dy, dz, yaw]


def pair(fn, a: list[float], b: list[float]) -> float:
    return float(fn(np.array([a], np.float64), np.array([b], np.float64))[0])


def t4(preds, gts, matching: str, thresholds, classes=("car",)) -> dict:
    """preds: per frame (boxes, scores, labels); gts: per frame (boxes, labels)."""
    ev = CenterDistanceEvaluator(classes, thresholds, metric="t4", matching=matching)
    for i, ((pb, ps, pl), (gb, gl)) in enumerate(zip(preds, gts, strict=True)):
        ev.add(str(i), {"boxes": np.asarray(pb, np.float64).reshape(-1, 7), "scores": np.asarray(ps, np.float64),
                        "labels": np.asarray(pl, np.int64)},
               {"boxes": np.asarray(gb, np.float64).reshape(-1, 7), "labels": np.asarray(gl, np.int64)})
    return ev.compute()


# -- the pair values ---------------------------------------------------------------------
def test_footprint_puts_dy_along_the_heading_in_perception_evals_corner_order() -> None:
    got = footprints(np.array([bx(10, 0, dx=4, dy=2)]))[0]
    assert got == pytest.approx(np.array([[11, 2], [9, 2], [9, -2], [11, -2]]))
    turned = footprints(np.array([bx(0, 0, dx=4, dy=2, yaw=np.pi / 2)]))[0]
    assert turned == pytest.approx(np.array([[-2, 1], [-2, -1], [2, -1], [2, 1]]), abs=1e-12)


def test_iou_bev_of_axis_aligned_and_45_degree_squares() -> None:
    # 2 x 2 squares shifted by 1 m: overlap 1 x 2 = 2, union 4 + 4 - 2 = 6
    assert pair(iou_bev, bx(0, 0), bx(1, 0)) == pytest.approx(1 / 3, abs=1e-12)
    assert pair(iou_bev, bx(0, 0), bx(3, 0)) == 0.0
    assert pair(iou_bev, bx(0, 0), bx(0, 0)) == 1.0
    # the same square turned by 45 deg: an octagon, the square minus 4 corners with legs 2 - sqrt(2)
    inter = 4 - 2 * (2 - math.sqrt(2)) ** 2
    assert pair(iou_bev, bx(0, 0), bx(0, 0, yaw=np.pi / 4)) == pytest.approx(inter / (8 - inter), abs=1e-12)
    # a 1 x 1 square inside: IoU = 1 / 4
    assert pair(iou_bev, bx(0, 0), bx(0.2, -0.1, dx=1, dy=1, yaw=0.7)) == pytest.approx(0.25, abs=1e-12)


def test_iou_bev_reads_dx_across_the_heading_as_awml_hands_it_over() -> None:
    # dx=4, dy=2, 1 m apart along x: the footprints are 2 m along x and 4 m across, so the
    # overlap is 1 x 4 = 4 of a union 12 (a length-along-x reading would give 6 / 10)
    assert pair(iou_bev, bx(0, 0, dx=4, dy=2), bx(1, 0, dx=4, dy=2)) == pytest.approx(1 / 3, abs=1e-12)


def test_iou_3d_takes_z_as_the_centre_of_the_height() -> None:
    # same footprint (4 m^2), 2 m tall, 1 m apart in z: overlap 1 -> 4 / (8 + 8 - 4)
    assert pair(iou_3d, bx(0, 0, z=0), bx(0, 0, z=1)) == pytest.approx(1 / 3, abs=1e-12)
    # z=2, h=2 vs z=0, h=4: [1, 3] and [-2, 2] overlap 1 -> 4 / (8 + 16 - 4) = 0.2
    # (bottom faces at z would give [2, 4] and [0, 4], 0.5)
    assert pair(iou_3d, bx(0, 0, z=2, dz=2), bx(0, 0, z=0, dz=4)) == pytest.approx(0.2, abs=1e-12)
    assert pair(iou_3d, bx(0, 0, z=0), bx(0, 0, z=2.5)) == 0.0
    # footprint and height overlap multiply: half the footprint, half the height
    assert pair(iou_3d, bx(0, 0), bx(1, 0, z=1)) == pytest.approx(2 / 14, abs=1e-12)


def test_plane_distance_compares_the_edges_nearest_to_the_ego() -> None:
    # GT near corners (9, 1), (9, -1); the prediction's, shifted by (0.6, 0.8): 1 m each
    assert pair(plane_distance, bx(10.6, 0.8), bx(10, 0)) == 1.0  # rounded to 10 decimals: exactly 1
    # longer prediction reaching 2 m further back: near edge identical, centre 1 m off
    assert pair(plane_distance, bx(11, 0, dy=4), bx(10, 0)) == 0.0
    # reversed heading: the prediction's corner list is turned by two, so the same box scores 0
    assert pair(plane_distance, bx(10, 0, yaw=np.pi), bx(10, 0)) == pytest.approx(0.0, abs=1e-9)
    # at 90 deg (not more than pi / 2) nothing is turned: a square's corners move by one
    # place, so each near GT corner is paired with an adjacent one, 2 m away
    assert pair(plane_distance, bx(10, 0, yaw=np.pi / 2), bx(10, 0)) == pytest.approx(2.0, abs=1e-9)


def test_intersection_area_of_a_rotated_rectangle_pair_by_inclusion() -> None:
    rng = np.random.default_rng(0)
    a = np.column_stack([rng.uniform(-1, 1, (200, 3)), rng.uniform(0.5, 4, (200, 3)), rng.uniform(-4, 4, 200)])
    fa = footprints(a)
    # a box always covers itself; a box far away never touches
    assert intersection_area(fa, fa) == pytest.approx(a[:, 3] * a[:, 4], rel=1e-12)
    assert (intersection_area(fa, fa + 20.0) == 0.0).all()
    # symmetric
    b = a[::-1].copy()
    assert intersection_area(fa, footprints(b)) == pytest.approx(intersection_area(footprints(b), fa), abs=1e-12)


# -- matching rules --------------------------------------------------------------------
def test_iou_admits_strictly_above_the_threshold() -> None:
    preds, gts = [([bx(0, 0)], [0.9], [0])], [([bx(0, 0)], [0])]
    r = t4(preds, gts, "iou_2d", (0.5, 1.0))["by_range"][HEAD]["AP_by_class_and_distance"]
    assert r == pytest.approx({"car@0.5": 1.0, "car@1": 0.0})  # IoU 1 is not > 1
    preds = [([bx(1, 0)], [0.9], [0])]
    r = t4(preds, gts, "iou_2d", (0.3, 0.34))["by_range"][HEAD]["AP_by_class_and_distance"]
    assert r == pytest.approx({"car@0.3": 1.0, "car@0.34": 0.0})
    r = t4([([bx(1, 0, z=1)], [0.9], [0])], gts, "iou_3d", (0.1, 0.2))["by_range"][HEAD]["AP_by_class_and_distance"]
    assert r == pytest.approx({"car@0.1": 1.0, "car@0.2": 0.0})  # 2 / 14 = 0.143


def test_plane_distance_admits_strictly_below_the_threshold() -> None:
    r = t4([([bx(10.6, 0.8)], [0.9], [0])], [([bx(10, 0)], [0])], "plane_distance", (1.0, 2.0))
    assert r["by_range"][HEAD]["AP_by_class_and_distance"] == pytest.approx({"car@1m": 0.0, "car@2m": 1.0})
    # the near edge matters, not the centre: a hit at 0.5 m where the BEV centre is 1 m off
    preds, gts = [([bx(11, 0, dy=4)], [0.9], [0])], [([bx(10, 0)], [0])]
    assert t4(preds, gts, "plane_distance", (0.5,))["mAP"] == pytest.approx(1.0)
    assert t4(preds, gts, "center_distance_bev", (0.5,))["mAP"] == 0.0


def test_iou_takes_the_largest_overlap_not_the_nearest_centre() -> None:
    # GT 1: a small square on the prediction's centre (IoU 1/16), heading 90 deg off;
    # GT 2: 0.5 m away, IoU 3 / 5, same heading. IoU picks GT 2 (heading weight 1, so
    # mAPH == mAP); the centre distance picks GT 1 (heading weight 1/2, so mAPH < mAP)
    preds = [([bx(0, 0)], [0.9], [0])]
    gts = [([bx(0, 0, dx=0.5, dy=0.5, yaw=np.pi / 2), bx(0.5, 0)], [0, 0])]
    by_iou = t4(preds, gts, "iou_2d", (0.05,))
    assert by_iou["mAP"] > 0 and by_iou["mAPH"] == pytest.approx(by_iou["mAP"])
    by_centre = t4(preds, gts, "center_distance_bev", (1.0,))
    assert by_centre["mAP"] == pytest.approx(by_iou["mAP"]) and by_centre["mAPH"] < by_centre["mAP"]


def test_iou_matching_is_greedy_in_score_order_and_ties_go_to_the_first_gt() -> None:
    # two GT equally overlapped (IoU 1/3 each) by the first prediction: it takes the
    # first listed; the second prediction, on GT 2 only, still finds it free
    gts = [([bx(-1, 0), bx(1, 0)], [0, 0])]
    preds = [([bx(0, 0), bx(1.2, 0)], [0.9, 0.8], [0, 0])]
    assert t4(preds, gts, "iou_2d", (0.3,))["mAP"] == pytest.approx(1.0)
    # had the first prediction taken GT 2, the second would be left with IoU 0 on GT 1
    gts_swapped = [([bx(1, 0), bx(-1, 0)], [0, 0])]
    assert t4(preds, gts_swapped, "iou_2d", (0.3,))["mAP"] < 1.0


def test_iou_thresholds_outside_0_1_are_refused() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        t4([([bx(0, 0)], [0.9], [0])], [([bx(0, 0)], [0])], "iou_3d", (0.5, 2.0))


def test_settings_accept_the_five_matchers_and_check_iou_thresholds() -> None:
    for name in ("center_distance_bev", "center_distance", "plane_distance"):
        CenterPointSettings(metric="t4", metric_matching=name).validate("model_cfg")
    CenterPointSettings(metric="t4", metric_matching="iou_3d", distance_thresholds=(0.0, 0.5)).validate("model_cfg")
    with pytest.raises(ConfigError, match="distance_thresholds"):  # the default 0.5 .. 4 m are no IoU
        CenterPointSettings(metric="t4", metric_matching="iou_2d").validate("model_cfg")
    with pytest.raises(ConfigError, match="metric_matching"):
        CenterPointSettings(metric="t4", metric_matching="iou").validate("model_cfg")
