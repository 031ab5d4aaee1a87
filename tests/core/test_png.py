"""The core PNG codec (awml_harness.io.png), which the projects' image loaders share."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from awml_harness.io.png import PngError, decode_png, encode_png, read_png, write_png


def _filtered_png(img: np.ndarray, ftype: int) -> bytes:
    """Reference encoder for one filter type, per byte as the PNG spec writes it."""
    h, w, c = img.shape
    rows = img.reshape(h, w * c).astype(np.int32)
    out = bytearray()
    prev = np.zeros(w * c, np.int32)
    for y in range(h):
        line = rows[y]
        filt = []
        for i in range(len(line)):
            a = line[i - c] if i >= c else 0
            b = prev[i]
            cc = prev[i - c] if i >= c else 0
            if ftype == 0:
                pred = 0
            elif ftype == 1:
                pred = a
            elif ftype == 2:
                pred = b
            elif ftype == 3:
                pred = (a + b) // 2
            else:
                p = a + b - cc
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - cc)
                pred = a if pa <= pb and pa <= pc else (b if pb <= pc else cc)
            filt.append((line[i] - pred) & 0xFF)
        out += bytes([ftype]) + bytes(filt)
        prev = line

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ctype = {1: 0, 3: 2, 4: 6}[c]
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, ctype, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(bytes(out))) + chunk(b"IEND", b""))


def test_png_round_trip(tmp_path):
    img = np.random.default_rng(0).integers(0, 256, size=(17, 23, 3), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(encode_png(img)), img)
    write_png(tmp_path / "a.png", img)
    np.testing.assert_array_equal(read_png(tmp_path / "a.png"), img)


@pytest.mark.parametrize("ftype", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_png_reads_every_filter(ftype, channels):
    img = np.random.default_rng(ftype).integers(0, 256, size=(5, 7, channels), dtype=np.uint8)
    np.testing.assert_array_equal(decode_png(_filtered_png(img, ftype)), img)


def test_png_rejects_garbage():
    with pytest.raises(PngError, match="signature"):
        decode_png(b"GIF89a....")
    with pytest.raises(PngError):
        encode_png(np.zeros((4, 4, 2), np.uint8))  # two channels: neither grey nor RGB


def test_png_detects_corruption(tmp_path):
    write_png(tmp_path / "c.png", np.zeros((4, 4, 3), np.uint8))
    blob = bytearray((tmp_path / "c.png").read_bytes())
    blob[40] ^= 0xFF
    with pytest.raises(PngError, match="CRC"):
        decode_png(bytes(blob))
