"""YOLOX_opt_elan COCO evaluator: equal to pycocotools, sane edge cases."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from projects.YOLOX_opt_elan.metrics import CocoEvaluator  # noqa: E402
from projects.YOLOX_opt_elan.settings import CLASS_NAMES  # noqa: E402


def _targets(n_images: int = 6, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n_images):
        n = int(rng.integers(1, 6))
        xy = rng.uniform(0, 150, size=(n, 2))
        wh = rng.uniform(8, 80, size=(n, 2))
        boxes = np.concatenate([xy, xy + wh], 1).astype(np.float32)
        out.append({"image_id": i + 1, "height": 240, "width": 240, "boxes": boxes,
                    "labels": rng.integers(0, 8, size=n), "areas": (wh[:, 0] * wh[:, 1]).astype(np.float32),
                    "iscrowd": np.zeros(n, np.int64)})
    return out


def _noisy_predictions(targets: list[dict], seed: int = 1) -> list[dict]:
    rng = np.random.default_rng(seed)
    preds = []
    for t in targets:
        n = len(t["labels"])
        keep = rng.random(n) < 0.8
        boxes = t["boxes"][keep] + rng.normal(0, 4, size=(int(keep.sum()), 4)).astype(np.float32)
        labels = t["labels"][keep].copy()
        flip = rng.random(len(labels)) < 0.15
        labels[flip] = (labels[flip] + 1) % 8
        extra = rng.uniform(0, 200, size=(2, 2))
        boxes = np.concatenate([boxes, np.concatenate([extra, extra + 30], 1).astype(np.float32)])
        labels = np.concatenate([labels, rng.integers(0, 8, size=2)])
        preds.append({"boxes": boxes, "scores": rng.uniform(0.05, 1.0, size=len(labels)).astype(np.float32),
                      "labels": labels})
    return preds


def _evaluate(targets, preds) -> dict:
    ev = CocoEvaluator(CLASS_NAMES)
    for t, p in zip(targets, preds, strict=True):
        ev.add(str(t["image_id"]), p, t)
    return ev.compute()


def _pycocotools_reference(targets, preds, tmp_path) -> tuple[np.ndarray, np.ndarray]:
    """pycocotools straight from files, the way its README runs it."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for t, p in zip(targets, preds, strict=True):
        images.append({"id": t["image_id"], "height": t["height"], "width": t["width"]})
        for b, lab, area in zip(t["boxes"], t["labels"], t["areas"], strict=True):
            anns.append({"id": len(anns) + 1, "image_id": t["image_id"], "category_id": int(lab) + 1,
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                         "area": float(area), "iscrowd": 0})
        for b, s, lab in zip(p["boxes"], p["scores"], p["labels"], strict=True):
            dets.append({"image_id": t["image_id"], "category_id": int(lab) + 1, "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    gt_file, dt_file = tmp_path / "gt.json", tmp_path / "dt.json"
    gt_file.write_text(json.dumps({"images": images, "annotations": anns,
                                   "categories": [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]}))
    dt_file.write_text(json.dumps(dets))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(gt_file))
        ev = COCOeval(gt, gt.loadRes(str(dt_file)), "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev.stats, ev.eval["precision"]


def test_equals_pycocotools(tmp_path):
    targets = _targets()
    preds = _noisy_predictions(targets)
    ours = _evaluate(targets, preds)
    stats, precision = _pycocotools_reference(targets, preds, tmp_path)
    assert 0.05 < ours["mAP50"] < 1.0  # a non-trivial case
    assert ours["mAP"] == pytest.approx(stats[0], abs=1e-12)
    assert ours["mAP50"] == pytest.approx(stats[1], abs=1e-12)
    assert ours["mAP75"] == pytest.approx(stats[2], abs=1e-12)
    for k, name in enumerate(CLASS_NAMES):
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            assert ours["per_class_AP"][name] == pytest.approx(p[p > -1].mean(), abs=1e-12)
        else:
            assert name not in ours["per_class_AP"]
    # the COCO mean is the mean of the per-class values
    assert ours["mAP"] == pytest.approx(np.mean(list(ours["per_class_AP"].values())), abs=1e-9)


def test_perfect_detections_score_one():
    targets = _targets()
    preds = [{"boxes": t["boxes"], "scores": np.ones(len(t["labels"]), np.float32), "labels": t["labels"]}
             for t in targets]
    m = _evaluate(targets, preds)
    assert m["mAP"] == pytest.approx(1.0) and m["mAP50"] == pytest.approx(1.0) and m["mAP75"] == pytest.approx(1.0)
    assert all(v == pytest.approx(1.0) for v in m["per_class_AP"].values())


def test_no_detections_score_zero():
    targets = _targets()
    empty = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32), "labels": np.zeros(0, np.int64)}
    m = _evaluate(targets, [empty] * len(targets))
    assert m["mAP"] == 0.0 and m["mAP50"] == 0.0 and m["mAP75"] == 0.0
    assert m["per_class_AP"] and all(v == 0.0 for v in m["per_class_AP"].values())
    json.dumps(m)


