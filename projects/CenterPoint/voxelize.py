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
    if np.isfinite(points).all():  # the common case: one flat pass, no row mask
        return points
    finite = np.isfinite(points).all(axis=1)
    warnings.warn(
        f"dropped {int((~finite).sum())} of {len(points)} points with NaN/inf values", RuntimeWarning, stacklevel=2
    )
    return points[finite]


def _stable_argsort(keys: np.ndarray, bound: int) -> np.ndarray:
    """np.argsort(keys, kind="stable") for ints in [0, bound): LSD radix passes of 16 bits,
    each a numpy stable sort of uint16 (which numpy runs as a radix sort)."""
    if bound <= 1 << 16:
        return np.argsort(keys.astype(np.uint16), kind="stable")
    perm = None
    shift = 0
    while (1 << shift) < bound:
        digit = ((keys if perm is None else keys[perm]) >> shift).astype(np.uint16)  # wraps: low 16 bits
        step = np.argsort(digit, kind="stable")
        perm = step if perm is None else perm[step]
        shift += 16
    return perm


def _rows(a: np.ndarray) -> np.ndarray:
    """A C-contiguous (N, F) array as (N,) opaque rows, so row gathers/scatters are one memcpy each."""
    return a.view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).reshape(len(a))


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
    points = np.ascontiguousarray(drop_nan_points(points))
    feats = points.shape[1]
    lo = np.asarray(point_cloud_range[:3], dtype=np.float64)
    hi = np.asarray(point_cloud_range[3:], dtype=np.float64)
    size = np.asarray(voxel_size, dtype=np.float64)
    grid = np.round((hi - lo) / size).astype(np.int64)
    empty = Voxels(np.zeros((0, max_points, feats), np.float32), np.zeros(0, np.int32), np.zeros((0, 3), np.int32))
    if len(points) == 0 or (grid <= 0).any():
        return empty

    # voxel index per axis, floor((p - lo) / size) in float64; inside iff 0 <= index < grid
    # (tested on the float, which is what the int64 index would say, overflow included)
    inside = None
    cell = []
    for axis in range(3):
        f = np.floor((points[:, axis].astype(np.float64) - lo[axis]) / size[axis])
        ok = (f >= 0) & (f < grid[axis])
        inside = ok if inside is None else inside & ok
        cell.append(f)
    if inside.all():
        src = None
        x, y, z = (c.astype(np.int64) for c in cell)
    else:
        src = np.flatnonzero(inside)  # surviving points, in cloud order
        x, y, z = (c[src].astype(np.int64) for c in cell)
    if len(x) == 0:
        return empty
    linear = (z * grid[1] + y) * grid[0] + x
    # one stable sort groups the points by voxel and keeps cloud order inside each group
    perm = _stable_argsort(linear, int(grid.prod()))
    sorted_cells = linear[perm]
    starts_group = np.empty(len(perm), bool)
    starts_group[0] = True
    np.not_equal(sorted_cells[1:], sorted_cells[:-1], out=starts_group[1:])
    group_start = np.flatnonzero(starts_group)
    group = np.cumsum(starts_group) - 1  # per sorted point: its group
    slot = np.arange(len(perm)) - group_start[group]  # how many earlier points share the voxel
    # number the groups by their first point's position in the cloud (first-seen order):
    # a group's number is how many groups start earlier in the cloud
    first_point = perm[group_start]
    is_first = np.zeros(len(perm), bool)
    is_first[first_point] = True
    rank = np.cumsum(is_first)[first_point] - 1  # per group: its voxel number
    order = np.empty_like(rank)
    order[rank] = np.arange(len(rank))  # per voxel number: its group
    vox = rank[group]

    num_voxels = min(len(order), max_voxels)
    keep = (vox < num_voxels) & (slot < max_points)
    voxels = np.zeros((num_voxels, max_points, feats), np.float32)
    taken = perm[keep] if src is None else src[perm[keep]]
    _rows(voxels.reshape(num_voxels * max_points, feats))[vox[keep] * max_points + slot[keep]] = _rows(points)[taken]
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
    with_z_center: bool = True,
) -> np.ndarray:
    """(V, P, F) voxels -> (V, P, F + 6) `input_features` with padded rows zeroed:
    the points, their offsets to the mean of their voxel's points, then to its centre.
    Without `with_z_center` (AWML's BackwardPillarFeatureNet) the centre offset has x, y
    only: F + 5 columns. The centre is `index * size + (size / 2 + range_min)`, the
    association mmdet3d uses, so the float32 results agree bit for bit."""
    v, p, _ = vox.voxels.shape
    xyz = vox.voxels[:, :, :3]
    counts = np.maximum(vox.num_points, 1).astype(np.float32)
    mean = xyz.sum(axis=1, keepdims=True) / counts[:, None, None]
    size = np.asarray(voxel_size, np.float64)
    offset = (size / 2 + np.asarray(point_cloud_range[:3], np.float64)).astype(np.float32)
    # coords are (z, y, x); centers in (x, y, z)
    centers = vox.coords[:, ::-1].astype(np.float32) * size.astype(np.float32) + offset
    to_center = xyz - centers[:, None, :]
    if not with_z_center:
        to_center = to_center[:, :, :2]
    features = np.concatenate([vox.voxels, xyz - mean, to_center], axis=2)
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
