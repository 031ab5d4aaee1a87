"""CenterPoint pipeline pieces: voxelization, decoration, scatter, decode, circle NMS,
settings derivation and the rot_y_axis_reference layout. Pure numpy except where a
test needs the model."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from projects.CenterPoint.decode import circle_nms, decode, from_rot_y_axis_reference
from projects.CenterPoint.settings import CenterPointSettings
from projects.CenterPoint.voxelize import decorate, scatter, voxelize

RANGE = (0.0, 0.0, -2.0, 4.0, 4.0, 2.0)
VOXEL = (1.0, 1.0, 4.0)

SMALL = CenterPointSettings(
    class_names=("car", "pedestrian"),
    point_cloud_range=(-4.0, -4.0, -2.0, 4.0, 4.0, 2.0),
    voxel_size=(0.5, 0.5, 4.0),
    max_points_per_voxel=4,
    max_voxels=64,
    pfn_channels=(8,),
    backbone_layer_nums=(1, 1),
    backbone_out_channels=(8, 16),
    backbone_strides=(1, 2),
    neck_out_channels=(8, 8),
    neck_upsample_strides=(1, 2),
    share_conv_channel=8,
    head_conv=8,
    min_radius=(1.0,),
    score_threshold=0.3,
)


def pts(*rows: tuple[float, ...]) -> np.ndarray:
    return np.asarray(rows, np.float32)


# -- voxelization ---------------------------------------------------------------------
def test_voxel_order_is_first_seen_and_points_keep_cloud_order() -> None:
    cloud = pts((2.5, 0.5, 0, 1), (0.5, 0.5, 0, 2), (2.6, 0.4, 0, 3), (0.2, 3.5, 0, 4))
    v = voxelize(cloud, RANGE, VOXEL, max_points=4, max_voxels=10)
    assert v.coords.tolist() == [[0, 0, 2], [0, 0, 0], [0, 3, 0]]  # (z, y, x), first-seen order
    assert v.num_points.tolist() == [2, 1, 1]
    assert v.voxels[0, :2, 3].tolist() == [1, 3]  # cloud order inside the voxel
    assert not v.voxels[0, 2:].any()  # padding is zero


def test_voxelization_is_deterministic() -> None:
    rng = np.random.default_rng(0)
    cloud = rng.uniform(0, 4, (500, 4)).astype(np.float32)
    a = voxelize(cloud, RANGE, VOXEL, 5, 8)
    b = voxelize(cloud.copy(), RANGE, VOXEL, 5, 8)
    for x, y in zip((a.voxels, a.num_points, a.coords), (b.voxels, b.num_points, b.coords), strict=True):
        np.testing.assert_array_equal(x, y)


def test_max_points_and_max_voxels_limits() -> None:
    cloud = np.concatenate([np.full((7, 4), 0.5, np.float32), pts((1.5, 0.5, 0, 0), (2.5, 0.5, 0, 0))])
    cloud[:, 3] = np.arange(len(cloud))
    v = voxelize(cloud, RANGE, VOXEL, max_points=3, max_voxels=2)
    assert len(v) == 2 and v.voxels.shape == (2, 3, 4)
    assert v.num_points.tolist() == [3, 1]
    assert v.voxels[0, :, 3].tolist() == [0, 1, 2]  # the first three points of the voxel
    assert v.coords[:, 2].tolist() == [0, 1]  # the third voxel (x=2) is dropped


def test_out_of_range_points_are_dropped_including_upper_edge() -> None:
    cloud = pts((-0.1, 1, 0, 0), (4.0, 1, 0, 0), (1, 1, 2.5, 0), (1, 1, 0, 0), (3.999, 3.999, 1.9, 0))
    v = voxelize(cloud, RANGE, VOXEL, 4, 10)
    assert v.coords.tolist() == [[0, 1, 1], [0, 3, 3]]


def loop_voxelize(
    cloud: np.ndarray, rng: tuple[float, ...], size: tuple[float, ...], max_points: int, max_voxels: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hard-voxelization rules as a plain loop over points (first-seen voxels, first points)."""
    lo, hi, sz = np.asarray(rng[:3]), np.asarray(rng[3:]), np.asarray(size, np.float64)
    grid = np.round((hi - lo) / sz).astype(np.int64)
    slots: dict[tuple[int, int, int], list[np.ndarray]] = {}
    for p in cloud.astype(np.float32):
        if not np.isfinite(p).all():
            continue
        idx = tuple(int(i) for i in np.floor((p[:3].astype(np.float64) - lo) / sz))
        if not all(0 <= i < g for i, g in zip(idx, grid, strict=True)):
            continue
        if idx not in slots and len(slots) == max_voxels:
            continue
        slots.setdefault(idx, []).append(p)
    voxels = np.zeros((len(slots), max_points, cloud.shape[1]), np.float32)
    for v, rows in enumerate(slots.values()):
        voxels[v, : min(len(rows), max_points)] = rows[:max_points]
    counts = np.array([min(len(r), max_points) for r in slots.values()], np.int32)
    coords = np.array([k[::-1] for k in slots], np.int32).reshape(-1, 3)
    return voxels, counts, coords


