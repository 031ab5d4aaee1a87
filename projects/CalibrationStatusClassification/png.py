"""A small PNG reader and writer on zlib, because the harness must not need Pillow or OpenCV.

Why this exists: the real dataset stores camera images as PNG/JPEG and AWML reads them
with `cv2.imread` (BGR order). Neither Pillow nor OpenCV is a dependency here, so images
go through this module instead: 8-bit greyscale, RGB and RGBA, non-interlaced — what
cameras and our fixture generator write. Rows filtered with None/Sub/Up decode
vectorized; Average/Paeth rows decode with a per-pixel loop (correct but slow on
full-size photos: install OpenCV for those, `read_image` in data.py prefers it).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 6: 4}  # colour type -> samples per pixel


def _chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def write_png(path: Path | str, image: np.ndarray, *, bgr: bool = True) -> None:
    """Write uint8 HxW (grey) or HxWx3 (BGR when `bgr`, like cv2.imwrite) as PNG.

    Every row uses the Sub filter: on rendered images it compresses far better than
    None and stays trivial to encode with numpy."""
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_png takes uint8, got {arr.dtype}")
    if arr.ndim == 2:
        colour_type, pixels = 0, arr[:, :, None]
    elif arr.ndim == 3 and arr.shape[2] == 3:
        colour_type, pixels = 2, (arr[:, :, ::-1] if bgr else arr)
    else:
        raise ValueError(f"write_png takes HxW or HxWx3, got shape {arr.shape}")
    height, width, _ = pixels.shape
    rows = pixels.reshape(height, -1).astype(np.int16)
    bpp = pixels.shape[2]
    sub = rows.copy()
    sub[:, bpp:] -= rows[:, :-bpp]
    raw = np.concatenate([np.ones((height, 1), np.uint8), (sub % 256).astype(np.uint8)], axis=1)
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    body = _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(raw.tobytes(), 9)) + _chunk(b"IEND", b"")
    Path(path).write_bytes(_SIGNATURE + body)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def _unfilter(data: bytes, height: int, width: int, bpp: int) -> np.ndarray:
    stride = width * bpp
    raw = np.frombuffer(data, np.uint8)
    if raw.size != height * (stride + 1):
        raise ValueError(f"PNG data holds {raw.size} bytes, expected {height * (stride + 1)}")
    raw = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), np.uint8)
    prev = np.zeros(stride, np.uint8)
    for y in range(height):
        kind, row = raw[y, 0], raw[y, 1:]
        if kind == 0:
            cur = row.copy()
        elif kind == 1:  # Sub: running sum per channel along the row
            cur = (np.cumsum(row.reshape(width, bpp).astype(np.int64), axis=0) % 256).astype(np.uint8).ravel()
        elif kind == 2:  # Up
            cur = ((row.astype(np.int16) + prev) % 256).astype(np.uint8)
        elif kind in (3, 4):
            vals, up = row.tolist(), prev.tolist()
            rec = [0] * stride
            for i in range(stride):
                left = rec[i - bpp] if i >= bpp else 0
                if kind == 3:
                    rec[i] = (vals[i] + ((left + up[i]) >> 1)) & 0xFF
                else:
                    upleft = up[i - bpp] if i >= bpp else 0
                    rec[i] = (vals[i] + _paeth(left, up[i], upleft)) & 0xFF
            cur = np.asarray(rec, np.uint8)
        else:
            raise ValueError(f"PNG row {y} has unknown filter type {kind}")
        out[y] = cur
        prev = cur
    return out


def read_png(path: Path | str) -> np.ndarray:
    """PNG file -> uint8 HxWx3 in BGR order (alpha dropped, grey replicated), like cv2.imread."""
    blob = Path(path).read_bytes()
    if not blob.startswith(_SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    pos, header, idat = len(_SIGNATURE), None, []
    while pos < len(blob):
        (length,) = struct.unpack(">I", blob[pos:pos + 4])
        kind, data = blob[pos + 4:pos + 8], blob[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", blob[pos + 8 + length:pos + 12 + length])
        if zlib.crc32(kind + data) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: CRC mismatch in chunk {kind!r} (file corrupt or truncated)")
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data)
        elif kind == b"IDAT":
            idat.append(data)
        elif kind == b"IEND":
            break
        pos += 12 + length
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or colour_type not in _CHANNELS or interlace != 0:
        raise ValueError(
            f"{path}: PNG with bit depth {depth}, colour type {colour_type}, interlace {interlace} is not "
            "supported (8-bit grey/RGB/RGBA, non-interlaced); install opencv-python-headless for other files"
        )
    bpp = _CHANNELS[colour_type]
    pixels = _unfilter(zlib.decompress(b"".join(idat)), height, width, bpp).reshape(height, width, bpp)
    if bpp == 1:
        return np.repeat(pixels, 3, axis=2)
    return np.ascontiguousarray(pixels[:, :, 2::-1])  # RGB(A) -> BGR
