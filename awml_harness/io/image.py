"""Image files through OpenCV, decoded exactly as AWML's loaders decode them.

AWML reads camera images with `cv2.imread(path)` (the calibration classifier's transform)
or mmcv's `LoadImageFromFile` (`cv2.imdecode` with the `'color'` flag). Both give uint8
BGR and apply a file's EXIF orientation tag; both go through OpenCV's codecs. Reading with
the same library and flag is what makes a harness image the model's image, bit for bit:
Pillow would hand out RGB and ignore the orientation tag, so a rotated phone JPEG would
reach the network unrotated.

Two read modes:
- `"color"`: uint8 HxWx3 BGR, orientation applied (`cv2.IMREAD_COLOR`, AWML's default);
- `"unchanged"`: the stored samples as they are (`cv2.IMREAD_UNCHANGED`): 16-bit depth
  images stay uint16, alpha stays, grey stays HxW, and orientation is *not* applied
  (OpenCV's rule for this flag; a depth map is indexed by pixel, not looked at).

OpenCV is imported on first use, so importing this module (and `pytest --help`) does not
load it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np

from awml_harness.atomic import atomic_open
from awml_harness.io import DataError

Mode = Literal["color", "unchanged"]
_INSTALL = "pip install opencv-python-headless"


def _cv2() -> Any:
    try:
        import cv2  # type: ignore[import-not-found]
    except ImportError:
        raise DataError(f"reading and writing images needs OpenCV ({_INSTALL})") from None
    return cv2


def read_image(path: Path | str, mode: Mode = "color") -> np.ndarray:
    """Decode an image file (PNG, JPEG, TIFF, ... whatever OpenCV reads).

    A missing, empty, truncated or foreign file is one DataError that starts with the
    path and says what would be accepted."""
    path = Path(path)
    cv2 = _cv2()
    flags = {"color": cv2.IMREAD_COLOR, "unchanged": cv2.IMREAD_UNCHANGED}
    if mode not in flags:
        raise ValueError(f"read_image mode must be one of {sorted(flags)}, got {mode!r}")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc.strerror or exc})") from None
    # Bytes through imdecode rather than imread: same decoder and flags (mmcv does this),
    # but a missing file above and an undecodable one here get different messages.
    image = cv2.imdecode(data, flags[mode]) if data.size else None
    if image is None:
        raise DataError(f"{path}: cannot read image ({data.size} bytes OpenCV cannot decode: empty, truncated "
                        "or not an image); expected a PNG, JPEG or other OpenCV-readable image file")
    return image


def write_image(path: Path | str, image: np.ndarray) -> None:
    """Encode by the file's suffix (`.png` keeps uint16 and is lossless) and write it
    atomically. Channel order is OpenCV's: a 3-channel array is taken as BGR."""
    path = Path(path)
    cv2 = _cv2()
    image = np.ascontiguousarray(image)
    try:
        ok, encoded = cv2.imencode(path.suffix, image)
    except cv2.error as exc:
        ok, why = False, str(exc).strip().splitlines()[-1]
    else:
        why = "the encoder refused it"
    if not ok:
        raise ValueError(f"{path}: OpenCV cannot write a {image.dtype} {image.shape} array as {path.suffix!r} "
                         f"({why}); PNG takes uint8 or uint16 HxW, HxWx3 (BGR) or HxWx4 (BGRA)")
    with atomic_open(path, "wb") as fh:
        fh.write(encoded.tobytes())
