"""Voxelization of a 300k-point cloud: the project's numpy version against a
straightforward torch implementation of the same hard-voxelization rules.

    python benchmarks/centerpoint_voxelize.py [--points 300000] [--repeat 7] [--threads 1]

Neither spconv's PointToVoxel nor mmcv's Voxelization installs here (no wheels for this
torch/CPU), so the reference is the plain torch route: torch.unique for the voxel ids,
a scatter-min for the first-seen order, a stable sort for the slot of each point. Both
must give identical arrays (checked before timing). Reports the median of `--repeat`
runs and the ratio. Not part of the default test run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from projects.CenterPoint.data import synthetic_cloud  # noqa: E402
from projects.CenterPoint.voxelize import voxelize  # noqa: E402

RANGE = (-122.4, -122.4, -3.0, 122.4, 122.4, 5.0)
VOXEL = (0.24, 0.24, 8.0)
MAX_POINTS, MAX_VOXELS = 32, 96000


def voxelize_torch(
    points: torch.Tensor, max_points: int, max_voxels: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    lo = torch.tensor(RANGE[:3], dtype=torch.float64)
    hi = torch.tensor(RANGE[3:], dtype=torch.float64)
    size = torch.tensor(VOXEL, dtype=torch.float64)
    grid = torch.round((hi - lo) / size).long()
    idx = torch.floor((points[:, :3].double() - lo) / size).long()
    inside = ((idx >= 0) & (idx < grid)).all(dim=1) & torch.isfinite(points).all(dim=1)
    points, idx = points[inside], idx[inside]
    linear = (idx[:, 2] * grid[1] + idx[:, 1]) * grid[0] + idx[:, 0]
    uniq, inverse, counts = torch.unique(linear, return_inverse=True, return_counts=True)
    order_idx = torch.arange(len(points))
    first = torch.full((len(uniq),), len(points), dtype=torch.long).scatter_reduce(0, inverse, order_idx, "amin")
    order = torch.argsort(first, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    vox = rank[inverse]
    by_voxel = torch.sort(vox, stable=True).indices
    counts_ranked = counts[order]
    starts = torch.cumsum(counts_ranked, 0) - counts_ranked
    slot = torch.empty_like(vox)
    slot[by_voxel] = torch.arange(len(vox)) - starts[vox[by_voxel]]
    n = min(len(order), max_voxels)
    keep = (vox < n) & (slot < max_points)
    voxels = torch.zeros((n, max_points, points.shape[1]), dtype=points.dtype)
    voxels[vox[keep], slot[keep]] = points[keep]
    cells = uniq[order[:n]]
    coords = torch.stack([cells // (grid[0] * grid[1]), (cells // grid[0]) % grid[1], cells % grid[0]], dim=1).int()
    return voxels, torch.clamp(counts_ranked[:n], max=max_points).int(), coords


def timed(fn, repeat: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cloud = synthetic_cloud(args.points, RANGE, 5, seed=0)
    tcloud = torch.from_numpy(cloud)

    ours = voxelize(cloud, RANGE, VOXEL, MAX_POINTS, MAX_VOXELS)
    ref = voxelize_torch(tcloud, MAX_POINTS, MAX_VOXELS)
    np.testing.assert_array_equal(ours.voxels, ref[0].numpy())
    np.testing.assert_array_equal(ours.num_points, ref[1].numpy())
    np.testing.assert_array_equal(ours.coords, ref[2].numpy())

    t_np = timed(lambda: voxelize(cloud, RANGE, VOXEL, MAX_POINTS, MAX_VOXELS), args.repeat)
    t_torch = timed(lambda: voxelize_torch(tcloud, MAX_POINTS, MAX_VOXELS), args.repeat)
    print(f"{args.points} points -> {len(ours)} voxels (max {MAX_POINTS} points each), identical outputs")
    print(f"numpy (project): {t_np * 1e3:8.1f} ms  (median of {args.repeat})")
    print(f"torch reference: {t_torch * 1e3:8.1f} ms  ({args.threads} thread(s))")
    print(f"ratio numpy / torch: {t_np / t_torch:.2f}")


if __name__ == "__main__":
    main()