def test_result_is_json_ready_and_headline_present():
    targets = _targets()
    m = _evaluate(targets, _noisy_predictions(targets))
    json.dumps(m)
    assert CocoEvaluator.headline in m
    assert {"mAP", "mAP50", "mAP75", "per_class_AP"} <= set(m)


def test_nothing_added():
    m = CocoEvaluator(CLASS_NAMES).compute()
    assert m["mAP"] == 0.0 and m["counts"]["images"] == 0


def _many(n_images: int, seed: int) -> tuple[list[dict], list[dict]]:
    targets = _targets(n_images, seed)
    for t in targets[::7]:  # a few crowd regions: COCOeval's ignore rules
        t["iscrowd"] = t["iscrowd"].copy()
        t["iscrowd"][0] = 1
    return targets, _noisy_predictions(targets, seed + 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_faster_coco_eval_equals_pycocotools_exactly(seed):
    """The fast engine (used when importable) reports pycocotools' numbers: equal up to
    the last bit of a float64 (its C++ accumulate rounds a few precision-table entries
    differently by 2e-16; seen as a 1-ulp difference in one summary value of one seed)."""
    pytest.importorskip("faster_coco_eval")
    targets, preds = _many(300, seed)
    results = {}
    for engine in ("pycocotools", "faster-coco-eval"):
        ev = CocoEvaluator(CLASS_NAMES, engine=engine)
        for t, p in zip(targets, preds, strict=True):
            ev.add(str(t["image_id"]), p, t)
        results[engine] = ev.compute()
    ref, fast = results["pycocotools"], results["faster-coco-eval"]
    for key in ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large"):
        assert (key in ref) == (key in fast)
        if key in ref:
            assert fast[key] == pytest.approx(ref[key], rel=0, abs=1e-15), key
    assert fast["counts"] == ref["counts"]
    assert fast["per_class_AP"].keys() == ref["per_class_AP"].keys()
    for table in ("per_class_AP", "per_class_AP50"):
        for name, value in ref[table].items():
            assert fast[table][name] == pytest.approx(value, rel=0, abs=1e-15), (table, name)


def test_engine_choice():
    from projects.YOLOX_opt_elan.metrics import coco_engine

    with pytest.raises(ValueError, match="engine"):
        coco_engine("detectron")
    coco, coco_eval = coco_engine("pycocotools")
    assert coco_eval.__module__.startswith("pycocotools")


def _pycocotools_in_memory(targets, preds) -> object:
    """COCOeval itself on the same data, an empty result set built by hand when there are
    no detections (loadRes refuses an empty list)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, dets = [], [], []
    for t, p in zip(targets, preds, strict=True):
        images.append({"id": t["image_id"], "height": t["height"], "width": t["width"]})
        for b, lab, area, crowd in zip(t["boxes"], t["labels"], t["areas"], t["iscrowd"], strict=True):
            anns.append({"id": len(anns) + 1, "image_id": t["image_id"], "category_id": int(lab) + 1,
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                         "area": float(area), "iscrowd": int(crowd)})
        for b, s, lab in zip(p["boxes"], p["scores"], p["labels"], strict=True):
            dets.append({"image_id": t["image_id"], "category_id": int(lab) + 1, "score": float(s),
                         "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
    cats = [{"id": i + 1, "name": n} for i, n in enumerate(CLASS_NAMES)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        if dets:
            dt = gt.loadRes(dets)
        else:
            dt = COCO()
            dt.dataset = {"images": images, "annotations": [], "categories": cats}
            dt.createIndex()
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return ev


def _assert_equals_cocoeval(m: dict, ev) -> None:
    names = ("mAP", "mAP50", "mAP75", "mAP_small", "mAP_medium", "mAP_large")
    for name, value in zip(names, ev.stats[:6], strict=True):
        if value < 0:
            assert name not in m, name
        else:
            assert m[name] == pytest.approx(value, rel=0, abs=1e-9), name
    precision = ev.eval["precision"]
    for k, name in enumerate(CLASS_NAMES):
        p = precision[:, :, k, 0, -1]
        if (p > -1).any():
            assert m["per_class_AP"][name] == pytest.approx(p[p > -1].mean(), rel=0, abs=1e-9), name
            assert m["per_class_AP50"][name] == pytest.approx(p[0][p[0] > -1].mean(), rel=0, abs=1e-9), name
        else:  # COCOeval's -1: no evaluable ground truth
            assert name not in m["per_class_AP"] and name not in m["per_class_AP50"]
    if m["per_class_AP"]:
        assert m["mAP"] == pytest.approx(np.mean(list(m["per_class_AP"].values())), rel=0, abs=1e-9)


@pytest.mark.parametrize("engine", ["pycocotools", "faster-coco-eval"])
def test_crowd_only_class_is_left_out_as_cocoeval_does(engine):
    if engine == "faster-coco-eval":
        pytest.importorskip("faster_coco_eval")
    targets = _targets()
    # every GT of class 2 becomes a crowd region; predictions of class 2 stay
    for t in targets:
        t["iscrowd"] = (t["labels"] == 2).astype(np.int64)
    assert any((t["labels"] == 2).any() for t in targets)
    preds = _noisy_predictions(targets)
    ev = CocoEvaluator(CLASS_NAMES, engine=engine)
    for t, p in zip(targets, preds, strict=True):
        ev.add(str(t["image_id"]), p, t)
    m = ev.compute()
    assert CLASS_NAMES[2] not in m["per_class_AP"]
    _assert_equals_cocoeval(m, _pycocotools_in_memory(targets, preds))


@pytest.mark.parametrize("engine", ["pycocotools", "faster-coco-eval"])
def test_no_detections_report_what_cocoeval_reports(engine):
    if engine == "faster-coco-eval":
        pytest.importorskip("faster_coco_eval")
    targets = _targets()
    empty = {"boxes": np.zeros((0, 4), np.float32), "scores": np.zeros(0, np.float32), "labels": np.zeros(0, np.int64)}
    ev = CocoEvaluator(CLASS_NAMES, engine=engine)
    for t in targets:
        ev.add(str(t["image_id"]), empty, t)
    m = ev.compute()
    ref = _pycocotools_in_memory(targets, [empty] * len(targets))
    # the size breakdown is there wherever COCOeval has ground truth of that size
    assert {"mAP_small", "mAP_medium"} <= set(m)  # (no GT is large here: COCOeval -1, left out)
    _assert_equals_cocoeval(m, ref)


def test_per_class_and_mean_equal_cocoeval_with_crowd_regions():
    targets, preds = _many(60, 5)
    ev = CocoEvaluator(CLASS_NAMES, engine="pycocotools")
    for t, p in zip(targets, preds, strict=True):
        ev.add(str(t["image_id"]), p, t)
    _assert_equals_cocoeval(ev.compute(), _pycocotools_in_memory(targets, preds))
