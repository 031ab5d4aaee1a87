"""The real data layout of AWML's calibration classifier, read without mmengine.

Layout (as AWML's T4 calibration info files): an info file (mmengine-style `.pkl`
holding `{"metainfo": ..., "data_list": [...]}` or a bare list; JSON with the same
structure also works) whose entries look like

    {"sample_idx": 0,
     "image": {"img_path": "images/eval_000000.png", "cam2img": 3x3, "lidar2cam": 4x4,
               "height": H, "width": W},
     "lidar_points": {"lidar_path": "lidar/eval_000000.bin", "num_pts_feats": 4}}

with paths relative to `data_root`. The LiDAR file is float32 rows of x, y, z,
intensity (extra columns are ignored). Images: any file OpenCV reads, decoded as AWML's
`cv2.imread(path)` does (BGR, EXIF orientation applied), or `.npy` (uint8 HxWx3, BGR).

The 5-channel input follows AWML's CalibrationClassificationTransform: B, G, R from
the image; depth = clip(255 * z_cam / depth_scale, 0, 255) with depth_scale = 80 m
by default (so 0..80 m spans the 0..255 range; farther points saturate at 255);
intensity min-max normalised over the whole cloud to 0..255. Depth and intensity are
truncated to uint8 like AWML's uint8 images, then all five channels are divided by
255. Where several points land on one pixel the nearest (smallest z) wins; empty
pixels are 0.

Miscalibration: the lidar->camera extrinsic is post-multiplied by a noise transform
(rotation of 1-10 degrees about a random axis, translation of 0.05-0.2 m in a random
direction), drawn from `np.random.default_rng(seed + sample_idx)`, so every backend
and every run sees the same miscalibrated input. AWML draws the magnitudes from a
truncated Gaussian; here they are uniform in the same ranges (documented choice).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from awml_harness.io import DataError
from awml_harness.io.image import read_image as decode_image_file
from awml_harness.io.points import read_points as read_point_file
from awml_harness.io.safe_pickle import load_pickle

CALIBRATED, MISCALIBRATED = 1, 0
CLASS_NAMES = ("miscalibrated", "calibrated")  # index = label


@dataclass(frozen=True)
class CalibrationRecord:
    """One camera frame with its LiDAR sweep and calibration, paths resolved."""

    sample_idx: int
    img_path: Path
    lidar_path: Path
    num_pts_feats: int
    cam2img: np.ndarray = field(repr=False)  # 3x3 intrinsics
    lidar2cam: np.ndarray = field(repr=False)  # 4x4 extrinsic, LiDAR -> camera

    @property
    def token(self) -> str:
        return f"{self.sample_idx:06d}"


def read_info_file(info_file: Path | str, allow_unsafe: bool = False) -> list[dict[str, Any]]:
    """Info entries from a `.pkl` (the core's restricted unpickling) or `.json` file."""
    path = Path(info_file)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
    else:
        data = load_pickle(path, allow_unsafe=allow_unsafe)
    if isinstance(data, dict) and "data_list" in data:
        data = data["data_list"]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise ValueError(f"{path}: expected a list of dicts or {{'data_list': [...]}}, got {type(data).__name__}")
    return data


def _matrix(value: Any, shape: tuple[int, int], what: str) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.shape != shape:
        raise ValueError(f"{what} must be {shape[0]}x{shape[1]}, got shape {arr.shape}")
    return arr


def parse_record(entry: dict[str, Any], data_root: Path, position: int) -> CalibrationRecord:
    image, lidar = entry["image"], entry["lidar_points"]
    idx = int(entry.get("sample_idx", position))
    return CalibrationRecord(
        sample_idx=idx,
        img_path=data_root / image["img_path"],
        lidar_path=data_root / lidar["lidar_path"],
        num_pts_feats=int(lidar.get("num_pts_feats", 4)),
        cam2img=_matrix(image["cam2img"], (3, 3), f"sample {idx}: image.cam2img"),
        lidar2cam=_matrix(image["lidar2cam"], (4, 4), f"sample {idx}: image.lidar2cam"),
    )


def load_records(info_file: Path | str, data_root: Path | str | None = None,
                 allow_unsafe: bool = False) -> list[CalibrationRecord]:
    info_file = Path(info_file)
    root = Path(data_root) if data_root is not None else info_file.parent
    return [parse_record(e, root, i) for i, e in enumerate(read_info_file(info_file, allow_unsafe))]


# -- files ------------------------------------------------------------------------------

def read_image(path: Path | str) -> np.ndarray:
    """uint8 HxWx3 BGR: image files through OpenCV's IMREAD_COLOR (AWML's flag), `.npy` as
    stored. A missing, truncated or foreign file is a DataError naming it."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        return decode_image_file(path, "color")
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {exc}); "
                        "expected a .npy uint8 HxWx3 BGR array") from None
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"{path}: image must be uint8 HxWx3, got {arr.dtype} {arr.shape}")
    return arr


def read_points(path: Path | str, num_pts_feats: int = 4) -> np.ndarray:
    """float32 (N, num_pts_feats): x, y, z, intensity, ...; the file must hold whole points."""
    return read_point_file(path, num_pts_feats)


# -- geometry ---------------------------------------------------------------------------

def rotation_matrix(axis: np.ndarray, angle_rad: float) -> np.ndarray:
    """Rodrigues: rotation by `angle_rad` about unit `axis`."""
    x, y, z = np.asarray(axis, dtype=np.float64) / np.linalg.norm(axis)
    k = np.array([[0.0, -z, y], [z, 0.0, -x], [-y, x, 0.0]])
    return np.eye(3) + np.sin(angle_rad) * k + (1.0 - np.cos(angle_rad)) * (k @ k)


def random_unit_vector(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


@dataclass(frozen=True)
class Miscalibration:
    """Ranges of the extrinsic perturbation (AWML's: 1-10 degrees, 0.05-0.2 m)."""

    min_angle_deg: float = 1.0
    max_angle_deg: float = 10.0
    min_translation_m: float = 0.05
    max_translation_m: float = 0.2

    def noise(self, rng: np.random.Generator) -> np.ndarray:
        """A 4x4 rigid transform with angle and translation norm inside the ranges."""
        angle = np.deg2rad(rng.uniform(self.min_angle_deg, self.max_angle_deg))
        rot = rotation_matrix(random_unit_vector(rng), angle)
        shift = rng.uniform(self.min_translation_m, self.max_translation_m) * random_unit_vector(rng)
        out = np.eye(4)
        out[:3, :3], out[:3, 3] = rot, shift
        return out

    def apply(self, lidar2cam: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        # post-multiplied as AWML's alter_calibration: the noise acts in the LiDAR frame
        return np.asarray(lidar2cam, dtype=np.float64) @ self.noise(rng)


def seeded_rng(seed: int, sample_idx: int) -> np.random.Generator:
    return np.random.default_rng(seed + sample_idx)


def resize_nearest(image: np.ndarray, cam2img: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-neighbour resize of an HxWxC image to `size` (H, W) with matching intrinsics.

    Pixel centres map exactly: u' + 0.5 = s (u + 0.5), so the projection stays
    consistent with the resized image."""
    h0, w0 = image.shape[:2]
    height, width = size
    if (h0, w0) == (height, width):
        return image, cam2img
    rows = np.minimum(((np.arange(height) + 0.5) * h0 / height).astype(np.int64), h0 - 1)
    cols = np.minimum(((np.arange(width) + 0.5) * w0 / width).astype(np.int64), w0 - 1)
    sx, sy = width / w0, height / h0
    k = np.array(cam2img, dtype=np.float64)
    k[0, :] *= sx
    k[1, :] *= sy
    k[0, 2] += 0.5 * sx - 0.5
    k[1, 2] += 0.5 * sy - 0.5
    return image[rows[:, None], cols[None, :]], k


def normalize_intensity(intensity: np.ndarray) -> np.ndarray:
    """Min-max over the whole cloud to [0, 1] (AWML); a constant cloud gives zeros."""
    if intensity.size == 0:
        return np.zeros(0, dtype=np.float64)
    lo, hi = float(intensity.min()), float(intensity.max())
    if hi - lo < 1e-8:
        return np.zeros(intensity.shape, dtype=np.float64)
    return (intensity.astype(np.float64) - lo) / (hi - lo)


def project_lidar(
    points: np.ndarray,
    intensity01: np.ndarray,
    cam2img: np.ndarray,
    lidar2cam: np.ndarray,
    height: int,
    width: int,
    *,
    depth_scale: float = 80.0,
    radius: int = 0,
    drop_beyond: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Depth and intensity images (uint8 HxW) of the points seen by the camera.

    Each point covers a (2*radius+1)^2 patch (AWML's `dilation_size`). Per pixel the
    nearest point wins: a z-buffer built with one lexsort, no Python loop. Points at
    `depth_scale` or farther saturate at 255, or with `drop_beyond` are left out (AWML's
    `max_depth`: only 0 < z < max_depth is projected)."""
    xyz = np.asarray(points, dtype=np.float64)[:, :3]
    cam = xyz @ lidar2cam[:3, :3].T + lidar2cam[:3, 3]
    front = cam[:, 2] > 0.0
    if drop_beyond:
        front &= cam[:, 2] < depth_scale
    cam, inten = cam[front], np.asarray(intensity01, dtype=np.float64)[front]
    uvw = cam @ np.asarray(cam2img, dtype=np.float64).T
    u, v = uvw[:, 0] / uvw[:, 2], uvw[:, 1] / uvw[:, 2]
    inside = (u >= 0) & (u < width) & (v >= 0) & (v < height)
    cols, rows = u[inside].astype(np.int64), v[inside].astype(np.int64)
    z, inten = cam[inside, 2], inten[inside]
    if radius > 0:
        dy, dx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
        rows = (rows[:, None] + dy.ravel()[None, :]).ravel()
        cols = (cols[:, None] + dx.ravel()[None, :]).ravel()
        reps = dy.size
        z, inten = np.repeat(z, reps), np.repeat(inten, reps)
        keep = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        rows, cols, z, inten = rows[keep], cols[keep], z[keep], inten[keep]
    depth_img = np.zeros(height * width, np.uint8)
    inten_img = np.zeros(height * width, np.uint8)
    if z.size:
        pixel = rows * width + cols
        order = np.lexsort((z, pixel))  # by pixel, then nearest first
        pixel_sorted = pixel[order]
        first = np.flatnonzero(np.r_[True, pixel_sorted[1:] != pixel_sorted[:-1]])
        winner = order[first]
        depth_img[pixel[winner]] = np.clip(255.0 * z[winner] / depth_scale, 0.0, 255.0).astype(np.uint8)
        inten_img[pixel[winner]] = np.clip(255.0 * inten[winner], 0.0, 255.0).astype(np.uint8)
    return depth_img.reshape(height, width), inten_img.reshape(height, width)


def fuse(image_bgr: np.ndarray, depth: np.ndarray, intensity: np.ndarray) -> np.ndarray:
    """(5, H, W) float32 in [0, 1]: B, G, R, depth, intensity, each /255."""
    stacked = np.concatenate([image_bgr, depth[:, :, None], intensity[:, :, None]], axis=2)
    return np.ascontiguousarray(stacked.transpose(2, 0, 1), dtype=np.float32) / np.float32(255.0)


@dataclass(frozen=True)
class ProjectionConfig:
    depth_scale: float = 80.0
    radius: int = 0
    input_size: tuple[int, int] | None = None  # (H, W); None: the image's own size
    drop_beyond: bool = False  # points at z >= depth_scale are left out instead of saturating


def build_input(
    image_bgr: np.ndarray,
    points: np.ndarray,
    cam2img: np.ndarray,
    lidar2cam: np.ndarray,
    cfg: ProjectionConfig = ProjectionConfig(),
) -> np.ndarray:
    """Image + points + calibration -> the network's (5, H, W) float32 input."""
    if cfg.input_size is not None:
        image_bgr, cam2img = resize_nearest(image_bgr, cam2img, cfg.input_size)
    height, width = image_bgr.shape[:2]
    intensity01 = normalize_intensity(points[:, 3]) if points.shape[1] > 3 else np.zeros(len(points))
    depth, inten = project_lidar(points, intensity01, cam2img, lidar2cam, height, width,
                                 depth_scale=cfg.depth_scale, radius=cfg.radius, drop_beyond=cfg.drop_beyond)
    return fuse(image_bgr, depth, inten)


# -- the evaluated dataset -------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationSample:
    """One evaluated item: a record seen with its true or its perturbed extrinsic."""

    record: CalibrationRecord
    label: int  # CALIBRATED (1) or MISCALIBRATED (0)
    copy: int = 0  # which repeat of the dataset (CalibrationDataset(repeat=N)); 0 normally

    @property
    def sample_id(self) -> str:
        base = f"{self.record.token}-{CLASS_NAMES[self.label]}"
        return base if self.copy == 0 else f"{base}-r{self.copy}"


class CalibrationDataset(Sequence[CalibrationSample]):
    """Every record twice, calibrated then miscalibrated, in info-file order; `labels`
    narrows that to one state (AWML's `miscalibration_probability` 0 or 1).

    `repeat=N` (N >= 1) serves that sequence N times; copy k > 0 carries sample ids
    suffixed `-r<k>` and byte-identical inputs. It exists to evaluate many samples
    from the small shipped data (memory/throughput benchmarks); metrics equal N = 1's."""

    def __init__(self, records: Sequence[CalibrationRecord], *, seed: int = 0,
                 miscalibration: Miscalibration = Miscalibration(),
                 projection: ProjectionConfig = ProjectionConfig(), repeat: int = 1,
                 labels: tuple[int, ...] = (CALIBRATED, MISCALIBRATED)) -> None:
        if repeat < 1:
            raise ValueError(f"repeat must be >= 1, got {repeat}")
        if not labels or not set(labels) <= {CALIBRATED, MISCALIBRATED}:
            raise ValueError(f"labels must be a non-empty subset of {(CALIBRATED, MISCALIBRATED)}, got {labels}")
        self.labels = tuple(labels)
        self.records = list(records)
        self.seed = seed
        self.miscalibration = miscalibration
        self.projection = projection
        self.repeat = repeat

    def __len__(self) -> int:
        return len(self.labels) * len(self.records) * self.repeat

    def __getitem__(self, index: int) -> CalibrationSample:  # type: ignore[override]
        if not -len(self) <= index < len(self):
            raise IndexError(index)
        index %= len(self)
        per_record = len(self.labels)
        copy, index = divmod(index, per_record * len(self.records))
        record, state = divmod(index, per_record)
        return CalibrationSample(self.records[record], self.labels[state], copy)

    def __iter__(self) -> Iterator[CalibrationSample]:
        return (self[i] for i in range(len(self)))

    def extrinsic(self, sample: CalibrationSample) -> np.ndarray:
        true = sample.record.lidar2cam
        if sample.label == CALIBRATED:
            return true
        return self.miscalibration.apply(true, seeded_rng(self.seed, sample.record.sample_idx))

    def load(self, sample: CalibrationSample) -> np.ndarray:
        """(5, H, W) float32 network input of `sample`; deterministic."""
        rec = sample.record
        image = read_image(rec.img_path)
        points = read_points(rec.lidar_path, rec.num_pts_feats)
        return build_input(image, points, rec.cam2img, self.extrinsic(sample), self.projection)
