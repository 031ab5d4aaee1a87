"""CalibrationStatusClassification data: projection, miscalibration, info files, images."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from awml_harness.io.safe_pickle import UnsafePickleError
from awml_harness.io.safe_pickle import loads as safe_loads
from projects.CalibrationStatusClassification import data as D

ROOT = Path(__file__).resolve().parents[2]
EVAL_INFO = ROOT / "fixtures/calibration/data/calibration_infos_eval.pkl"

# camera looking along LiDAR +x: cam x = -lidar y, cam y = -lidar z, cam z = lidar x
LIDAR2CAM = np.array([[0.0, -1, 0, 0], [0, 0, -1, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
K = np.array([[100.0, 0, 50], [0, 100, 40], [0, 0, 1]])


def _points(*rows: tuple[float, float, float, float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


# -- projection ------------------------------------------------------------------------

def test_point_lands_on_expected_pixel_with_scaled_depth() -> None:
    # x=10 m ahead, 1 m left, 0.5 m up -> u = 50 - 100*1/10 = 40, v = 40 - 100*0.5/10 = 35
    pts = _points((10.0, 1.0, 0.5, 0.0))
    depth, inten = D.project_lidar(pts, np.array([0.5]), K, LIDAR2CAM, 80, 100, depth_scale=80.0)
    assert np.argwhere(depth).tolist() == [[35, 40]]
    assert depth[35, 40] == int(255 * 10 / 80)
    assert inten[35, 40] == int(255 * 0.5)


def test_nearest_point_wins_whatever_the_order() -> None:
    near, far = (5.0, 0.0, 0.0, 0.0), (20.0, 0.0, 0.0, 0.0)  # both hit pixel (40, 50)
    for pts, inten in ((_points(near, far), [1.0, 0.2]), (_points(far, near), [0.2, 1.0])):
        depth, image = D.project_lidar(pts, np.array(inten), K, LIDAR2CAM, 80, 100)
        assert depth[40, 50] == int(255 * 5 / 80)
        assert image[40, 50] == 255
        assert np.count_nonzero(depth) == 1


def test_points_behind_or_outside_are_dropped_and_far_depth_saturates() -> None:
    pts = _points((-5.0, 0, 0, 0), (1.0, 5.0, 0, 0), (200.0, 0, 0, 0))
    depth, _ = D.project_lidar(pts, np.ones(3), K, LIDAR2CAM, 80, 100, depth_scale=80.0)
    assert np.argwhere(depth).tolist() == [[40, 50]]
    assert depth[40, 50] == 255


def test_radius_paints_a_clipped_patch() -> None:
    pts = _points((10.0, 5.0, 4.0, 0))  # u = 0, v = 0: the patch is clipped at the corner
    depth, _ = D.project_lidar(pts, np.ones(1), K, LIDAR2CAM, 80, 100, radius=2)
    assert np.argwhere(depth).min(axis=0).tolist() == [0, 0]
    assert np.count_nonzero(depth) == 9


def test_intensity_is_min_max_normalised_over_the_cloud() -> None:
    np.testing.assert_allclose(D.normalize_intensity(np.array([10.0, 20.0, 30.0])), [0.0, 0.5, 1.0])
    assert not D.normalize_intensity(np.array([3.0, 3.0])).any()


def test_build_input_is_five_channels_over_255() -> None:
    image = np.full((80, 100, 3), 255, np.uint8)
    image[..., 0] = 51
    x = D.build_input(image, _points((10.0, 0, 0, 0), (20.0, 1.0, 0, 255.0)), K, LIDAR2CAM)
    assert x.shape == (5, 80, 100) and x.dtype == np.float32
    assert x[0, 0, 0] == pytest.approx(0.2) and x[2, 0, 0] == 1.0  # B, G, R order kept
    assert x[3, 40, 50] == pytest.approx(int(255 * 10 / 80) / 255)
    assert x[4, 40, 50] == 0.0 and x[4, 40, 45] == 1.0


def test_resize_keeps_projection_consistent() -> None:
    image = np.zeros((80, 100, 3), np.uint8)
    image[35, 40] = 255
    big, k2 = D.resize_nearest(image, K, (160, 200))
    assert big.shape == (160, 200, 3)
    depth, _ = D.project_lidar(_points((10.0, 1.0, 0.5, 0)), np.ones(1), k2, LIDAR2CAM, 160, 200)
    (row, col), = np.argwhere(depth)
    assert big[row, col, 0] == 255


# -- miscalibration ----------------------------------------------------------------------

def _angle_deg(rot: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1))))


def test_miscalibration_is_seeded_per_sample() -> None:
    m = D.Miscalibration()
    a = m.apply(LIDAR2CAM, D.seeded_rng(0, 3))
    b = m.apply(LIDAR2CAM, D.seeded_rng(0, 3))
    c = m.apply(LIDAR2CAM, D.seeded_rng(0, 4))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_miscalibration_stays_in_range() -> None:
    m = D.Miscalibration()
    for idx in range(300):
        noise = np.linalg.inv(LIDAR2CAM) @ m.apply(LIDAR2CAM, D.seeded_rng(7, idx))
        assert 1.0 - 1e-6 <= _angle_deg(noise[:3, :3]) <= 10.0 + 1e-6
        assert 0.05 - 1e-9 <= np.linalg.norm(noise[:3, 3]) <= 0.2 + 1e-9
        np.testing.assert_allclose(noise[:3, :3] @ noise[:3, :3].T, np.eye(3), atol=1e-9)
        np.testing.assert_allclose(noise[3], [0, 0, 0, 1], atol=1e-12)


def test_dataset_pairs_each_record_and_is_deterministic() -> None:
    records = D.load_records(EVAL_INFO)
    ds = D.CalibrationDataset(records, seed=0)
    assert len(ds) == 2 * len(records) == 40
    assert [s.label for s in ds][:4] == [1, 0, 1, 0]
    assert ds[1].sample_id == "000000-miscalibrated" and ds[-1].record is records[-1]
    cal, mis = ds.load(ds[0]), ds.load(ds[1])
    np.testing.assert_array_equal(mis, ds.load(ds[1]))
    np.testing.assert_array_equal(cal[:3], mis[:3])  # same image, different projection
    assert not np.array_equal(cal[3:], mis[3:])
    assert cal.shape == (5, 128, 192) and 0.0 <= cal.min() and cal.max() <= 1.0
    other_seed = D.CalibrationDataset(records, seed=1)
    assert not np.array_equal(other_seed.load(other_seed[1]), mis)


def test_dataset_repeat_serves_identical_copies_with_distinct_ids() -> None:
    records = D.load_records(EVAL_INFO)
    ds = D.CalibrationDataset(records, seed=0, repeat=3)
    assert len(ds) == 3 * 40
    assert [s.sample_id for s in ds][:40] == [s.sample_id for s in D.CalibrationDataset(records, seed=0)]
    assert ds[41].sample_id == "000000-miscalibrated-r1" and ds[-1].sample_id.endswith("-r2")
    assert len({s.sample_id for s in ds}) == len(ds)
    np.testing.assert_array_equal(ds.load(ds[1]), ds.load(ds[81]))
    with pytest.raises(ValueError, match="repeat"):
        D.CalibrationDataset(records, repeat=0)


# -- info files --------------------------------------------------------------------------

class _Evil:
    def __reduce__(self):  # what a malicious pickle would do
        import os

        return (os.system, ("echo pwned",))


def test_restricted_unpickler_accepts_numpy_and_builtins() -> None:
    obj = {"data_list": [{"m": np.eye(3), "s": np.float64(2.5), "t": (1, "a"), "set": {1, 2}}]}
    back = safe_loads(pickle.dumps(obj))
    np.testing.assert_array_equal(back["data_list"][0]["m"], np.eye(3))
    assert back["data_list"][0]["s"] == 2.5 and back["data_list"][0]["set"] == {1, 2}


@pytest.mark.parametrize("payload", [_Evil(), Path("/tmp")])
def test_restricted_unpickler_refuses_other_classes(payload: object) -> None:
    with pytest.raises(UnsafePickleError, match="refusing to unpickle"):
        safe_loads(pickle.dumps({"x": payload}))


def test_shipped_info_file_layout() -> None:
    entries = D.read_info_file(EVAL_INFO)
    assert set(entries[0]) >= {"sample_idx", "image", "lidar_points"}
    rec = D.load_records(EVAL_INFO)[0]
    assert rec.cam2img.shape == (3, 3) and rec.lidar2cam.shape == (4, 4)
    assert rec.img_path.is_file() and rec.lidar_path.is_file()
    assert D.read_points(rec.lidar_path).shape[1] == 4


def test_json_info_file(tmp_path: Path) -> None:
    import json

    entry = {"image": {"img_path": "a.png", "cam2img": K.tolist(), "lidar2cam": LIDAR2CAM.tolist()},
             "lidar_points": {"lidar_path": "a.bin"}}
    (tmp_path / "info.json").write_text(json.dumps([entry]))
    (rec,) = D.load_records(tmp_path / "info.json")
    assert rec.sample_idx == 0 and rec.img_path == tmp_path / "a.png" and rec.num_pts_feats == 4


# -- images ------------------------------------------------------------------------------

def test_image_is_read_as_awml_reads_it(tmp_path: Path) -> None:
    """cv2.imread(path) in AWML's transform: BGR from an RGB file, grey replicated."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "c.png")
    np.testing.assert_array_equal(D.read_image(tmp_path / "c.png"), rgb[:, :, ::-1])
    grey = rng.integers(0, 256, (5, 4), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g.png")
    np.testing.assert_array_equal(D.read_image(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, axis=2))
    np.save(tmp_path / "n.npy", rgb)  # .npy is taken as stored (BGR)
    np.testing.assert_array_equal(D.read_image(tmp_path / "n.npy"), rgb)
