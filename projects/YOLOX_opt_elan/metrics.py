"""COCO box metrics through COCOeval, built in memory.

The ground truth COCO object is assembled from the targets that were actually added
(not re-read from the annotation file), so a run over a subset (`num_samples`) or a
merge of worker results is scored over exactly the images it saw. COCOeval computes
everything; its printout is silenced.

Engine: `faster-coco-eval` (a C++ port of pycocotools' COCOeval, ~6x faster on 5,000
images) when it is importable, else pycocotools itself. Both give the same numbers up
to the last bit of a float64: faster-coco-eval's C++ accumulate rounds a few
precision-table entries differently by 2e-16, which can move a mean by one ulp
(tests/projects/test_yolox_metrics.py checks |difference| <= 1e-15 on generated data).
Set `CocoEvaluator(..., engine="pycocotools")` to force the reference implementation.

Category id = label + 1. Definition: pycocotools' COCOeval ("bbox", default params),
whose summary gives mAP (IoU 0.50:0.95), mAP50, mAP75 and mAP_small/medium/large (each
present unless COCOeval reports -1: no non-crowd ground truth of that size). Per-class
AP is the mean of the class's slice of COCOeval's precision table (area "all", 100
detections) over IoU 0.50:0.95 (AP50: IoU 0.5), so the mean of the per-class values is
mAP. A class whose ground truth is absent or all `iscrowd` gets -1 from COCOeval and is
left out of the per-class dicts (and, as there, of the mean). No detections at all:
COCOeval on an empty result set (0 where there is ground truth). No ground truth at all
(nothing to score): zeros and empty per-class dicts, where COCOeval would say -1.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from awml_harness.project import Evaluator


def _xywh(boxes: np.ndarray) -> np.ndarray:
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def coco_engine(name: str = "auto") -> tuple[Any, Any]:
    """(COCO, COCOeval) classes of `name`: "faster-coco-eval", "pycocotools", or "auto"
    (the first when importable)."""
    if name not in ("auto", "faster-coco-eval", "pycocotools"):
        raise ValueError(f"engine {name!r}: expected 'auto', 'faster-coco-eval' or 'pycocotools'")
    if name in ("auto", "faster-coco-eval"):
        try:
            from faster_coco_eval import COCO, COCOeval_faster
        except ImportError:
            if name != "auto":
                raise
        else:
            return COCO, COCOeval_faster
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    return COCO, COCOeval


class CocoEvaluator(Evaluator):
    headline: ClassVar[str] = "mAP50"
    directions: ClassVar[Mapping[str, str]] = {"mAP*": "higher"}

    def __init__(self, class_names: Sequence[str], engine: str = "auto") -> None:
        self.class_names = tuple(class_names)
        self.engine = engine
        self._images: list[dict[str, Any]] = []
        self._gts: list[dict[str, Any]] = []
        self._dets: list[dict[str, Any]] = []

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        image_id = int(target["image_id"])
        self._images.append({"id": image_id, "height": int(target["height"]), "width": int(target["width"])})
        gt = zip(_xywh(target["boxes"]), target["labels"], target["areas"], target["iscrowd"], strict=True)
        for box, label, area, crowd in gt:
            self._gts.append({
                "id": len(self._gts) + 1, "image_id": image_id, "category_id": int(label) + 1,
                "bbox": [float(v) for v in box], "area": float(area), "iscrowd": int(crowd),
            })
        dets = zip(_xywh(prediction["boxes"]), prediction["scores"], prediction["labels"], strict=True)
        for box, score, label in dets:
            self._dets.append({
                "image_id": image_id, "category_id": int(label) + 1,
                "bbox": [float(v) for v in box], "score": float(score),
            })

    def _counts(self) -> dict[str, int]:
        """Nested, not flat: counts are context, not metrics held to a delta tolerance
        (one borderline box more on another backend is no regression)."""
        return {"images": len(self._images), "ground_truths": len(self._gts), "detections": len(self._dets)}

    def compute(self) -> dict[str, Any]:
        COCO, COCOeval = coco_engine(self.engine)

        if not self._gts:  # nothing to score (COCOeval would report -1 everywhere)
            return {"mAP": 0.0, "mAP50": 0.0, "mAP75": 0.0, "counts": self._counts(),
                    "per_class_AP": {}, "per_class_AP50": {}}
        categories = [{"id": i + 1, "name": n} for i, n in enumerate(self.class_names)]
        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {"images": self._images, "annotations": self._gts, "categories": categories}
            gt.createIndex()
            if self._dets:
                dt = gt.loadRes(self._dets)
            else:  # loadRes cannot take an empty list: an empty result set, as COCOeval reads one
                dt = COCO()
                dt.dataset = {"images": self._images, "annotations": [], "categories": categories}
                dt.createIndex()
            ev = COCOeval(gt, dt, "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        stats = [float(s) for s in ev.stats]  # -1: no ground truth of that size
        precision = ev.eval["precision"]  # [iou, recall, class, area, maxdets]
        per_class, per_class50 = {}, {}
        for k, cat_id in enumerate(ev.params.catIds):
            p = precision[:, :, k, 0, -1]
            valid = p[p > -1]
            if not valid.size:  # no GT, or crowd GT only: COCOeval's -1, out of the mean
                continue
            per_class[self.class_names[cat_id - 1]] = float(valid.mean())
            p50 = precision[0, :, k, 0, -1]
            per_class50[self.class_names[cat_id - 1]] = float(p50[p50 > -1].mean())
        sizes = {f"mAP_{n}": v for n, v in zip(("small", "medium", "large"), stats[3:6], strict=True) if v >= 0}
        return {
            "mAP": stats[0], "mAP50": stats[1], "mAP75": stats[2], **sizes,
            "counts": self._counts(),
            "per_class_AP": per_class, "per_class_AP50": per_class50,
        }
