"""Semantic segmentation data in mmseg's folder layout: images and label maps by file stem.

    <data_root>/img_dir/<split>/<stem><img_suffix>      RGB image (PNG, JPEG ... via Pillow)
    <data_root>/ann_dir/<split>/<stem><seg_map_suffix>  8-bit grey label map

A label map holds the class index per pixel; `IGNORE_INDEX` (255) marks pixels no class
is scored on (mmseg's `ignore_index`). Samples are the images sorted by stem, each paired
with the label map of the same stem; an image without one is a DataError naming it, so
a half-copied dataset cannot be evaluated on fewer pixels by accident.

Preprocessing is mmseg's for a model trained on RGB: float pixels normalised per channel
with the ImageNet mean/std (`MEAN`, `STD`, on the 0-255 scale), laid out (1, 3, H, W).
Pillow is imported when the first image is read, not at import time.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from awml_harness.io import DataError

CLASS_NAMES = ("road", "lane_marking", "vehicle", "building", "vegetation", "sky")
IGNORE_INDEX = 255
MEAN = np.array([123.675, 116.28, 103.53], np.float32)
STD = np.array([58.395, 57.12, 57.375], np.float32)


@dataclass(frozen=True)
class SegSample:
    """One image and its label map."""

    stem: str
    img_path: Path
    seg_map_path: Path

    @property
    def sample_id(self) -> str:
        return self.stem


def _read(path: Path, mode: str, what: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if mode == "L" and img.mode not in ("L", "P"):
                raise DataError(f"{path}: a label map must be a single-channel 8-bit image (mode L or P), "
                                f"got mode {img.mode}")
            return np.asarray(img.convert(mode) if img.mode != mode and mode == "RGB" else img, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc}); expected an image file "
                        "Pillow reads (PNG, JPEG, ...)") from None


def read_image(path: Path | str) -> np.ndarray:
    """(H, W, 3) uint8 RGB."""
    return _read(Path(path), "RGB", "image")


def read_label(path: Path | str) -> np.ndarray:
    """(H, W) uint8 class indices (255: ignore)."""
    label = _read(Path(path), "L", "label map")
    if label.ndim != 2:
        raise DataError(f"{path}: a label map must be HxW, got shape {label.shape}")
    return label


def normalize(image_rgb: np.ndarray) -> np.ndarray:
    """uint8 (H, W, 3) RGB -> float32 (1, 3, H, W), (x - MEAN) / STD per channel."""
    x = (image_rgb.astype(np.float32) - MEAN) / STD
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


class SegDataset(Sequence[SegSample]):
    """The samples of one split, sorted by file stem (deterministic on every machine)."""

    def __init__(self, data_root: Path | str, split: str = "val", img_suffix: str = ".png",
                 seg_map_suffix: str = ".png") -> None:
        self.root = Path(data_root)
        img_dir, ann_dir = self.root / "img_dir" / split, self.root / "ann_dir" / split
        if not img_dir.is_dir():
            raise DataError(f"{img_dir}: no image folder (expected <data_root>/img_dir/{split}/ of mmseg's layout)")
        samples = []
        for img in sorted(img_dir.glob(f"*{img_suffix}")):
            stem = img.name[: -len(img_suffix)]
            seg = ann_dir / f"{stem}{seg_map_suffix}"
            if not seg.is_file():
                raise DataError(f"{img}: no label map {seg} beside it (every image needs one of the same stem)")
            samples.append(SegSample(stem, img, seg))
        self.samples: tuple[SegSample, ...] = tuple(samples)

    def __len__(self) -> int:
        return len(self.samples)

    @overload
    def __getitem__(self, index: int) -> SegSample: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[SegSample]: ...

    def __getitem__(self, index: int | slice) -> SegSample | Sequence[SegSample]:
        return self.samples[index]

    def __iter__(self) -> Iterator[SegSample]:
        return iter(self.samples)
