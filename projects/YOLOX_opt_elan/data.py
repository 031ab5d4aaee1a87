"""COCO-format detection data: an annotation JSON plus image files.

This is the format real users have (`instances_val.json` + an image folder). Images are
decoded as mmcv's `LoadImageFromFile` does in AWML (OpenCV, `'color'`: BGR, EXIF orientation
applied) or read as numpy arrays (`.npy`, HxWx3 uint8, RGB, flipped to BGR), so the
pipeline always gets BGR. Category ids map to the configured class names by name (case
insensitive), so a file whose ids are numbered differently still lines up; annotations
of categories outside the class list are dropped.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np

from awml_harness.io import DataError
from awml_harness.io.image import read_image


@dataclass(frozen=True)
class Sample:
    """One image with its ground truth; boxes are x1, y1, x2, y2 in image pixels."""

    image_id: int
    path: Path
    height: int
    width: int
    boxes: np.ndarray  # (N, 4) float32
    labels: np.ndarray  # (N,) int64, index into class_names
    areas: np.ndarray  # (N,) float32, COCO `area`
    iscrowd: np.ndarray  # (N,) int64

    def load_bgr(self) -> np.ndarray:
        """(H, W, 3) uint8 BGR, as mmcv's LoadImageFromFile (OpenCV, 'color') returns it."""
        if self.path.suffix.lower() == ".npy":
            try:
                rgb = np.load(self.path, allow_pickle=False)
            except (OSError, ValueError, EOFError) as exc:
                raise DataError(f"{self.path}: cannot read image ({type(exc).__name__}: {exc}); expected a "
                                ".npy uint8 HxWx3 RGB array") from None
            if rgb.dtype != np.uint8 or rgb.ndim not in (2, 3):
                raise DataError(f"{self.path}: image must be uint8 HxW or HxWxC, got {rgb.dtype} {rgb.shape}")
            if rgb.ndim == 2:
                rgb = np.repeat(rgb[:, :, None], 3, axis=2)
            bgr = np.ascontiguousarray(rgb[:, :, 2::-1])
        else:
            bgr = read_image(self.path, "color")
        if bgr.shape[:2] != (self.height, self.width):
            raise DataError(f"{self.path}: image is {bgr.shape[:2]}, annotation says {(self.height, self.width)}")
        return bgr

    def target(self) -> dict[str, Any]:
        return {
            "image_id": self.image_id, "height": self.height, "width": self.width,
            "boxes": self.boxes, "labels": self.labels, "areas": self.areas, "iscrowd": self.iscrowd,
        }


def _category_map(categories: Sequence[Mapping[str, Any]], class_names: Sequence[str]) -> dict[int, int]:
    lookup = {name.lower(): i for i, name in enumerate(class_names)}
    return {int(c["id"]): lookup[str(c["name"]).lower()] for c in categories if str(c["name"]).lower() in lookup}


def load_coco(info_file: Path | str, class_names: Sequence[str], data_root: Path | str | None = None) -> list[Sample]:
    """Samples ordered by image id. `file_name`s resolve against `data_root`, which
    defaults to the folder above `annotations/` (COCO layout) or else the JSON's folder."""
    info_file = Path(info_file)
    if data_root is not None:
        root = Path(data_root)
    else:
        root = info_file.parent.parent if info_file.parent.name == "annotations" else info_file.parent
    coco = _read_coco_json(info_file)
    try:
        return _samples(coco, class_names, root)
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        what = f"missing key {exc}" if isinstance(exc, KeyError) else f"{type(exc).__name__}: {exc}"
        raise DataError(f"{info_file}: not a COCO detection file ({what}); images need id, file_name, height, "
                        "width; annotations need image_id, category_id, bbox [x, y, w, h]") from None


def _read_coco_json(info_file: Path) -> dict[str, Any]:
    try:
        coco = json.loads(info_file.read_text())
    except OSError as exc:
        raise DataError(f"{info_file}: cannot read the COCO annotation file ({exc.strerror or exc})") from None
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise DataError(f"{info_file}: not valid JSON ({exc})") from None
    if not isinstance(coco, dict) or not isinstance(coco.get("images"), list):
        found = f"keys {sorted(map(str, coco))}" if isinstance(coco, dict) else f"a {type(coco).__name__}"
        raise DataError(f"{info_file}: a COCO annotation file is an object with an 'images' list (plus "
                        f"'annotations' and 'categories'); this one has {found}")
    return coco


def _samples(coco: Mapping[str, Any], class_names: Sequence[str], root: Path) -> list[Sample]:
    cat_to_label = _category_map(coco.get("categories", []), class_names)
    per_image: dict[int, list[Mapping[str, Any]]] = {}
    for ann in coco.get("annotations", []):
        if int(ann["category_id"]) in cat_to_label:
            per_image.setdefault(int(ann["image_id"]), []).append(ann)
    samples = []
    for img in sorted(coco["images"], key=lambda im: int(im["id"])):
        anns = per_image.get(int(img["id"]), [])
        xywh = np.asarray([a["bbox"] for a in anns], dtype=np.float32).reshape(-1, 4)
        samples.append(Sample(
            image_id=int(img["id"]),
            path=root / img["file_name"],
            height=int(img["height"]),
            width=int(img["width"]),
            boxes=np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], axis=1),
            labels=np.asarray([cat_to_label[int(a["category_id"])] for a in anns], dtype=np.int64),
            areas=np.asarray([a.get("area", a["bbox"][2] * a["bbox"][3]) for a in anns], dtype=np.float32),
            iscrowd=np.asarray([a.get("iscrowd", 0) for a in anns], dtype=np.int64),
        ))
    return samples


def to_coco(samples: Sequence[Sample], class_names: Sequence[str]) -> dict[str, Any]:
    """The inverse of `load_coco` (category id = label + 1), used by the generator."""
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for s in samples:
        images.append({"id": s.image_id, "file_name": str(s.path), "height": s.height, "width": s.width})
        for box, label, area, crowd in zip(s.boxes, s.labels, s.areas, s.iscrowd, strict=True):
            x1, y1, x2, y2 = (float(v) for v in box)
            annotations.append({
                "id": len(annotations) + 1, "image_id": s.image_id, "category_id": int(label) + 1,
                "bbox": [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)],
                "area": round(float(area), 2), "iscrowd": int(crowd),
            })
    categories = [{"id": i + 1, "name": n} for i, n in enumerate(class_names)]
    return {"images": images, "annotations": annotations, "categories": categories}


class CocoDataset(Sequence[Sample]):
    """Indexable, sized, deterministic; images are decoded on access."""

    def __init__(self, samples: Sequence[Sample]) -> None:
        self._samples = list(samples)

    def __len__(self) -> int:
        return len(self._samples)

    @overload
    def __getitem__(self, i: int) -> Sample: ...
    @overload
    def __getitem__(self, i: slice) -> list[Sample]: ...

    def __getitem__(self, i: int | slice) -> Sample | list[Sample]:
        return self._samples[i]

    def __iter__(self) -> Iterator[Sample]:
        return iter(self._samples)
