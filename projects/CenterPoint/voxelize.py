"""Hard voxelization, pillar decoration and the BEV scatter, in vectorized numpy.

These run between and before the exported graphs, identically for every backend.

Hard voxelization (the semantics of mmcv's `Voxelization` with a fixed budget):
points outside the range are dropped; voxels are numbered in the order their first
point appears in the cloud; each voxel keeps its first `max_points` points in cloud
order; voxels beyond `max_voxels` (in that numbering) are dropped. Deterministic: the
same cloud always gives the same arrays. Coordinates are (z, y, x) like mmcv.

Decoration (PillarFeatureNet's inputs): per point its own features, the offset of
x, y, z to the mean of its voxel's points, and the offset to the voxel's center, so
C = num_point_features + 6. Padded point rows are all zero: this is how the voxel
encoder graph knows about the padding without a second input (the zero rows go
through the PFN exactly as in mmdet3d, where the features are masked before the
linear layer), and it is what AWML feeds its `input_features`.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Voxels:
    voxels: np.ndarray  # (V, max_points, F) float32, padded with zeros
    num_points: np.ndarray  # (V,) int32, >= 1
    coords: np.ndarray  # (V, 3) int32, (z, y, x) voxel indices

    def __len__(self) -> int:
        return len(self.num_points)


def drop_nan_points(points: np.ndarray) -> np.ndarray:
    """Rows with any non-finite value go, with a warning (a lidar driver bug upstream)."""
    finite = np.isfinite(points).all(axis=1)
    if not finite.all():
        warnings.warn(
            f"dropped {int((~finite).sum())} of {len(points)} points with NaN/inf values", RuntimeWarning, stacklevel=2
        )
        points = points[finite]
    return points


def voxelize(
    points: np.ndarray,
    point_cloud_range: Sequence[float],
    voxel_size: Sequence[float],
    max_points: int,
    max_voxels: int,
) -> Voxels:
    points = np.ascontiguousarray(points, dtype=np.float32)
    if points.ndim != 2 or points.shape[1] < 3:
        raise ValueError(f"points must be (N, F>=3), got {points.shape}")
    points = drop_nan_points(points)
    feats = points.shape[1]
    lo = np.asarray(point_cloud_range[:3], dtype=np.float64)
    hi = np.asarray(point_cloud_range[3:], dtype=np.float64)
    size = np.asarray(voxel_size, dtype=np.float64)
    grid = np.round((hi - lo) / size).astype(np.int64)

    idx = np.floor((points[:, :3].astype(np.float64) - lo) / size).astype(np.int64)
    inside = np.all((idx >= 0) & (idx < grid), axis=1)
    points, idx = points[inside], idx[inside]
    if len(points) == 0:
        return Voxels(np.zeros((0, max_points, feats), np.float32), np.zeros(0, np.int32), np.zeros((0, 3), np.int32))

    linear = (idx[:, 2] * grid[1] + idx[:, 1]) * grid[0] + idx[:, 0]
    # one stable sort groups the points by voxel and keeps cloud order inside each group
    perm = np.argsort(linear, kind="stable")
    sorted_cells = linear[perm]
    starts_group = np.empty(len(perm), bool)
    starts_group[0] = True
    np.not_equal(sorted_cells[1:], sorted_cells[:-1], out=starts_group[1:])
    group_start = np.flatnonzero(starts_group)
    group = np.cumsum(starts_group) - 1  # per sorted point: its group
    slot = np.arange(len(perm)) - group_start[group]  # how many earlier points share the voxel
    # number the groups by their first point's position in the cloud (first-seen order)
    order = np.argsort(perm[group_start])
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    vox = rank[group]

    num_voxels = min(len(order), max_voxels)
    keep = (vox < num_voxels) & (slot < max_points)
    voxels = np.zeros((num_voxels, max_points, feats), np.float32)
    voxels[vox[keep], slot[keep]] = points[perm[keep]]
    counts = np.diff(np.append(group_start, len(perm)))
    num_points = np.minimum(counts[order[:num_voxels]], max_points).astype(np.int32)

    cells = sorted_cells[group_start[order[:num_voxels]]]
    x = cells % grid[0]
    y = (cells // grid[0]) % grid[1]
    z = cells // (grid[0] * grid[1])
    coords = np.stack([z, y, x], axis=1).astype(np.int32)
    return Voxels(voxels, num_points, coords)


def decorate(
    vox: Voxels,
    point_cloud_range: Sequence[float],
    voxel_size: Sequence[float],
) -> np.ndarray:
    """(V, P, F) voxels -> (V, P, F + 6) `input_features` with padded rows zeroed."""
    v, p, _ = vox.voxels.shape
    xyz = vox.voxels[:, :, :3]
    counts = np.maximum(vox.num_points, 1).astype(np.float32)
    mean = xyz.sum(axis=1, keepdims=True) / counts[:, None, None]
    size = np.asarray(voxel_size, np.float32)
    lo = np.asarray(point_cloud_range[:3], np.float32)
    # coords are (z, y, x); centers in (x, y, z)
    centers = vox.coords[:, ::-1].astype(np.float32) * size + size / 2 + lo
    features = np.concatenate([vox.voxels, xyz - mean, xyz - centers[:, None, :]], axis=2)
    mask = np.arange(p)[None, :] < vox.num_points[:, None]
    features *= mask[:, :, None]
    return np.ascontiguousarray(features, dtype=np.float32)


def scatter(pillar_features: np.ndarray, coords: np.ndarray, grid_xy: tuple[int, int]) -> np.ndarray:
    """PointPillarsScatter: (V, 1, C) or (V, C) pillar features -> (1, C, ny, nx) BEV canvas."""
    nx, ny = grid_xy
    feats = pillar_features.reshape(len(pillar_features), pillar_features.shape[-1])
    canvas = np.zeros((feats.shape[1], ny * nx), dtype=np.float32)
    canvas[:, coords[:, 1].astype(np.int64) * nx + coords[:, 2]] = feats.T
    return canvas.reshape(1, feats.shape[1], ny, nx)