@pytest.mark.parametrize("voxel", [(1.0, 1.0, 4.0), (0.05, 0.05, 0.05), (1e-3, 1e-3, 1e-3)])
def test_voxelize_equals_a_plain_loop(voxel: tuple[float, float, float]) -> None:
    # grids of 16, 80^3 (> 2^16 cells: two radix passes) and 4000^3 (> 2^32: three passes)
    rng = np.random.default_rng(7)
    cloud = rng.uniform(-0.5, 4.5, (3000, 4)).astype(np.float32)
    cloud[:600] = cloud[600:1200] * np.float32(0.999)  # crowded voxels
    cloud[rng.integers(0, 3000, 5), 1] = np.nan
    with pytest.warns(RuntimeWarning, match="NaN"):
        v = voxelize(cloud, RANGE, voxel, 3, 1000)
    voxels, counts, coords = loop_voxelize(cloud, RANGE, voxel, 3, 1000)
    np.testing.assert_array_equal(v.voxels, voxels)
    np.testing.assert_array_equal(v.num_points, counts)
    np.testing.assert_array_equal(v.coords, coords)


def test_empty_cloud_gives_empty_arrays() -> None:
    v = voxelize(np.zeros((0, 5), np.float32), RANGE, VOXEL, 4, 10)
    assert v.voxels.shape == (0, 4, 5) and v.coords.shape == (0, 3) and len(v) == 0
    assert decorate(v, RANGE, VOXEL).shape == (0, 4, 11)
    assert scatter(np.zeros((0, 1, 6), np.float32), v.coords, (4, 4)).shape == (1, 6, 4, 4)


def test_nan_points_are_dropped_with_a_warning() -> None:
    cloud = pts((0.5, 0.5, 0, 1), (np.nan, 0.5, 0, 1), (0.5, 0.5, 0, np.inf))
    with pytest.warns(RuntimeWarning, match="2 of 3 points"):
        v = voxelize(cloud, RANGE, VOXEL, 4, 10)
    assert v.num_points.tolist() == [1]


def test_voxelize_300_points_per_cell_vectorized_matches_loop() -> None:
    rng = np.random.default_rng(3)
    cloud = rng.uniform(-0.5, 4.5, (400, 4)).astype(np.float32)
    v = voxelize(cloud, RANGE, VOXEL, max_points=3, max_voxels=6)
    # reference: a plain loop with the documented rules
    seen: dict[tuple[int, int], list[np.ndarray]] = {}
    for p in cloud:
        if not (0 <= p[0] < 4 and 0 <= p[1] < 4 and -2 <= p[2] < 2):
            continue
        key = (int(p[1]), int(p[0]))
        if key not in seen and len(seen) == 6:
            continue
        bucket = seen.setdefault(key, [])
        if len(bucket) < 3:
            bucket.append(p)
    assert [tuple(c[1:]) for c in v.coords.tolist()] == list(seen)
    for i, bucket in enumerate(seen.values()):
        np.testing.assert_array_equal(v.voxels[i, : len(bucket)], np.stack(bucket))


