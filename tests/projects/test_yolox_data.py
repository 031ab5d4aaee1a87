"""YOLOX_opt_elan data: the COCO loader (image decoding is tested in tests/core/test_image.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from projects.YOLOX_opt_elan.data import Sample, load_coco, to_coco
from projects.YOLOX_opt_elan.settings import CLASS_NAMES

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "fixtures" / "yolox" / "data" / "annotations" / "instances_val.json"


def _sample(image_id: int, rel: str, boxes, labels) -> Sample:
    b = np.asarray(boxes, np.float32).reshape(-1, 4)
    return Sample(image_id=image_id, path=Path(rel), height=20, width=30, boxes=b,
                  labels=np.asarray(labels, np.int64), areas=((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])),
                  iscrowd=np.zeros(len(labels), np.int64))


def test_coco_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    (tmp_path / "images").mkdir()
    Image.fromarray(rgb).save(tmp_path / "images" / "a.png")  # an RGB file from another codec
    np.save(tmp_path / "images" / "b.npy", rgb)
    samples = [_sample(2, "images/b.npy", [], []),
               _sample(1, "images/a.png", [[1, 2, 11, 12], [3.5, 4, 20, 19.25]], [1, 7])]
    (tmp_path / "annotations").mkdir()
    ann = tmp_path / "annotations" / "inst.json"
    ann.write_text(json.dumps(to_coco(samples, CLASS_NAMES)))
    loaded = load_coco(ann, CLASS_NAMES)  # data_root: folder above annotations/
    assert [s.image_id for s in loaded] == [1, 2]
    np.testing.assert_allclose(loaded[0].boxes, samples[1].boxes)
    assert loaded[0].labels.tolist() == [1, 7] and loaded[1].boxes.shape == (0, 4)
    np.testing.assert_allclose(loaded[0].areas, samples[1].areas, atol=0.01)  # JSON keeps 2 decimals
    # loader hands out BGR, like mmcv/OpenCV; .png and .npy alike
    np.testing.assert_array_equal(loaded[0].load_bgr(), rgb[:, :, ::-1])
    np.testing.assert_array_equal(loaded[1].load_bgr(), rgb[:, :, ::-1])
    t = loaded[0].target()
    assert t["image_id"] == 1 and t["height"] == 20 and t["width"] == 30


def test_coco_categories_map_by_name(tmp_path):
    coco = {
        "images": [{"id": 5, "file_name": "x.png", "height": 10, "width": 10}],
        "annotations": [
            {"id": 1, "image_id": 5, "category_id": 42, "bbox": [0, 0, 4, 4], "area": 16, "iscrowd": 0},
            {"id": 2, "image_id": 5, "category_id": 7, "bbox": [1, 1, 2, 2], "area": 4, "iscrowd": 0},
            {"id": 3, "image_id": 5, "category_id": 9, "bbox": [1, 1, 2, 2]},
        ],
        "categories": [{"id": 42, "name": "Pedestrian"}, {"id": 7, "name": "CAR"}, {"id": 9, "name": "animal"}],
    }
    path = tmp_path / "a.json"
    path.write_text(json.dumps(coco))
    (s,) = load_coco(path, CLASS_NAMES, data_root=tmp_path)
    assert s.labels.tolist() == [6, 1]  # 'animal' is not a class: dropped
    assert s.path == tmp_path / "x.png"
    np.testing.assert_allclose(s.boxes[1], [1, 1, 3, 3])


def test_shipped_split_loads():
    samples = load_coco(SHIPPED, CLASS_NAMES)
    assert len(samples) >= 20
    labels = np.concatenate([s.labels for s in samples])
    assert set(labels.tolist()) == set(range(8))  # every class is evaluated
    img = samples[0].load_bgr()
    assert img.shape == (samples[0].height, samples[0].width, 3) and img.dtype == np.uint8
