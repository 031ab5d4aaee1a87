"""Seeded generator of small road scenes with per-pixel labels, in mmseg's folder layout.

    python -m projects.SemanticSegmentation.generate        # writes projects/SemanticSegmentation/data/

Each scene is drawn by a front camera: sky with a colour gradient and clouds, a skyline
of buildings with window grids, trees on both sides, a road in perspective towards a
vanishing point with dashed lane marks, vehicles on the road scaled by their distance,
and in some frames the ego vehicle's hood at the bottom, labelled 255 (ignored), as
real datasets leave out the ego vehicle. Colours, positions and sizes are drawn per
scene and every image gets sensor noise, so a class cannot be told from one pixel's
colour alone (grey buildings vs grey road, green vehicles vs trees): the network needs
the context a segmentation model is built for.

Written (mmseg's `img_dir/<split>`, `ann_dir/<split>` layout, same file stem):
    data/img_dir/val/val_000000.png    8-bit RGB image
    data/ann_dir/val/val_000000.png    8-bit grey label map: class index, 255 = ignore
Only the evaluation split ships; `train.py` draws its scenes in memory from another seed.
Rerunning writes byte-identical files (numpy's seeded Generator, Pillow's PNG encoder).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from projects.SemanticSegmentation.data import CLASS_NAMES, IGNORE_INDEX

HERE = Path(__file__).resolve().parent
DATA_ROOT = HERE / "data"
IMAGE_SIZE = (64, 128)  # H, W
EVAL_COUNT = 16
EVAL_SEED = 20261130
TRAIN_SEED = EVAL_SEED + 1_000_000  # train.py's in-memory scenes: never the eval ones

ROAD, LANE, VEHICLE, BUILDING, VEGETATION, SKY = (CLASS_NAMES.index(n) for n in
                                                   ("road", "lane_marking", "vehicle", "building", "vegetation", "sky"))


def _paint(image: np.ndarray, label: np.ndarray, where: np.ndarray, colour: np.ndarray, cls: int) -> None:
    image[where] = colour
    label[where] = cls


def make_scene(rng: np.random.Generator, size: tuple[int, int] = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """(H, W, 3) uint8 RGB image and (H, W) uint8 label map of one random scene."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    image = np.zeros((h, w, 3), np.float64)
    label = np.full((h, w), SKY, np.uint8)

    horizon = rng.uniform(0.32, 0.48) * h
    # sky: vertical gradient between two blue-grey tones, soft clouds
    top, bottom = rng.uniform([40, 80, 150], [140, 170, 250]), rng.uniform([150, 170, 190], [230, 235, 250])
    t = np.clip(yy / max(horizon, 1.0), 0, 1)[..., None]
    image[:] = top * (1 - t) + bottom * t
    for _ in range(int(rng.integers(0, 4))):
        cx, cy = rng.uniform(0, w), rng.uniform(0, horizon * 0.8)
        rx, ry = rng.uniform(6, 20), rng.uniform(2, 5)
        blob = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
        image[blob] = 0.5 * image[blob] + 0.5 * rng.uniform(225, 255)

    # skyline: buildings standing on the horizon, grey to brown, with window grids
    x = rng.uniform(-10, 0)
    while x < w:
        bw = rng.uniform(8, 30)
        top_y = horizon - rng.uniform(4, horizon * 0.95)
        where = (xx >= x) & (xx < x + bw) & (yy >= top_y) & (yy < horizon + 1)
        if rng.random() < 0.8:
            colour = rng.uniform(70, 190) * rng.uniform(0.85, 1.1, 3)
            _paint(image, label, where, colour, BUILDING)
            win = where & ((xx - x) % 4 < 2) & ((yy - top_y) % 5 < 2) & (yy < horizon - 1)
            image[win] = colour * rng.uniform(0.35, 0.6)
        x += bw + rng.uniform(0, 6)

    # ground: grass/bushes (vegetation) left and right of a road in perspective
    vx = w / 2 + rng.uniform(-0.2, 0.2) * w
    half_bottom = rng.uniform(0.35, 0.7) * w
    below = yy >= horizon
    depth = np.clip((yy - horizon) / (h - horizon), 0, 1)  # 0 at the horizon, 1 at the bottom
    grass = rng.uniform([40, 90, 30], [110, 160, 80])
    _paint(image, label, below, grass, VEGETATION)
    image[below] *= (0.75 + 0.5 * rng.random((h, w)))[below][:, None]  # grass texture
    road_half = half_bottom * depth
    road = below & (np.abs(xx - vx) <= road_half)
    road_grey = rng.uniform(60, 130)
    _paint(image, label, road, road_grey * rng.uniform(0.92, 1.05, 3), ROAD)
    image[road] *= (0.9 + 0.2 * depth[road])[:, None]  # darker far away

    # lane marks: dashed lines from the vanishing point, width growing with proximity
    lanes = int(rng.integers(1, 4))
    paint = np.array([240, 240, 235]) if rng.random() < 0.7 else np.array([235, 200, 60])
    phase, period = rng.uniform(0, 1), rng.uniform(0.18, 0.3)
    for k in range(lanes):
        offset = (k + 1) / (lanes + 1) * 2 - 1  # -1..1 across the road
        centre = vx + offset * road_half
        width = 0.4 + 1.6 * depth
        dashes = ((np.sqrt(depth) / period + phase) % 1.0) < 0.55
        where = road & (np.abs(xx - centre) <= width) & dashes & (depth > 0.06)
        _paint(image, label, where, paint * rng.uniform(0.85, 1.0), LANE)

    # trees on both sides: round crowns on trunks, standing near the horizon
    for _ in range(int(rng.integers(2, 7))):
        side = rng.choice([-1, 1])
        base_y = horizon + rng.uniform(0, 0.35) * (h - horizon)
        d = (base_y - horizon) / (h - horizon)
        cx = vx + side * (half_bottom * d + rng.uniform(3, 25))
        r = 3 + 12 * d + rng.uniform(0, 4)
        crown = ((xx - cx) ** 2 + (yy - (base_y - 1.6 * r)) ** 2) < r ** 2
        trunk = (np.abs(xx - cx) < max(0.7, r / 6)) & (yy >= base_y - r) & (yy < base_y)
        green = rng.uniform([20, 70, 20], [90, 150, 70])
        _paint(image, label, trunk, np.array([90, 60, 40]) * rng.uniform(0.7, 1.2), VEGETATION)
        _paint(image, label, crown, green, VEGETATION)
        image[crown] *= (0.7 + 0.6 * rng.random((h, w)))[crown][:, None]

    # vehicles: drawn far to near so nearer ones cover farther ones
    cars = sorted(rng.uniform(0.08, 0.95, int(rng.integers(1, 5))))
    for d in cars:
        y_bottom = horizon + d * (h - horizon)
        half = half_bottom * d
        cx = vx + rng.uniform(-0.8, 0.8) * half
        cw, ch = (6 + 40 * d) * rng.uniform(0.8, 1.2), (4 + 22 * d) * rng.uniform(0.8, 1.2)
        body = (np.abs(xx - cx) <= cw / 2) & (yy <= y_bottom) & (yy > y_bottom - ch)
        colour = rng.uniform(20, 235, 3)
        _paint(image, label, body, colour, VEHICLE)
        glass = body & (yy < y_bottom - 0.55 * ch) & (np.abs(xx - cx) <= 0.38 * cw)
        image[glass] = rng.uniform(30, 80, 3)
        wheels = body & (yy > y_bottom - 0.18 * ch) & (np.abs(np.abs(xx - cx) - 0.33 * cw) < 0.1 * cw + 0.5)
        image[wheels] = 20.0

    # the ego vehicle's hood: not part of the scene, ignored by the metric
    if rng.random() < 0.5:
        hood_top = h - rng.uniform(0.06, 0.14) * h
        hood = yy >= hood_top + 0.002 * (xx - w / 2) ** 2 / (w / 64)
        _paint(image, label, hood, rng.uniform(10, 60, 3), IGNORE_INDEX)

    image *= rng.uniform(0.8, 1.15)  # exposure
    image += rng.normal(0.0, rng.uniform(3, 10), image.shape)  # sensor noise
    return np.clip(np.rint(image), 0, 255).astype(np.uint8), label


def write_split(root: Path, split: str, count: int, seed: int) -> None:
    from PIL import Image

    img_dir, ann_dir = root / "img_dir" / split, root / "ann_dir" / split
    img_dir.mkdir(parents=True, exist_ok=True)
    ann_dir.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        image, label = make_scene(np.random.default_rng(seed + i))
        stem = f"{split}_{i:06d}"
        Image.fromarray(image, mode="RGB").save(img_dir / f"{stem}.png", optimize=False)
        Image.fromarray(label, mode="L").save(ann_dir / f"{stem}.png", optimize=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_ROOT)
    parser.add_argument("--count", type=int, default=EVAL_COUNT)
    args = parser.parse_args()
    write_split(args.out, "val", args.count, EVAL_SEED)
    print(f"wrote {args.count} scenes to {args.out}")


if __name__ == "__main__":
    main()