# -- decoration and C -----------------------------------------------------------------
@pytest.mark.parametrize("num_feats", [4, 5])
def test_decorated_width_is_point_features_plus_six(num_feats: int) -> None:
    s = dataclasses.replace(SMALL, num_point_features=num_feats)
    assert s.in_channels == num_feats + 6
    cloud = np.zeros((3, num_feats), np.float32)
    cloud[:, :3] = [[0.5, 0.5, 0.0], [0.7, 0.5, 0.0], [2.5, 2.5, 1.0]]
    v = voxelize(cloud, RANGE, VOXEL, 4, 10)
    assert decorate(v, RANGE, VOXEL).shape == (2, 4, s.in_channels)


def test_decoration_offsets_and_zeroed_padding() -> None:
    v = voxelize(pts((0.2, 0.4, 1.0, 9), (0.6, 0.8, -1.0, 9)), RANGE, VOXEL, 3, 10)
    f = decorate(v, RANGE, VOXEL)
    np.testing.assert_allclose(f[0, 0], [0.2, 0.4, 1.0, 9, -0.2, -0.2, 1.0, -0.3, -0.1, 1.0], atol=1e-6)
    np.testing.assert_allclose(f[0, 1, 4:7], [0.2, 0.2, -1.0], atol=1e-6)  # cluster offset
    np.testing.assert_allclose(f[0, 1, 7:], [0.1, 0.3, -1.0], atol=1e-6)  # voxel center (0.5, 0.5, 0)
    assert not f[0, 2].any()


def test_scatter_places_pillars_at_their_cells() -> None:
    feats = np.arange(6, dtype=np.float32).reshape(2, 1, 3)
    coords = np.array([[0, 1, 3], [0, 2, 0]], np.int32)  # (z, y, x)
    canvas = scatter(feats, coords, (4, 3))  # nx=4, ny=3
    assert canvas.shape == (1, 3, 3, 4)
    assert canvas[0, :, 1, 3].tolist() == [0, 1, 2]
    assert canvas[0, :, 2, 0].tolist() == [3, 4, 5]
    assert canvas.sum() == 15


# -- settings -------------------------------------------------------------------------
def test_settings_derive_grid_and_strides() -> None:
    s = CenterPointSettings(
        point_cloud_range=(-122.4, -122.4, -3.0, 122.4, 122.4, 5.0),
        voxel_size=(0.24, 0.24, 8.0),
        num_point_features=5,
        backbone_strides=(1, 2, 2),
        neck_upsample_strides=(0.5, 1, 2),
    )
    s.validate("model_cfg")
    assert (
        s.grid_size == (1020, 1020, 1) and s.in_channels == 11 and s.out_size_factor == 2 and s.head_size == (510, 510)
    )


def test_settings_refuse_strides_that_do_not_divide_the_grid() -> None:
    from awml_harness.config.errors import ConfigError

    s = CenterPointSettings(point_cloud_range=(-122.4, -122.4, -3.0, 122.4, 122.4, 5.0), voxel_size=(0.24, 0.24, 8.0))
    with pytest.raises(ConfigError, match="backbone_strides"):
        s.validate("model_cfg")


# -- decode ---------------------------------------------------------------------------
def head_maps(s: CenterPointSettings) -> dict[str, np.ndarray]:
    h, w = s.head_size
    k = s.num_classes
    return {
        "heatmap": np.full((1, k, h, w), -10.0, np.float32),
        "reg": np.zeros((1, 2, h, w), np.float32),
        "height": np.zeros((1, 1, h, w), np.float32),
        "dim": np.zeros((1, 3, h, w), np.float32),
        "rot": np.zeros((1, 2, h, w), np.float32),
        "vel": np.zeros((1, 2, h, w), np.float32),
    }


