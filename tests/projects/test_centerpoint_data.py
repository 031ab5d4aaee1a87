"""CenterPoint data: the info format and the restricted unpickler (the evaluator's AP on
paper lives in test_centerpoint_metrics.py)."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from awml_harness.io.safe_pickle import UnsafePickleError
from awml_harness.io.safe_pickle import load_pickle as safe_load
from projects.CenterPoint.data import InfoDataset


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
    ds = InfoDataset(write_info(tmp_path), tmp_path, num_point_features=4)
    s = ds[0]
    assert len(ds) == 1 and s.sample_id == "tok-a"
    assert s.points.shape == (4, 4) and s.points[1, 0] == 5  # load_dim 5, use_dim 4
    assert s.boxes.tolist() == [[1, 2, 3, 4, 5, 6, 0.5]] and s.labels.tolist() == [0]


def test_info_dataset_refuses_too_few_point_features(tmp_path: Path) -> None:
    ds = InfoDataset(write_info(tmp_path, feats=4), tmp_path, num_point_features=5)
    with pytest.raises(ValueError, match="4 point features"):
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
