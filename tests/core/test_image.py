"""Images through OpenCV (awml_harness.io.image), checked against an independent codec
(Pillow) and against OpenCV's own imread, the call AWML's loaders make."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from awml_harness.io import DataError
from awml_harness.io.image import read_image, write_image

cv2 = pytest.importorskip("cv2")
Image = pytest.importorskip("PIL.Image")

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
EXIF_ORIENTATION = 0x0112
ROTATE_90_CW = 6  # EXIF: the stored image must be turned 90 degrees clockwise for display


def _pillow_png(rgb: np.ndarray, **save: object) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG", **save)
    return buf.getvalue()


def test_16_bit_depth_round_trip(tmp_path: Path) -> None:
    depth = RNG.integers(0, 65536, size=(6, 9), dtype=np.uint16)
    depth[0, 0], depth[-1, -1] = 65535, 256  # above any 8-bit value, one low byte of zero
    write_image(tmp_path / "depth.png", depth)
    back = read_image(tmp_path / "depth.png", "unchanged")
    assert back.dtype == np.uint16
    np.testing.assert_array_equal(back, depth)
    with Image.open(tmp_path / "depth.png") as im:  # a real 16-bit PNG, not an 8-bit one in disguise
        np.testing.assert_array_equal(np.asarray(im).astype(np.int64), depth.astype(np.int64))


def test_colour_read_is_bgr_of_an_rgb_file_and_writes_bgr(tmp_path: Path) -> None:
    (tmp_path / "rgb.png").write_bytes(_pillow_png(RGB))
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), RGB[:, :, ::-1])
    write_image(tmp_path / "out.png", RGB[:, :, ::-1])  # BGR in, RGB in the file
    with Image.open(tmp_path / "out.png") as im:
        np.testing.assert_array_equal(np.asarray(im.convert("RGB")), RGB)


def test_grey_file_is_replicated_in_colour_and_kept_unchanged(tmp_path: Path) -> None:
    grey = RNG.integers(0, 256, size=(4, 6), dtype=np.uint8)
    (tmp_path / "g.png").write_bytes(_pillow_png(grey))
    np.testing.assert_array_equal(read_image(tmp_path / "g.png"), np.repeat(grey[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(read_image(tmp_path / "g.png", "unchanged"), grey)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_exif_orientation_is_decoded_as_opencv_imread_does(tmp_path: Path, fmt: str) -> None:
    exif = Image.Exif()
    exif[EXIF_ORIENTATION] = ROTATE_90_CW
    path = tmp_path / f"oriented.{fmt.lower()}"
    Image.fromarray(RGB).save(path, format=fmt, exif=exif, **({"quality": 100} if fmt == "JPEG" else {}))
    colour = read_image(path)
    np.testing.assert_array_equal(colour, cv2.imread(str(path)))  # AWML's call: IMREAD_COLOR
    assert colour.shape == (7, 5, 3)  # the tag is applied, as cv2.imread applies it
    unchanged = read_image(path, "unchanged")
    np.testing.assert_array_equal(unchanged, cv2.imread(str(path), cv2.IMREAD_UNCHANGED))
    assert unchanged.shape == (5, 7, 3)  # stored samples: the tag is ignored
    if fmt == "PNG":  # lossless: the pixels are the clockwise turn of the stored ones
        np.testing.assert_array_equal(colour, np.rot90(RGB[:, :, ::-1], k=-1))


@pytest.mark.parametrize("content", [b"", b"this is a text file", "truncated", "header-only"])
def test_unreadable_file_is_one_error_naming_it(tmp_path: Path, content: object) -> None:
    png = _pillow_png(RGB)
    data = {"truncated": png[: len(png) // 2], "header-only": png[:10]}.get(content, content)  # type: ignore[arg-type]
    path = tmp_path / "cam.png"
    path.write_bytes(data)  # type: ignore[arg-type]
    with pytest.raises(DataError, match=rf"^{path}: cannot read image \(.*\); expected a PNG, JPEG"):
        read_image(path)


def test_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=rf"^{tmp_path / 'gone.png'}: cannot read image \(FileNotFoundError"):
        read_image(tmp_path / "gone.png")


def test_unwritable_array_names_the_file_and_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"two.png: OpenCV cannot write a uint8 \(4, 4, 2\) array as '.png'"):
        write_image(tmp_path / "two.png", np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match=r"what.xyz: OpenCV cannot write"):
        write_image(tmp_path / "what.xyz", RGB)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="mode must be one of"):
        read_image(tmp_path / "x.png", "rgb")  # type: ignore[arg-type]