def test_decode_hand_made_heatmap() -> None:
    s = SMALL  # 16x16 grid, out_size_factor 1, 0.5 m cells from -4 m
    m = head_maps(s)
    m["heatmap"][0, 1, 3, 5] = 2.0  # pedestrian at row y=3, column x=5
    m["reg"][0, :, 3, 5] = [0.5, 0.25]
    m["height"][0, 0, 3, 5] = 0.5
    m["dim"][0, :, 3, 5] = np.log([4.0, 2.0, 1.0])
    m["rot"][0, :, 3, 5] = [1.0, 0.0]  # sin, cos -> yaw pi/2
    m["heatmap"][0, 0, 10, 10] = -1.0  # sigmoid 0.27 < threshold 0.3
    out = decode(m, s)
    assert out["labels"].tolist() == [1]
    np.testing.assert_allclose(out["scores"], [1 / (1 + np.exp(-2.0))], rtol=1e-6)
    x, y = (5 + 0.5) * 0.5 - 4, (3 + 0.25) * 0.5 - 4
    np.testing.assert_allclose(out["boxes"][0], [x, y, 0.0, 4.0, 2.0, 1.0, np.pi / 2], atol=1e-5)


def test_decode_keeps_post_max_size_best() -> None:
    s = dataclasses.replace(SMALL, post_max_size=3, min_radius=(0.0,))
    m = head_maps(s)
    for i in range(6):
        m["heatmap"][0, 0, 2 * i, 1] = float(i)
    out = decode(m, s)
    assert len(out["scores"]) == 3 and np.all(np.diff(out["scores"]) < 0)
    assert out["scores"][0] == pytest.approx(1 / (1 + np.exp(-5.0)))


def test_circle_nms_suppresses_across_classes_by_squared_distance() -> None:
    centers = np.array([[0, 0], [0.8, 0], [3, 0], [0.3, 0], [1.3, 0.0]], np.float64)
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.6])
    # min_radius is a squared distance: 1.0 -> 1 m. Box 3 (best) suppresses 0 (0.3 m) and 1
    # (0.5 m) whatever their class; 4 lies 1.0 m from 3: dist^2 <= 1.0 suppresses it too.
    assert circle_nms(centers, scores, 1.0, post_max_size=83).tolist() == [3, 2]
    # 0.25 m^2 -> 0.5 m: box 1 at exactly 0.5 m from box 3 goes, box 4 (1.0 m) stays
    assert circle_nms(centers, scores, 0.25, post_max_size=83).tolist() == [3, 2, 4]
    # post_max_size cuts after NMS
    assert circle_nms(centers, scores, 0.25, post_max_size=2).tolist() == [3, 2]


def test_circle_nms_radius_is_squared_not_metres() -> None:
    centers = np.array([[0.0, 0.0], [1.5, 0.0]])
    scores = np.array([0.9, 0.8])
    # 1.5 m apart: kept with min_radius 2.0 m^2 (1.41 m), gone with 2.25 m^2 (1.5 m, <=)
    assert circle_nms(centers, scores, 2.0, post_max_size=83).tolist() == [0, 1]
    assert circle_nms(centers, scores, 2.25, post_max_size=83).tolist() == [0]


def test_circle_nms_chain_suppression_is_greedy() -> None:
    centers = np.array([[0, 0], [0.9, 0], [1.8, 0]], np.float64)
    keep = circle_nms(centers, np.array([0.9, 0.8, 0.7]), 1.0, post_max_size=83)
    assert keep.tolist() == [0, 2]  # 1 is suppressed by 0, so it cannot suppress 2


def test_decode_nms_across_classes_and_strict_threshold() -> None:
    s = dataclasses.replace(SMALL, score_threshold=float(1 / (1 + np.exp(-1.0))))
    m = head_maps(s)
    m["heatmap"][0, 0, 4, 4] = 3.0  # car
    m["heatmap"][0, 1, 4, 5] = 2.0  # pedestrian 0.5 m away: suppressed across classes (0.25 <= 1.0)
    m["heatmap"][0, 1, 12, 12] = 1.0  # score equal to the threshold: dropped (strictly above)
    m["heatmap"][0, 1, 12, 4] = 1.5  # far away: kept
    out = decode(m, s)
    assert out["labels"].tolist() == [0, 1]
    np.testing.assert_allclose(out["scores"], 1 / (1 + np.exp(-np.array([3.0, 1.5]))), rtol=1e-6)
    np.testing.assert_allclose(out["boxes"][:, :2], [[-2.0, -2.0], [-2.0, 2.0]], atol=1e-6)


