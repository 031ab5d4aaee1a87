"""Bad dataset files fail with one error that names the file (issue 12, item 15):
point files that are not whole points, COCO files without `images`, unreadable images."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from awml_harness.io import DataError

RGB = np.random.default_rng(0).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
_BUF = io.BytesIO()
Image.fromarray(RGB).save(_BUF, format="PNG")
PNG = _BUF.getvalue()
BAD_IMAGES = {
    "not-an-image": b"this is a text file",
    "empty": b"",
    "truncated-png": PNG[: len(PNG) // 2],
    "truncated-header": PNG[:10],
}


# -- CenterPoint: .bin point files ---------------------------------------------------------
def _centerpoint_info(tmp_path: Path, payload: bytes, feats: int = 5) -> Path:
    (tmp_path / "pts.bin").write_bytes(payload)
    info = {"data_list": [{"token": "t", "lidar_points": {"lidar_path": "pts.bin", "num_pts_feats": feats},
                           "instances": []}]}
    path = tmp_path / "info.pkl"
    path.write_bytes(pickle.dumps(info, protocol=4))
    return path


@pytest.mark.parametrize("extra", [2, 4, 8])  # bytes past 3 whole points of 5 float32: 2 (not even a float), 1 and 2 floats
def test_centerpoint_point_file_that_is_not_whole_points_names_the_file(tmp_path, extra):
    from projects.CenterPoint.data import InfoDataset

    payload = np.arange(15, dtype=np.float32).tobytes() + b"\x00" * extra
    ds = InfoDataset(_centerpoint_info(tmp_path, payload), tmp_path, 4)
    with pytest.raises(DataError, match=rf"pts.bin: {60 + extra} bytes is not a whole number of points of 5 "
                                        r"float32 features \(20 bytes each\)"):
        ds[0]


def test_centerpoint_whole_points_still_read(tmp_path):
    from projects.CenterPoint.data import InfoDataset, read_points

    payload = np.arange(15, dtype=np.float32).tobytes()
    assert InfoDataset(_centerpoint_info(tmp_path, payload), tmp_path, 4)[0].points.shape == (3, 4)
    assert read_points(tmp_path / "pts.bin", 5)[2, 4] == 14
    with pytest.raises(DataError, match="missing.bin: cannot read point file"):
        read_points(tmp_path / "missing.bin", 5)


def test_calibration_point_file_that_is_not_whole_points_names_the_file(tmp_path):
    from projects.CalibrationStatusClassification.data import read_points

    (tmp_path / "lidar.bin").write_bytes(np.zeros(9, np.float32).tobytes() + b"\x01\x02")
    with pytest.raises(DataError, match=r"lidar.bin: 38 bytes is not a whole number of points of 4 float32"):
        read_points(tmp_path / "lidar.bin", 4)


# -- YOLOX: COCO annotation files and images -----------------------------------------------
@pytest.mark.parametrize(("content", "why"), [
    ({"annotations": [], "categories": []}, r"an 'images' list .*this one has keys \['annotations', 'categories'\]"),
    ([1, 2], "this one has a list"),
    ({"images": {"id": 1}}, "an 'images' list"),
    ({"images": [{"id": 1, "file_name": "a.png", "height": 6}]}, "missing key 'width'"),
    ({"images": [{"id": 1, "file_name": "a.png", "height": 6, "width": 8}],
      "annotations": [{"image_id": 1, "category_id": 1}], "categories": [{"id": 1, "name": "car"}]},
     "missing key 'bbox'"),
    ("{not json", "not valid JSON"),
])
def test_coco_file_that_is_not_coco_names_the_file(tmp_path, content, why):
    from projects.YOLOX_opt_elan.data import load_coco

    path = tmp_path / "instances_val.json"
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(DataError, match=rf"instances_val.json: .*{why}"):
        load_coco(path, ["car"])


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_yolox_unreadable_image_names_the_file(tmp_path, kind, suffix):
    from projects.YOLOX_opt_elan.data import Sample

    path = tmp_path / f"frame{suffix}"
    path.write_bytes(BAD_IMAGES[kind])
    sample = Sample(1, path, 6, 8, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                    np.zeros(0, np.float32), np.zeros(0, np.int64))
    with pytest.raises(DataError, match=rf"^{path}: cannot read image \(.+\); expected a (PNG, JPEG|\.npy)"):
        sample.load_bgr()


def test_yolox_readable_images_still_load(tmp_path):
    from projects.YOLOX_opt_elan.data import Sample

    (tmp_path / "a.png").write_bytes(PNG)
    np.save(tmp_path / "b.npy", RGB)
    for name in ("a.png", "b.npy"):
        sample = Sample(1, tmp_path / name, 6, 8, np.zeros((0, 4), np.float32), np.zeros(0, np.int64),
                        np.zeros(0, np.float32), np.zeros(0, np.int64))
        np.testing.assert_array_equal(sample.load_bgr(), RGB[:, :, ::-1])


@pytest.mark.parametrize("kind", sorted(BAD_IMAGES))
@pytest.mark.parametrize("suffix", [".png", ".npy"])
def test_calibration_unreadable_image_names_the_file(tmp_path, kind, suffix):
    from projects.CalibrationStatusClassification.data import read_image

    path = tmp_path / f"cam{suffix}"
    path.write_bytes(BAD_IMAGES[kind])
    with pytest.raises(DataError, match=rf"^{path}: cannot read image \(.+\); expected a (PNG, JPEG|\.npy)"):
        read_image(path)
    with pytest.raises(DataError, match=rf"^{tmp_path / 'gone.png'}: cannot read image \(FileNotFoundError"):
        read_image(tmp_path / "gone.png")


def test_guard_turns_a_data_error_into_one_failure_block(pytester):
    pytester.makepyfile('''
        from awml_harness.io import DataError

        def test_reads(guard_backend):
            with guard_backend():
                raise DataError("/data/cam/0001.png: cannot read image (3 bytes OpenCV cannot decode)")
    ''')
    result = pytester.runpytest_inprocess("-p", "awml_harness.fixtures", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*DataError: /data/cam/0001.png: cannot read image (3 bytes OpenCV cannot decode)"])
    result.stdout.no_fnmatch_line("*raise DataError*")  # no traceback through the test
