"""PNG in the BGR order the calibration pipeline works in (like cv2.imread/imwrite);
the codec itself is the core's (awml_harness.io.png)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from awml_harness.io.png import PngError, decode_png, encode_png


def write_png(path: Path | str, image: np.ndarray, *, bgr: bool = True) -> None:
    """uint8 HxW (grey) or HxWx3 (BGR when `bgr`) -> PNG file."""
    arr = np.asarray(image)
    if arr.ndim == 3 and bgr:
        arr = arr[:, :, ::-1]
    try:
        Path(path).write_bytes(encode_png(np.ascontiguousarray(arr)))
    except PngError as exc:
        raise ValueError(f"write_png: {exc}") from None


def read_png(path: Path | str) -> np.ndarray:
    """PNG file -> uint8 HxWx3 BGR (alpha dropped, grey replicated)."""
    try:
        pixels = decode_png(Path(path).read_bytes())
    except PngError as exc:
        raise ValueError(f"{path}: {exc}") from None
    if pixels.shape[2] == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, 2::-1])  # RGB(A) -> BGR
