"""Train the small UNet shipped as projects/SemanticSegmentation/checkpoint.pth.

    python -m projects.SemanticSegmentation.generate   # the evaluation split (seeded)
    python -m projects.SemanticSegmentation.train      # a few CPU minutes

Training scenes come from the same generator with another seed (`TRAIN_SEED`), drawn
in memory and never shipped; each step sees a batch of random crops (`--crop`, the
network is fully convolutional; crops make a step cheap on a shared CPU) with random
horizontal mirroring.
Loss: pixel-wise cross-entropy with `ignore_index` 255 and the rare thin class
(lane_marking) weighted up. The script ends by evaluating exactly what the harness
evaluates — the shipped split through the project's preprocessing and metric — and
prints mIoU, so the number in the README can be checked against the suite's.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from projects.SemanticSegmentation.data import (
    CLASS_NAMES,
    IGNORE_INDEX,
    MEAN,
    STD,
    SegDataset,
    normalize,
    read_image,
    read_label,
)
from projects.SemanticSegmentation.generate import DATA_ROOT, TRAIN_SEED, make_scene
from projects.SemanticSegmentation.metrics import SegmentationEvaluator
from projects.SemanticSegmentation.model import UNet

HERE = Path(__file__).resolve().parent
CHECKPOINT = HERE / "checkpoint.pth"
BASE_CHANNELS, DEPTH = 8, 3


def evaluate(model: nn.Module) -> dict:
    ev = SegmentationEvaluator(CLASS_NAMES, IGNORE_INDEX)
    model.eval()
    with torch.no_grad():
        for sample in SegDataset(DATA_ROOT):
            logits = model(torch.from_numpy(normalize(read_image(sample.img_path))))
            ev.add(sample.sample_id, logits.argmax(1)[0].numpy().astype(np.uint8), read_label(sample.seg_map_path))
    return ev.compute()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=320)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--crop", type=int, nargs=2, default=(32, 64), metavar=("H", "W"))
    parser.add_argument("--lr", type=float, default=6e-3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=CHECKPOINT)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rng = np.random.default_rng(1)
    scenes = [make_scene(np.random.default_rng(TRAIN_SEED + i)) for i in range(args.scenes)]
    images = np.stack([(img.astype(np.float32) - MEAN) / STD for img, _ in scenes]).transpose(0, 3, 1, 2)
    labels = np.stack([lab for _, lab in scenes]).astype(np.int64)
    weights = torch.ones(len(CLASS_NAMES))
    weights[CLASS_NAMES.index("lane_marking")] = 3.0

    model = UNet(3, len(CLASS_NAMES), BASE_CHANNELS, DEPTH)
    steps = args.epochs * (len(scenes) // args.batch_size)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=steps, pct_start=0.1)
    loss_fn = nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE_INDEX)
    start = time.time()
    step = 0
    for epoch in range(args.epochs):
        model.train()
        order = rng.permutation(len(scenes))
        total = 0.0
        for b in range(len(scenes) // args.batch_size):
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            ch, cw = args.crop
            top = rng.integers(0, images.shape[2] - ch + 1, len(idx))
            left = rng.integers(0, images.shape[3] - cw + 1, len(idx))
            x = np.stack([images[i, :, t:t + ch, c:c + cw] for i, t, c in zip(idx, top, left, strict=True)])
            y = np.stack([labels[i, t:t + ch, c:c + cw] for i, t, c in zip(idx, top, left, strict=True)])
            flip = rng.random(len(idx)) < 0.5
            x = np.where(flip[:, None, None, None], x[..., ::-1], x)
            y = np.where(flip[:, None, None], y[..., ::-1], y)
            loss = loss_fn(model(torch.from_numpy(np.ascontiguousarray(x))), torch.from_numpy(np.ascontiguousarray(y)))
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            step += 1
            total += float(loss.detach())
        print(f"epoch {epoch + 1}/{args.epochs} loss {total / (b + 1):.4f} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    torch.save(model.state_dict(), args.out)
    m = evaluate(model)
    print(f"saved {args.out} ({args.out.stat().st_size / 1e3:.0f} kB); eval split: mIoU {m['mIoU']:.4f} "
          f"mAcc {m['mAcc']:.4f} pixel_accuracy {m['pixel_accuracy']:.4f}")
    print("per-class IoU: " + ", ".join(f"{k} {v:.3f}" for k, v in m["per_class_iou"].items()))


if __name__ == "__main__":
    main()
