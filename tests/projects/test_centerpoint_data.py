"""CenterPoint data: the info format and the restricted unpickler (the evaluator's AP on
paper lives in test_centerpoint_metrics.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from awml_harness.io import DataError
from awml_harness.io.safe_pickle import UnsafePickleError
from awml_harness.io.safe_pickle import load_pickle as safe_load
from projects.CenterPoint.data import InfoDataset, PointLoading, load_points, read_points


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
    with pytest.raises(ValueError, match=r"bad\.bin: 44 bytes is not a whole number of points of 5 float32"):
        read_points(tmp_path / "bad.bin", 5)
    assert read_points(tmp_path / "bad.bin", 11).shape == (1, 11)
    with pytest.raises(DataError, match="missing.bin: cannot read point file"):
        read_points(tmp_path / "missing.bin", 4)


def test_sweep_without_transform_is_refused(tmp_path: Path) -> None:
    entry = _sweep_entry(tmp_path)
    del entry["lidar_sweeps"][0]["lidar_points"]["lidar2sensor"]
    with pytest.raises(ValueError, match=r"lidar_sweeps\[0\] needs"):
        load_points(entry, tmp_path, PointLoading((0, 1, 2, 4), 5, sweeps_num=2))
