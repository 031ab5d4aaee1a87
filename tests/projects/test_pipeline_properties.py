"""Every project's pipeline on random *valid* inputs: never a crash, always a
well-formed prediction (hypothesis; the same pipeline code every backend runs)."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from awml_harness.config.load import load_deploy_config
from awml_harness.config.schema import Backend, BackendSpec
from awml_harness.project import Prepared
from awml_harness.session import ProjectContext, RunOptions

REPO = Path(__file__).resolve().parents[2]
PYTORCH = BackendSpec(Backend.PYTORCH, "cpu")
SLOW = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def context(project: str) -> ProjectContext:
    cfg = load_deploy_config(REPO / "projects" / project / "configs" / "deploy_config.py", base_dir=REPO)
    return ProjectContext(cfg, RunOptions())


@pytest.fixture(scope="module")
def centerpoint() -> ProjectContext:
    return context("CenterPoint")


@pytest.fixture(scope="module")
def yolox() -> ProjectContext:
    return context("YOLOX_opt_elan")


# -- CenterPoint: point clouds ------------------------------------------------------------
def _cloud(kind: str, n: int, rng: np.random.Generator, s) -> np.ndarray:
    lo, hi = np.asarray(s.point_cloud_range[:3]), np.asarray(s.point_cloud_range[3:])
    f = s.num_point_features
    if kind == "empty":
        return np.zeros((0, f), np.float32)
    if kind == "outside":  # every point beyond the range
        xyz = hi + 1.0 + rng.random((n, 3)) * 50
    elif kind == "dense":  # more occupied voxels than max_voxels can hold
        nx, ny, _ = s.grid_size
        cells = rng.permutation(nx * ny)[: min(nx * ny, s.max_voxels + 500)]
        xy = np.stack([cells % nx, cells // nx], 1) + 0.5
        xyz = np.concatenate([lo[:2] + xy * np.asarray(s.voxel_size[:2]), np.full((len(cells), 1), lo[2] + 0.5)], 1)
    else:  # "mixed": inside, outside and NaN rows together
        xyz = lo + rng.random((n, 3)) * (hi - lo) * 1.4 - (hi - lo) * 0.2
    pts = np.concatenate([xyz, rng.random((len(xyz), f - 3))], 1).astype(np.float32)
    if kind == "mixed" and len(pts):
        pts[rng.random(len(pts)) < 0.1, rng.integers(0, 3)] = np.nan
    return pts


def _check_3d(pred, s) -> None:
    boxes, scores, labels = (np.asarray(pred[k]) for k in ("boxes", "scores", "labels"))
    assert boxes.ndim == 2 and boxes.shape[1] >= 7 and len(boxes) == len(scores) == len(labels)
    assert len(boxes) <= s.post_max_size
    assert np.isfinite(boxes).all() and np.isfinite(scores).all()
    assert ((labels >= 0) & (labels < len(s.class_names))).all()
    assert ((scores >= 0) & (scores <= 1)).all()


@SLOW
@given(kind=st.sampled_from(["empty", "outside", "dense", "mixed"]), n=st.integers(0, 3000), seed=st.integers(0, 2**16))
def test_centerpoint_pipeline_never_crashes(centerpoint, kind, n, seed):
    from projects.CenterPoint.data import Sample

    s = centerpoint.adapter.settings
    points = _cloud(kind, n, np.random.default_rng(seed), s)
    sample = Sample("prop", points, np.zeros((0, 7), np.float32), np.zeros(0, np.int64))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prepared = centerpoint.adapter.preprocess(sample)
    if kind == "mixed" and np.isnan(points).any():
        assert any("NaN" in str(w.message) for w in caught), "NaN points must be dropped with a warning"
    assert np.isfinite(prepared.inputs["points"]).all()
    result = centerpoint.run(PYTORCH, prepared)
    _check_3d(result.prediction, s)
    if kind in ("empty", "outside"):
        assert len(result.prediction["boxes"]) == 0 or result.outputs["heatmap"].shape[0] == 1


def test_centerpoint_voxelize_respects_max_voxels(centerpoint):
    s = centerpoint.adapter.settings
    pts = _cloud("dense", 0, np.random.default_rng(0), s)
    features, coords = centerpoint.adapter.voxel_inputs(pts)
    assert len(features) == len(coords) == s.max_voxels


# -- YOLOX: images of any size and aspect ratio -------------------------------------------
@SLOW
@given(h=st.integers(1, 400), w=st.integers(1, 400), seed=st.integers(0, 2**16),
       fill=st.sampled_from(["noise", "black", "white"]))
def test_yolox_pipeline_any_image_size(yolox, h, w, seed, fill):
    from projects.YOLOX_opt_elan.pipeline import letterbox

    s = yolox.adapter.settings
    rng = np.random.default_rng(seed)
    image = {"noise": rng.integers(0, 256, (h, w, 3)), "black": np.zeros((h, w, 3)),
             "white": np.full((h, w, 3), 255)}[fill].astype(np.uint8)
    images, geo = letterbox(image, s.input_size, s.pad_value)
    assert images.shape == (1, 3, *s.input_size) and np.isfinite(images).all()
    assert 0 <= images.min() and images.max() <= 255
    prepared = Prepared("prop", {"images": images}, {"letterbox": geo, "image_id": 0})
    pred = yolox.run(PYTORCH, prepared).prediction
    boxes, scores, labels = pred["boxes"], pred["scores"], pred["labels"]
    assert boxes.shape == (len(scores), 4) and len(labels) == len(scores) <= s.max_detections
    assert (boxes[:, 0] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 1] >= 0).all() and (boxes[:, 3] <= h).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()
    assert ((scores >= s.score_threshold) & (scores <= 1)).all()
    assert ((labels >= 0) & (labels < s.num_classes)).all()


@SLOW
@given(seed=st.integers(0, 2**16), scale=st.sampled_from([0.0, 1.0, 50.0]))
def test_yolox_postprocess_on_arbitrary_raw_outputs(yolox, seed, scale):
    from projects.YOLOX_opt_elan.pipeline import letterbox_geometry, num_priors, postprocess

    s = yolox.adapter.settings
    rng = np.random.default_rng(seed)
    a = num_priors(s.input_size, s.strides)
    raw = np.concatenate([rng.normal(0, scale, (1, a, 4)), rng.random((1, a, 1 + s.num_classes))], 2)
    geo = letterbox_geometry((123, 457), s.input_size)
    pred = postprocess(raw.astype(np.float32), geo, yolox.adapter._post_params)
    assert np.isfinite(pred["boxes"]).all() and len(pred["scores"]) <= s.max_detections


# -- Calibration: degenerate extrinsics ----------------------------------------------------
matrices = st.one_of(
    st.just(np.zeros((4, 4))),  # everything collapses onto the camera centre
    st.just(np.eye(4)),
    st.just(np.diag([1.0, 1.0, -1.0, 1.0])),  # every point behind the camera
    st.lists(st.floats(-1e3, 1e3), min_size=16, max_size=16).map(lambda v: np.asarray(v).reshape(4, 4)),
)


@settings(max_examples=60, deadline=None)
@given(lidar2cam=matrices, n=st.integers(0, 500), seed=st.integers(0, 2**16), radius=st.integers(0, 2))
def test_calibration_input_with_degenerate_extrinsics(lidar2cam, n, seed, radius):
    from projects.CalibrationStatusClassification.data import ProjectionConfig, build_input

    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (24, 32, 3), dtype=np.uint8)
    points = np.concatenate([rng.normal(0, 20, (n, 3)), rng.random((n, 1)) * 255], 1).astype(np.float32)
    cam2img = np.array([[20.0, 0, 16], [0, 20.0, 12], [0, 0, 1]])
    with np.errstate(all="ignore"):
        x = build_input(image, points, cam2img, lidar2cam, ProjectionConfig(radius=radius))
    assert x.shape == (5, 24, 32) and x.dtype == np.float32
    assert np.isfinite(x).all() and x.min() >= 0 and x.max() <= 1
