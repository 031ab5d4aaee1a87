"""LiDAR `.bin` point files: float32 records, `num_pts_feats` per point.

One reader for every project: a file whose size is not a whole number of points is a
truncated or foreign file (or a wrong `num_pts_feats` / `load_dim`) and is refused with
the file named, instead of being read shifted by a few bytes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from awml_harness.io import DataError


def read_points(path: Path | str, num_pts_feats: int) -> np.ndarray:
    """float32 (N, num_pts_feats) from a `.bin` file of whole points."""
    point_bytes = 4 * num_pts_feats
    try:
        size = Path(path).stat().st_size
    except OSError as exc:
        raise DataError(f"{path}: cannot read point file ({exc.strerror or exc})") from None
    if size % point_bytes:
        raise DataError(f"{path}: {size} bytes is not a whole number of points of {num_pts_feats} float32 "
                        f"features ({point_bytes} bytes each); is the file truncated, or num_pts_feats wrong?")
    return np.fromfile(path, dtype=np.float32).reshape(-1, num_pts_feats)
