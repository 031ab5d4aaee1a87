"""CenterPoint data: the info format, the restricted unpickler, and the evaluator's AP
on cases small enough to compute on paper."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from awml_harness.io.safe_pickle import UnsafePickleError
from awml_harness.io.safe_pickle import load_pickle as safe_load
from projects.CenterPoint.data import InfoDataset, PointLoading, load_points, read_points
from projects.CenterPoint.metrics import CenterDistanceEvaluator, average_precision, match_sample


# -- info files -----------------------------------------------------------------------
def write_info(tmp_path: Path, feats: int = 5) -> Path:
    points = np.arange(4 * feats, dtype=np.float32).reshape(4, feats)
    points.tofile(tmp_path / "a.bin")
    info = {
        "metainfo": {"classes": ["car"]},
        "data_list": [
            {
                "token": "tok-a",
                "lidar_points": {"lidar_path": "a.bin", "num_pts_feats": feats},
                "instances": [
                    {"bbox_3d": [1, 2, 3, 4, 5, 6, 0.5], "bbox_label_3d": 0},
                    {"bbox_3d": np.array([0, 0, 0, 1, 1, 1, 0.0]), "bbox_label_3d": -1},  # ignored
                ],
            }
        ],
    }
    path = tmp_path / "info.pkl"
    path.write_bytes(pickle.dumps(info, protocol=4))
    return path


def test_info_dataset_reads_points_and_boxes(tmp_path: Path) -> None:
    ds = InfoDataset(write_info(tmp_path), tmp_path, 4)
    s = ds[0]
    assert len(ds) == 1 and s.sample_id == "tok-a"
    assert s.points.shape == (4, 4) and s.points[1, 0] == 5  # load_dim 5, use_dim 4
    assert s.boxes.tolist() == [[1, 2, 3, 4, 5, 6, 0.5]] and s.labels.tolist() == [0]


def test_info_dataset_refuses_too_few_point_features(tmp_path: Path) -> None:
    ds = InfoDataset(write_info(tmp_path, feats=4), tmp_path, 5)
    with pytest.raises(ValueError, match="4 point features, the model reads column 4"):
        ds[0]


class Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_restricted_unpickler_refuses_code(tmp_path: Path) -> None:
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"data_list": [Evil()]}))
    with pytest.raises(UnsafePickleError, match="system"):
        safe_load(path)


def test_restricted_unpickler_refuses_other_classes(tmp_path: Path) -> None:
    path = tmp_path / "p.pkl"
    path.write_bytes(pickle.dumps({"p": Path("x")}))
    with pytest.raises(UnsafePickleError, match="pathlib"):
        safe_load(path)


def test_restricted_unpickler_allows_numpy_and_builtins(tmp_path: Path) -> None:
    data = {
        "a": np.arange(3, dtype=np.float32),
        "b": [1, 2.5, "x", None, (True,)],
        "c": np.float64(2.0),
        "d": np.int64(3),
    }
    path = tmp_path / "ok.pkl"
    path.write_bytes(pickle.dumps(data, protocol=4))
    back = safe_load(path)
    np.testing.assert_array_equal(back["a"], data["a"])
    assert back["b"] == data["b"] and back["c"] == 2.0 and back["d"] == 3


# -- AP on paper ----------------------------------------------------------------------
def box(x: float, y: float, yaw: float = 0.0) -> list[float]:
    return [x, y, 0, 4, 2, 1.5, yaw]


def ev_of(preds, gts, classes=("car",), thresholds=(0.5, 1.0, 2.0, 4.0)) -> dict:
    ev = CenterDistanceEvaluator(classes, thresholds)
    for i, ((pb, ps, pl), (gb, gl)) in enumerate(zip(preds, gts, strict=True)):
        ev.add(
            str(i),
            {
                "boxes": np.asarray(pb, np.float32).reshape(-1, 7),
                "scores": np.asarray(ps, np.float32),
                "labels": np.asarray(pl, np.int64),
            },
            {"boxes": np.asarray(gb, np.float32).reshape(-1, 7), "labels": np.asarray(gl, np.int64)},
        )
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


def test_classes_without_gt_are_left_out_and_missing_predictions_score_zero() -> None:
    r = ev_of([([box(0, 0)], [0.9], [0])], [([box(0, 0), box(9, 9)], [0, 1])], classes=("car", "bus", "bike"))
    assert set(r["per_class_AP"]) == {"car", "bus"}
    assert r["per_class_AP"]["bus"] == 0.0
    assert r["mAP"] == pytest.approx(0.5)


def test_label_mismatch_is_a_false_positive() -> None:
    r = ev_of([([box(0, 0)], [0.9], [1])], [([box(0, 0)], [0])], classes=("car", "truck"))
    assert r["per_class_AP"] == {"car": 0.0}


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


# -- multi-sweep loading (mmdet3d's LoadPointsFromMultiSweeps, test mode) ------------
def _sweep_entry(tmp_path: Path, sweeps: int = 2) -> dict:
    key = np.array([[1, 2, 3, 0.5, 7], [0.2, 0.1, 0, 0.6, 7]], np.float32)  # ring id 7 in column 4
    key.tofile(tmp_path / "key.bin")
    entry: dict = {"timestamp": 10.0, "lidar_points": {"lidar_path": "key.bin", "num_pts_feats": 5}, "lidar_sweeps": []}
    for i in range(sweeps):
        pts = np.array([[1, 0, 0, 0.1 * (i + 1), 9], [0.5, -0.5, 1, 0.2, 9]], np.float32)  # 2nd is close
        pts.tofile(tmp_path / f"s{i}.bin")
        lidar2sensor = np.eye(4)
        lidar2sensor[:3, :3] = [[0, 1, 0], [-1, 0, 0], [0, 0, 1]]  # row-vector rotation by +90 deg
        lidar2sensor[:3, 3] = [-(i + 1), 0, 0.5]  # the loader subtracts it
        entry["lidar_sweeps"].append(
            {"timestamp": 10.0 - 0.1 * (i + 1),
             "lidar_points": {"lidar_path": f"s{i}.bin", "num_pts_feats": 5, "lidar2sensor": lidar2sensor.tolist()}}
        )
    return entry


def test_sweeps_move_into_the_key_frame_with_time_lag_and_use_dim(tmp_path: Path) -> None:
    entry = _sweep_entry(tmp_path)
    loading = PointLoading(columns=(0, 1, 2, 4), load_dim=5, sweeps_num=2, remove_close=True)
    pts = load_points(entry, tmp_path, loading)
    # key frame: column 4 (ring id) becomes the time lag 0; the close key point stays
    # sweep i: (1, 0, 0) @ R = (0, 1, 0), minus (-(i+1), 0, 0.5) -> (i+1, 1, -0.5); lag 0.1 (i+1)
    expected = [[1, 2, 3, 0], [0.2, 0.1, 0, 0], [1, 1, -0.5, 0.1], [2, 1, -0.5, 0.2]]
    np.testing.assert_allclose(pts, expected, atol=1e-6)
    assert pts.dtype == np.float32


def test_sweeps_num_limits_and_remove_close_off(tmp_path: Path) -> None:
    entry = _sweep_entry(tmp_path, sweeps=3)
    pts = load_points(entry, tmp_path, PointLoading((0, 1, 2, 3, 4), 5, sweeps_num=1, remove_close=False))
    assert len(pts) == 4  # key (2) + the nearest sweep only, its close point kept
    # (0.5, -0.5, 1) @ R = (0.5, 0.5, 1), minus (-1, 0, 0.5); intensity 0.2 kept, lag 0.1
    np.testing.assert_allclose(pts[3], [1.5, 0.5, 0.5, 0.2, 0.1], atol=1e-6)


def test_pad_empty_sweeps_repeats_the_key_frame(tmp_path: Path) -> None:
    entry = _sweep_entry(tmp_path)
    del entry["lidar_sweeps"]
    pts = load_points(entry, tmp_path, PointLoading((0, 4), 5, sweeps_num=2, remove_close=True, pad_empty_sweeps=True))
    # the key frame, then twice its points outside the 1 m square (lag 0)
    np.testing.assert_allclose(pts, [[1, 0], [0.2, 0], [1, 0], [1, 0]])
    pts = load_points(entry, tmp_path, PointLoading((0, 4), 5, sweeps_num=2))
    assert len(pts) == 2


def test_read_points_names_the_file_of_a_broken_size(tmp_path: Path) -> None:
    np.arange(11, dtype=np.float32).tofile(tmp_path / "bad.bin")
    with pytest.raises(ValueError, match=r"bad\.bin: 44 bytes is not a multiple of one point \(5 float32"):
        read_points(tmp_path / "bad.bin", 5)
    assert read_points(tmp_path / "bad.bin", 11).shape == (1, 11)
    with pytest.raises(FileNotFoundError, match="missing.bin"):
        read_points(tmp_path / "missing.bin", 4)


def test_sweep_without_transform_is_refused(tmp_path: Path) -> None:
    entry = _sweep_entry(tmp_path)
    del entry["lidar_sweeps"][0]["lidar_points"]["lidar2sensor"]
    with pytest.raises(ValueError, match=r"lidar_sweeps\[0\] needs"):
        load_points(entry, tmp_path, PointLoading((0, 1, 2, 4), 5, sweeps_num=2))
