"""Seeded synthetic evaluator inputs for P4: 2D detections (COCO) and 3D frames."""

from __future__ import annotations

from typing import Any

import numpy as np


def detections_2d(num_images: int, num_classes: int = 8, seed: int = 0) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(prediction, target) per image in the YOLOX project's compact form: boxes xyxy,
    scores, labels; targets with image_id, size, boxes, labels, areas, iscrowd."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_images):
        h, w = 192, 192
        g = int(rng.integers(0, 12))
        wh = rng.uniform(4, 120, (g, 2))
        xy = rng.uniform(0, 1, (g, 2)) * (np.array([w, h]) - wh)
        gt = np.concatenate([xy, xy + wh], axis=1)
        glabels = rng.integers(0, num_classes, g)
        crowd = (rng.random(g) < 0.03).astype(np.int64)
        # detections: jittered copies of most GT, some with a wrong class, plus clutter
        keep = rng.random(g) < 0.85
        jit = gt[keep] + rng.normal(0, 3, (int(keep.sum()), 4))
        dlabels = np.where(rng.random(len(jit)) < 0.1, rng.integers(0, num_classes, len(jit)), glabels[keep])
        f = int(rng.integers(0, 8))
        fwh = rng.uniform(4, 100, (f, 2))
        fxy = rng.uniform(0, 1, (f, 2)) * (np.array([w, h]) - fwh)
        boxes = np.concatenate([jit, np.concatenate([fxy, fxy + fwh], axis=1)])
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        labels = np.concatenate([dlabels, rng.integers(0, num_classes, f)])
        scores = np.concatenate([rng.uniform(0.3, 1.0, len(jit)), rng.uniform(0.01, 0.6, f)])
        pred = {"boxes": boxes.astype(np.float32), "scores": scores.astype(np.float32), "labels": labels.astype(np.int64)}
        target = {"image_id": i + 1, "height": h, "width": w, "boxes": gt.astype(np.float32),
                  "labels": glabels, "areas": (wh[:, 0] * wh[:, 1]).astype(np.float64), "iscrowd": crowd}
        out.append((pred, target))
    return out


def frames_3d(num_frames: int, num_classes: int = 5, seed: int = 0) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(prediction, target) per frame in the CenterPoint project's compact form: boxes
    (N, 7) x y z dx dy dz yaw, scores, labels."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(num_frames):
        g = int(rng.integers(5, 30))
        gt = np.concatenate([rng.uniform(-25, 25, (g, 2)), rng.uniform(-1, 1, (g, 1)),
                             rng.uniform(0.5, 5, (g, 3)), rng.uniform(-np.pi, np.pi, (g, 1))], axis=1)
        glabels = rng.integers(0, num_classes, g)
        keep = rng.random(g) < 0.8
        det = gt[keep].copy()
        det[:, :2] += rng.normal(0, 0.8, (len(det), 2))
        det[:, 6] += rng.normal(0, 0.3, len(det))
        dlabels = np.where(rng.random(len(det)) < 0.1, rng.integers(0, num_classes, len(det)), glabels[keep])
        f = int(rng.integers(0, 20))
        fp = np.concatenate([rng.uniform(-25, 25, (f, 2)), rng.uniform(-1, 1, (f, 1)),
                             rng.uniform(0.5, 5, (f, 3)), rng.uniform(-np.pi, np.pi, (f, 1))], axis=1)
        boxes = np.concatenate([det, fp]).astype(np.float32)
        labels = np.concatenate([dlabels, rng.integers(0, num_classes, f)]).astype(np.int64)
        scores = np.concatenate([rng.uniform(0.2, 1.0, len(det)), rng.uniform(0.1, 0.7, f)]).astype(np.float32)
        out.append(({"boxes": boxes, "scores": scores, "labels": labels},
                    {"boxes": gt.astype(np.float32), "labels": glabels.astype(np.int64)}))
    return out
