"""A small PNG codec (numpy + zlib), because neither PIL nor OpenCV is a dependency.

Datasets reference image files; shipping real PNGs keeps the fixtures in the format
users have. Channel order here is the file's (RGB); projects that work in BGR flip it. Scope: 8-bit greyscale, RGB and RGBA, non-interlaced, every scanline filter
type (0 None, 1 Sub, 2 Up, 3 Average, 4 Paeth) on read. The writer emits RGB with the
Sub filter on every row (good enough compression for rendered images, trivially
vectorized). Palette, 16-bit and interlaced files are refused with a clear error.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 6: 4}  # colour type -> samples per pixel


class PngError(ValueError):
    pass


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(rgb: np.ndarray, level: int = 9) -> bytes:
    """(H, W, 3) uint8 RGB or (H, W) grey -> PNG bytes (Sub filter on every scanline)."""
    img = np.asarray(rgb)
    if img.dtype == np.uint8 and img.ndim == 2:
        img = img[:, :, None]
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] not in (1, 3):
        raise PngError(f"encode_png takes (H, W, 3) or (H, W) uint8, got {img.shape} {img.dtype}")
    h, w, ch = img.shape
    rows = img.reshape(h, w * ch)
    sub = rows.copy()
    sub[:, ch:] = rows[:, ch:] - rows[:, :-ch]  # uint8 wraps modulo 256, as the filter wants
    raw = np.concatenate([np.ones((h, 1), np.uint8), sub], axis=1)
    header = struct.pack(">IIBBBBB", w, h, 8, 0 if ch == 1 else 2, 0, 0, 0)
    idat = zlib.compress(raw.tobytes(), level)
    return _SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def _unfilter_slow(ftype: int, line: np.ndarray, prev: np.ndarray, bpp: int) -> np.ndarray:
    """Average and Paeth depend on the already decoded left neighbour: per byte."""
    out = line.astype(np.int32)
    up = prev.astype(np.int32)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if ftype == 3:
            out[i] = (out[i] + ((left + up[i]) >> 1)) & 0xFF
        else:
            up_left = up[i - bpp] if i >= bpp else 0
            p = left + up[i] - up_left
            pa, pb, pc = abs(p - left), abs(p - up[i]), abs(p - up_left)
            pred = left if (pa <= pb and pa <= pc) else (up[i] if pb <= pc else up_left)
            out[i] = (out[i] + pred) & 0xFF
    return out.astype(np.uint8)


def decode_png(data: bytes) -> np.ndarray:
    """PNG bytes -> (H, W, C) uint8 in file channel order (RGB / RGBA / grey)."""
    if not data.startswith(_SIGNATURE):
        raise PngError("not a PNG file (bad signature)")
    pos, idat, header = len(_SIGNATURE), bytearray(), None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind = data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        if len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(kind + body) & 0xFFFFFFFF:
            raise PngError(f"CRC mismatch in PNG chunk {kind!r} (file corrupt or truncated)")
        pos += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        elif kind == b"IEND":
            break
    if header is None:
        raise PngError("PNG without IHDR")
    w, h, depth, ctype, _, _, interlace = header
    if depth != 8 or ctype not in _CHANNELS or interlace != 0:
        raise PngError(f"unsupported PNG (bit depth {depth}, colour type {ctype}, interlace {interlace}); "
                       "only 8-bit grey/RGB/RGBA non-interlaced is read")
    ch = _CHANNELS[ctype]
    stride = w * ch
    raw = np.frombuffer(zlib.decompress(bytes(idat)), dtype=np.uint8)
    if raw.size != h * (stride + 1):
        raise PngError(f"PNG data holds {raw.size} bytes, expected {h * (stride + 1)}")
    raw = raw.reshape(h, stride + 1)
    filters, lines = raw[:, 0], raw[:, 1:]
    out = np.empty((h, stride), dtype=np.uint8)
    prev = np.zeros(stride, dtype=np.uint8)
    for y in range(h):
        f, line = int(filters[y]), lines[y]
        if f == 0:
            row = line.copy()
        elif f == 1:  # Sub: running sum per channel, modulo 256
            row = (np.cumsum(line.reshape(w, ch).astype(np.int64), axis=0) & 0xFF).astype(np.uint8).ravel()
        elif f == 2:
            row = line + prev
        elif f in (3, 4):
            row = _unfilter_slow(f, line, prev, ch)
        else:
            raise PngError(f"PNG scanline {y} has unknown filter type {f}")
        out[y] = row
        prev = row
    return out.reshape(h, w, ch)


def write_png(path: Path | str, rgb: np.ndarray) -> None:
    Path(path).write_bytes(encode_png(rgb))


def read_png(path: Path | str) -> np.ndarray:
    """Decode a PNG file; any decoding failure is a PngError that names the file."""
    data = Path(path).read_bytes()
    try:
        return decode_png(data)
    except (PngError, struct.error, zlib.error, ValueError) as exc:
        raise PngError(f"{path}: {exc or type(exc).__name__}") from None
