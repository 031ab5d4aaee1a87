"""The mmdet3d / T4 info format, read safely.

An info file is a pickle of `{"metainfo": {...}, "data_list": [entry, ...]}`; each entry
has `lidar_points: {"lidar_path": str, "num_pts_feats": int}` (older files put
`num_pts_feats` on the entry itself) and `instances: [{"bbox_3d": [x, y, z, l, w, h,
yaw], "bbox_label_3d": int}, ...]` with z the box bottom and label -1 for ignored
objects. Points are float32 `.bin` files of `num_pts_feats` columns, relative to the
data root.

Multi-sweep entries (mmdet3d v2 / AWML's T4 converter) also carry `timestamp` (s) and
`lidar_sweeps: [{"timestamp": s, "lidar_points": {"lidar_path", "num_pts_feats",
"lidar2sensor": 4x4}}, ...]`, nearest sweep first. `load_points` merges them as
mmdet3d's LoadPointsFromMultiSweeps does at test time (see its docstring).

Pickles can run code, so info files go through the core's restricted unpickler: only plain builtin
containers/scalars and numpy array reconstruction are allowed; anything else is
refused with the name of the global it asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from awml_harness.io import DataError
from awml_harness.io.points import read_points
from awml_harness.io.safe_pickle import load_pickle


@dataclass(frozen=True)
class Sample:
    sample_id: str
    points: np.ndarray  # (N, F) float32
    boxes: np.ndarray  # (M, 7) float32, bottom-center z
    labels: np.ndarray  # (M,) int64


def _entry_points_info(entry: dict) -> tuple[str, int]:
    lidar = entry.get("lidar_points", {})
    path = lidar.get("lidar_path") or entry.get("lidar_path")
    if path is None:
        raise ValueError("info entry without lidar_points.lidar_path")
    feats = lidar.get("num_pts_feats", entry.get("num_pts_feats", 5))
    return str(path), int(feats)




@dataclass(frozen=True)
class PointLoading:
    """mmdet3d's LoadPointsFromFile (+ LoadPointsFromMultiSweeps, test mode) settings."""

    columns: tuple[int, ...]  # of the merged cloud, fed to the model (use_dim)
    load_dim: int = 0  # floats per point; 0: each file's num_pts_feats
    sweeps_num: int = 0
    remove_close: bool = False
    pad_empty_sweeps: bool = False


def remove_close(points: np.ndarray, radius: float = 1.0) -> np.ndarray:
    """Drop points inside the square |x| < radius and |y| < radius (the sensor's own body)."""
    close = (np.abs(points[:, 0]) < radius) & (np.abs(points[:, 1]) < radius)
    return points[~close]


def load_points(entry: dict, root: Path, loading: PointLoading) -> np.ndarray:
    """The key frame, plus up to `sweeps_num` sweeps moved into its frame, as (N, len(columns)).

    As LoadPointsFromMultiSweeps with test_mode: the key frame's column 4 becomes 0; the
    first `sweeps_num` entries of `lidar_sweeps` are read with `load_dim` columns,
    `remove_close` applies to them (in their own frame), then with L = `lidar2sensor`
    every sweep point becomes `p[:3] @ L[:3, :3] - L[:3, 3]` and its column 4 the time
    lag `timestamp - sweep.timestamp`; an entry without `lidar_sweeps` repeats the key
    frame `sweeps_num` times when `pad_empty_sweeps`. `columns` picks from the merged cloud.
    """
    rel, feats = _entry_points_info(entry)
    dim = loading.load_dim or feats
    need = max(loading.columns) + 1
    if dim < need:
        raise DataError(f"{rel}: {dim} point features, the model reads column {need - 1} (use_dim {list(loading.columns)})")
    points = read_points(root / rel, dim)
    if loading.sweeps_num:
        if dim < 5:
            raise DataError(f"{rel}: {dim} point features; sweeps need at least 5 (column 4 is the time lag)")
        points = points.copy()
        points[:, 4] = 0.0
        parts = [points]
        sweeps = entry.get("lidar_sweeps")
        if sweeps is None:
            if loading.pad_empty_sweeps:
                key = remove_close(points) if loading.remove_close else points
                parts += [key] * loading.sweeps_num
        else:
            if "timestamp" not in entry:
                raise DataError(f"{rel}: info entry with lidar_sweeps but no timestamp")
            for i, sweep in enumerate(sweeps[: loading.sweeps_num]):
                lp = sweep.get("lidar_points", {})
                if "lidar_path" not in lp or "lidar2sensor" not in lp or "timestamp" not in sweep:
                    raise DataError(
                        f"{rel}: lidar_sweeps[{i}] needs timestamp and lidar_points.lidar_path / lidar2sensor"
                    )
                pts = read_points(root / str(lp["lidar_path"]), dim).copy()
                if loading.remove_close:
                    pts = remove_close(pts)
                m = np.asarray(lp["lidar2sensor"], np.float64).reshape(4, 4)
                pts[:, :3] = pts[:, :3] @ m[:3, :3]  # two float32 roundings, as mmdet3d's in-place steps
                pts[:, :3] -= m[:3, 3]
                pts[:, 4] = np.float32(float(entry["timestamp"]) - float(sweep["timestamp"]))
                parts.append(pts)
        points = np.concatenate(parts)
    return np.ascontiguousarray(points[:, list(loading.columns)], np.float32)