def test_decode_post_center_range_uses_the_gravity_centre() -> None:
    s = dataclasses.replace(SMALL, post_center_range=(-10.0, -10.0, 0.0, 10.0, 10.0, 10.0))
    m = head_maps(s)
    m["heatmap"][0, 0, 2, 2] = 3.0
    m["height"][0, 0, 2, 2] = 0.4  # gravity centre 0.4 inside; bottom 0.4 - 1.0/2 = -0.1 outside
    m["heatmap"][0, 0, 10, 10] = 3.0
    m["height"][0, 0, 10, 10] = -0.1  # gravity centre outside
    out = decode(m, s)
    assert len(out["scores"]) == 1
    np.testing.assert_allclose(out["boxes"][0, 2], 0.4 - 0.5, atol=1e-6)  # exp(0) = 1 m high


def test_decode_y_axis_reference_as_awml() -> None:
    """AWML's coder with y_axis_reference: decode the exported (w, l, h) / (-cos, -sin)
    channels as usual, swap l and w, yaw = -atan2(-cos, -sin) - pi/2."""
    s = dataclasses.replace(SMALL, rot_y_axis_reference=True)
    m = head_maps(s)
    m["heatmap"][0, 0, 3, 3] = 2.0
    yaw = 2.5  # beyond pi/2: AWML reports yaw - 2 pi
    m["dim"][0, :, 3, 3] = np.log([2.0, 4.0, 1.5])  # w, l, h
    m["rot"][0, :, 3, 3] = [-np.cos(yaw), -np.sin(yaw)]
    out = decode(m, s)
    np.testing.assert_allclose(out["boxes"][0, 3:6], [4.0, 2.0, 1.5], rtol=1e-6)
    np.testing.assert_allclose(out["boxes"][0, 6], yaw - 2 * np.pi, atol=1e-6)


def test_rot_y_axis_reference_inverse() -> None:
    dim = np.array([[[[1.0]], [[2.0]], [[3.0]]]])
    rot = np.array([[[[0.6]], [[0.8]]]])  # sin, cos
    exported_dim = dim[:, [1, 0, 2]]
    exported_rot = np.concatenate([-rot[:, 1:2], -rot[:, 0:1]], axis=1)
    back_dim, back_rot = from_rot_y_axis_reference(exported_dim, exported_rot)
    np.testing.assert_array_equal(back_dim, dim)
    np.testing.assert_array_equal(back_rot, rot)


def test_rot_y_axis_reference_graph_round_trip() -> None:
    torch = pytest.importorskip("torch")
    from projects.CenterPoint.model import BackboneNeckHeadGraph, CenterPoint

    torch.manual_seed(0)
    model = CenterPoint(SMALL).eval()
    with torch.no_grad():
        for p in model.pts_bbox_head.parameters():  # lively maps so that boxes come out
            p.add_(torch.randn_like(p) * 0.3)
        model.pts_bbox_head.task_heads[0].heatmap[1].bias.fill_(1.0)
        x = torch.randn(1, 8, 16, 16)
        plain = BackboneNeckHeadGraph(model, False)(x)
        yaxis = BackboneNeckHeadGraph(model, True)(x)
    names = ("heatmap", "reg", "height", "dim", "rot", "vel")
    a = decode({n: t.numpy() for n, t in zip(names, plain, strict=True)}, SMALL)
    b = decode(
        {n: t.numpy() for n, t in zip(names, yaxis, strict=True)}, dataclasses.replace(SMALL, rot_y_axis_reference=True)
    )
    assert len(a["scores"]) > 0
    assert not np.allclose(plain[3].numpy(), yaxis[3].numpy())  # the layouts differ ...
    for key in ("scores", "labels", "velocities"):  # ... the boxes do not
        np.testing.assert_array_equal(a[key], b[key])
    np.testing.assert_allclose(a["boxes"][:, :6], b["boxes"][:, :6], rtol=1e-6)
    turn = (a["boxes"][:, 6] - b["boxes"][:, 6]) / (2 * np.pi)  # the yaw up to whole turns
    np.testing.assert_allclose(turn, np.round(turn), atol=1e-6)
