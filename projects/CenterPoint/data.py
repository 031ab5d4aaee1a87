"""The mmdet3d / T4 info format, read safely.

An info file is a pickle of `{"metainfo": {...}, "data_list": [entry, ...]}`; each entry
has `lidar_points: {"lidar_path": str, "num_pts_feats": int}` (older files put
`num_pts_feats` on the entry itself) and `instances: [{"bbox_3d": [x, y, z, l, w, h,
yaw], "bbox_label_3d": int}, ...]` with z the box bottom and label -1 for ignored
objects. Points are float32 `.bin` files of `num_pts_feats` columns, relative to the
data root.

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


def read_points(path: Path, num_pts_feats: int) -> np.ndarray:
    """A `.bin` point file -> float32 (N, num_pts_feats). Its size must be a whole number
    of points (4 * num_pts_feats bytes each): anything else is a truncated or foreign
    file, or a wrong `num_pts_feats`, and is refused rather than read shifted."""
    point_bytes = 4 * num_pts_feats
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read point file ({exc.strerror or exc})") from None
    if size % point_bytes:
        raise DataError(f"{path}: {size} bytes is not a whole number of points of {num_pts_feats} float32 "
                        f"features ({point_bytes} bytes each); is the file truncated, or num_pts_feats wrong?")
    return np.fromfile(path, dtype=np.float32).reshape(-1, num_pts_feats)


def entry_targets(entry: dict) -> tuple[np.ndarray, np.ndarray]:
    inst = [i for i in entry.get("instances", []) if int(i.get("bbox_label_3d", -1)) >= 0]
    boxes = np.asarray([np.asarray(i["bbox_3d"], np.float32)[:7] for i in inst], np.float32).reshape(-1, 7)
    labels = np.asarray([int(i["bbox_label_3d"]) for i in inst], np.int64)
    return boxes, labels


class InfoDataset(Sequence[Sample]):
    """Lazily loads points; same order as the info file's data_list."""

    def __init__(self, info_file: Path, data_root: Path | None, num_point_features: int, limit: int = -1,
                 allow_unsafe: bool = False) -> None:
        info = load_pickle(info_file, allow_unsafe=allow_unsafe)
        entries = info["data_list"] if isinstance(info, dict) else info
        self.entries = list(entries if limit < 0 else entries[:limit])
        self.root = Path(data_root) if data_root is not None else Path(info_file).parent
        self.use_dim = num_point_features
        self.metainfo = info.get("metainfo", {}) if isinstance(info, dict) else {}

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, idx: int) -> Sample:  # type: ignore[override]
        entry = self.entries[idx]
        rel, feats = _entry_points_info(entry)
        if feats < self.use_dim:
            raise ValueError(f"{rel}: {feats} point features, the model needs {self.use_dim}")
        points = read_points(self.root / rel, feats)[:, : self.use_dim]
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