def entry_targets(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    inst = [i for i in entry.get("instances", []) if int(i.get("bbox_label_3d", -1)) >= 0]
    boxes = np.asarray([np.asarray(i["bbox_3d"], np.float32)[:7] for i in inst], np.float32).reshape(-1, 7)
    labels = np.asarray([int(i["bbox_label_3d"]) for i in inst], np.int64)
    return boxes, labels


class InfoDataset(Sequence[Sample]):
    """Lazily loads points; same order as the info file's data_list."""

    def __init__(self, info_file: Path, data_root: Path | None, loading: PointLoading | int, limit: int = -1,
                 allow_unsafe: bool = False) -> None:
        info = load_pickle(info_file, allow_unsafe=allow_unsafe)
        entries = info["data_list"] if isinstance(info, dict) else info
        self.entries = list(entries if limit < 0 else entries[:limit])
        self.root = Path(data_root) if data_root is not None else Path(info_file).parent
        self.loading = loading if isinstance(loading, PointLoading) else PointLoading(tuple(range(loading)))
        self.metainfo = info.get("metainfo", {}) if isinstance(info, dict) else {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, idx: int) -> Sample:  # type: ignore[override]
        entry = self.entries[idx]
        rel, _ = _entry_points_info(entry)
        points = load_points(entry, self.root, self.loading)
        boxes, labels = entry_targets(entry)
        sample_id = str(entry.get("token", entry.get("sample_idx", Path(rel).stem)))
        return Sample(sample_id, points, boxes, labels)

    def __iter__(self) -> Iterator[Sample]:
        for i in range(len(self)):
            yield self[i]


def synthetic_cloud(num_points: int, point_cloud_range: Sequence[float], num_features: int, seed: int) -> np.ndarray:
    """A seeded cloud over the whole range for export and verification of full-size
    configs when no dataset is at hand. Like a scan, points come in small patches
    (about 8 per 0.1 m patch, the patches denser near the sensor), so 200k points
    fill roughly 35k pillars of 0.24 m instead of one pillar each."""
    rng = np.random.default_rng(seed)
    x0, y0, z0, x1, y1, z1 = point_cloud_range
    reach = min(abs(x0), abs(x1), abs(y0), abs(y1))
    num_patches = max(1, num_points // 8)
    r = reach * rng.uniform(0.0, 1.0, num_patches) ** 1.5
    theta = rng.uniform(-np.pi, np.pi, num_patches)
    patch = rng.integers(0, num_patches, num_points)
    pts = np.zeros((num_points, num_features), np.float32)
    pts[:, 0] = r[patch] * np.cos(theta[patch]) + rng.uniform(-0.05, 0.05, num_points)
    pts[:, 1] = r[patch] * np.sin(theta[patch]) + rng.uniform(-0.05, 0.05, num_points)
    pts[:, 2] = rng.uniform(z0, min(z1, z0 + 4.0), num_points)
    if num_features > 3:
        pts[:, 3:] = rng.uniform(0.0, 1.0, (num_points, num_features - 3))
    return pts


class SyntheticDataset(Sequence[Sample]):
    def __init__(
        self, count: int, num_points: int, point_cloud_range: Sequence[float], num_features: int, seed: int
    ) -> None:
        self.size, self.num_points, self.range = count, num_points, tuple(point_cloud_range)
        self.feats, self.seed = num_features, seed

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx: int) -> Sample:  # type: ignore[override]
        if not 0 <= idx < self.size:
            raise IndexError(idx)
        pts = synthetic_cloud(self.num_points, self.range, self.feats, self.seed + idx)
        return Sample(f"synthetic-{idx}", pts, np.zeros((0, 7), np.float32), np.zeros(0, np.int64))
