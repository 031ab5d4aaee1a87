"""YOLOX_opt_elan pre/postprocessing: letterbox, priors, decode, NMS."""

from __future__ import annotations

import math

import numpy as np

from projects.YOLOX_opt_elan.pipeline import (
    PostprocessParams,
    batched_nms,
    decode_boxes,
    letterbox,
    letterbox_geometry,
    nms,
    postprocess,
    priors,
    resize_bilinear,
)


def test_letterbox_landscape_pads_bottom():
    img = np.full((180, 240, 3), 50, np.uint8)
    img[..., 0] = 10  # B
    arr, geo = letterbox(img, (192, 192))
    assert arr.shape == (1, 3, 192, 192) and arr.dtype == np.float32
    assert geo.scale == 0.8 and geo.resized_hw == (144, 192) and geo.scale_xy == (0.8, 0.8)
    assert np.all(arr[0, :, 144:, :] == 114)
    assert np.all(arr[0, 0, :144] == 10) and np.all(arr[0, 1:, :144] == 50)  # BGR kept, no mean/std


def test_letterbox_portrait_pads_right():
    arr, geo = letterbox(np.zeros((240, 180, 3), np.uint8), (192, 192))
    assert geo.resized_hw == (192, 144)
    assert np.all(arr[0, :, :, 144:] == 114) and np.all(arr[0, :, :, :144] == 0)


def test_letterbox_geometry_full_size():
    geo = letterbox_geometry((1080, 1920), (960, 960))
    assert geo.scale == 0.5 and geo.resized_hw == (540, 960)
    geo = letterbox_geometry((375, 1242), (960, 960))  # rounding: scale per axis is kept
    assert geo.resized_hw == (290, 960)
    assert math.isclose(geo.scale_xy[1], 290 / 375)


def test_bilinear_resize():
    const = np.full((7, 9, 3), 77, np.uint8)
    np.testing.assert_allclose(resize_bilinear(const, (13, 4)), 77, atol=1e-4)
    img = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    half = resize_bilinear(img, (2, 2))[..., 0]
    # 2x downscale with half-pixel centres averages each 2x2 block
    np.testing.assert_allclose(half, [[2.5, 4.5], [10.5, 12.5]])
    np.testing.assert_array_equal(resize_bilinear(img, (4, 4)), img.astype(np.float32))


def test_priors_order():
    grid, stride = priors((64, 96), (8, 16, 32))
    assert len(grid) == 8 * 12 + 4 * 6 + 2 * 3
    np.testing.assert_array_equal(grid[:3], [[0, 0], [1, 0], [2, 0]])
    np.testing.assert_array_equal(grid[12], [0, 1])  # row-major: next row after 12 columns
    assert stride[0] == 8 and stride[96] == 16 and stride[-1] == 32
    np.testing.assert_array_equal(grid[-1], [2, 1])


def test_decode_hand_made():
    raw = np.array([[0.5, 0.5, math.log(2.0), 0.0]], np.float32)
    boxes = decode_boxes(raw, np.array([[3.0, 2.0]], np.float32), np.array([8.0], np.float32))
    # centre ((0.5 + 3) * 8, (0.5 + 2) * 8) = (28, 20); size (2 * 8, 1 * 8)
    np.testing.assert_allclose(boxes, [[20, 16, 36, 24]], atol=1e-5)


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [0, 0, 10, 10]], np.float32)
    scores = np.array([0.9, 0.8, 0.7], np.float32)
    assert nms(boxes, scores, 0.65).tolist() == [0]
    assert batched_nms(boxes, scores, np.array([0, 0, 1]), 0.65).tolist() == [0, 2]
    assert batched_nms(boxes, scores, np.array([0, 1, 2]), 0.65).tolist() == [0, 1, 2]
    # IoU(0, 1) = 81 / 119 = 0.68: kept apart at a higher threshold
    assert nms(boxes[:2], scores[:2], 0.7).tolist() == [0, 1]
    assert batched_nms(np.zeros((0, 4)), np.zeros(0), np.zeros(0), 0.65).tolist() == []


def test_nms_max_keep():
    boxes = np.array([[i * 20, 0, i * 20 + 10, 10] for i in range(10)], np.float32)
    keep = nms(boxes, np.linspace(0.9, 0.1, 10), 0.5, max_keep=3)
    assert keep.tolist() == [0, 1, 2]


def _params(**kw):
    base = dict(input_hw=(64, 64), strides=(8, 16, 32), num_classes=8, score_threshold=0.3,
                nms_iou_threshold=0.65, max_detections=300)
    return PostprocessParams(**{**base, **kw})


def test_postprocess_end_to_end_on_hand_tensor():
    a = 64 + 16 + 4
    out = np.zeros((1, a, 13), np.float32)
    out[0, :, 4] = 0.01
    # point (x=2, y=1) of stride 8 -> index 1 * 8 + 2 = 10; car (class 1), score 0.9 * 0.8
    out[0, 10, :4] = [0.5, 0.5, math.log(2.0), math.log(2.0)]
    out[0, 10, 4] = 0.9
    out[0, 10, 6] = 0.8
    # a second, weaker overlapping car box is suppressed; a bus at the same place is kept
    out[0, 11, :4] = [-0.5, 0.5, math.log(2.0), math.log(2.0)]
    out[0, 11, 4], out[0, 11, 6] = 0.9, 0.7
    out[0, 12, :4] = [-1.5, 0.5, math.log(2.0), math.log(2.0)]
    out[0, 12, 4], out[0, 12, 8] = 0.9, 0.5
    geo = letterbox_geometry((32, 32), (64, 64))  # scale 2
    pred = postprocess(out, geo, _params())
    assert pred["labels"].tolist() == [1, 3]
    np.testing.assert_allclose(pred["scores"], [0.72, 0.45], rtol=1e-6)
    # centre (20, 12), size 16 in network pixels -> /2 in the original image
    np.testing.assert_allclose(pred["boxes"][0], [6, 2, 14, 10], atol=1e-5)
    assert pred["boxes"].dtype == np.float32 and pred["labels"].dtype == np.int64


def test_postprocess_threshold_and_cap():
    a = 64 + 16 + 4
    out = np.zeros((a, 13), np.float32)
    out[:, 4] = 1.0
    out[:, 5] = np.linspace(0.0, 1.0, a)  # unknown class, scores spread
    geo = letterbox_geometry((64, 64), (64, 64))
    pred = postprocess(out, geo, _params(score_threshold=0.5, max_detections=5))
    assert len(pred["scores"]) == 5 and np.all(pred["scores"] >= 0.5)
    assert np.all(np.diff(pred["scores"]) <= 0)
    empty = postprocess(np.zeros((a, 13), np.float32), geo, _params())
    assert empty["boxes"].shape == (0, 4)


def test_postprocess_rejects_wrong_shape():
    import pytest

    with pytest.raises(ValueError, match="expected"):
        postprocess(np.zeros((10, 13), np.float32), letterbox_geometry((64, 64), (64, 64)), _params())
