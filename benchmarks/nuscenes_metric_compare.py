"""The nuScenes devkit's own detection eval on harness frames (the reference of CenterPoint's
metric="nuscenes"), and a comparison of the two on random scenes and the shipped model.

    pip install --no-deps nuscenes-devkit   # plus the `nuscenes` extra: pyquaternion, opencv-python-headless
    python -m benchmarks.nuscenes_metric_compare [--scenes 40] [--shipped]

Frames are (prediction, target) dicts as CenterPoint's evaluator takes them: boxes (N, 7)
[x, y, z, l, w, h, yaw], scores, labels, velocities (N, 2). Each box becomes a devkit
DetectionBox (rotation: the quaternion about z of its yaw, ego_translation: its centre),
the class range is applied as `filter_eval_boxes` does (ego distance < range), and
`accumulate` / `calc_ap` / `calc_tp` and DetectionMetrics' means and NDS do the rest.

The devkit's package `__init__` imports its dataset browser (cv2, sklearn, tqdm, ...),
which the evaluation code does not use; when that import fails, the `nuscenes` package
is entered without running its `__init__`, so its eval modules load on their own.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import types
from collections.abc import Sequence
from typing import Any

import numpy as np

THRESHOLDS = (0.5, 1.0, 2.0, 4.0)


class DevkitMissing(RuntimeError):
    pass


_DEVKIT: list[Any] = []


def devkit() -> Any:
    if _DEVKIT:
        return _DEVKIT[0]
    if importlib.util.find_spec("nuscenes") is None:
        raise DevkitMissing("nuscenes-devkit is not installed (pip install awml-harness[nuscenes] && pip install --no-deps nuscenes-devkit)")
    try:
        importlib.import_module("nuscenes")
    except ImportError:  # the dataset browser's imports; the eval modules need none of them
        spec = importlib.util.find_spec("nuscenes")
        pkg = types.ModuleType("nuscenes")
        pkg.__path__ = list(spec.submodule_search_locations)  # type: ignore[union-attr]
        pkg.__spec__ = spec
        sys.modules["nuscenes"] = pkg
    try:
        algo = importlib.import_module("nuscenes.eval.detection.algo")
        common = importlib.import_module("nuscenes.eval.common.data_classes")
        det = importlib.import_module("nuscenes.eval.detection.data_classes")
        utils = importlib.import_module("nuscenes.eval.common.utils")
        from pyquaternion import Quaternion
    except ImportError as exc:
        raise DevkitMissing(f"nuscenes-devkit's eval modules do not import here: {exc}") from exc
    _DEVKIT.append(types.SimpleNamespace(algo=algo, EvalBoxes=common.EvalBoxes, DetectionBox=det.DetectionBox,
                                         center_distance=utils.center_distance, Quaternion=Quaternion))
    return _DEVKIT[0]


def reference(frames: Sequence[tuple[dict, dict]], classes: Sequence[str],
              class_range: dict[str, float] | None = None) -> dict[str, Any]:
    """The devkit's numbers for `frames`, as its DetectionEval would compute them."""
    dk = devkit()
    gt, pred = dk.EvalBoxes(), dk.EvalBoxes()

    def boxes(token: str, d: dict, is_pred: bool) -> list:
        out = []
        for i in range(len(d["labels"])):
            b = d["boxes"][i]
            name = classes[int(d["labels"][i])]
            if class_range is not None and np.hypot(b[0], b[1]) >= class_range[name]:
                continue  # filter_eval_boxes: ego_dist < class range
            out.append(dk.DetectionBox(
                sample_token=token, translation=tuple(float(v) for v in b[:3]), size=tuple(float(v) for v in b[3:6]),
                rotation=tuple(dk.Quaternion(axis=[0, 0, 1], angle=float(b[6])).elements),
                velocity=tuple(float(v) for v in d["velocities"][i]) if "velocities" in d else (0.0, 0.0), ego_translation=tuple(float(v) for v in b[:3]),
                detection_name=name, detection_score=float(d["scores"][i]) if is_pred else -1.0,
            ))
        return out

    for i, (p, t) in enumerate(frames):
        gt.add_boxes(str(i), boxes(str(i), t, False))
        pred.add_boxes(str(i), boxes(str(i), p, True))
    aps: dict[str, dict[float, float]] = {}
    errs: dict[str, dict[str, float]] = {}
    names = {"trans_err": "ATE", "scale_err": "ASE", "orient_err": "AOE", "vel_err": "AVE", "attr_err": "AAE"}
    for c in classes:
        aps[c] = {}
        for th in THRESHOLDS:
            md = dk.algo.accumulate(gt, pred, c, dk.center_distance, th)
            aps[c][th] = dk.algo.calc_ap(md, 0.1, 0.1)
            if th == 2.0:
                for metric, short in names.items():
                    if c == "traffic_cone" and metric in ("attr_err", "vel_err", "orient_err"):
                        v = np.nan
                    elif c == "barrier" and metric in ("attr_err", "vel_err"):
                        v = np.nan
                    else:
                        v = dk.algo.calc_tp(md, 0.1, metric)
                    errs.setdefault(short, {})[c] = v
    per_class = {c: float(np.mean(list(aps[c].values()))) for c in classes}
    mean_ap = float(np.mean(list(per_class.values())))
    tp = {k: float(np.nanmean([errs[k][c] for c in classes])) for k in names.values()}
    nds = (5 * mean_ap + np.sum([max(0.0, 1.0 - tp[k]) for k in names.values()])) / (5 + 5)
    return {"aps": aps, "per_class": per_class, "mAP": mean_ap, "errs": errs, "tp": tp, "NDS": float(nds)}


def ours(frames: Sequence[tuple[dict, dict]], classes: Sequence[str],
         class_range: dict[str, float] | None = None) -> dict[str, Any]:
    from projects.CenterPoint.metrics import CenterDistanceEvaluator

    ev = CenterDistanceEvaluator(classes, THRESHOLDS, class_range=class_range)
    for i, (p, t) in enumerate(frames):
        ev.add(str(i), p, t)
    return ev.compute()


def differences(got: dict[str, Any], ref: dict[str, Any], classes: Sequence[str]) -> dict[str, float]:
    """|ours - devkit| per number (NaN on both sides: 0); the TP errors only where ours has them."""
    def d(a: float, b: float) -> float:
        if np.isnan(a) and np.isnan(b):
            return 0.0
        return float("inf") if np.isnan(a) or np.isnan(b) else abs(a - b)

    out = {"mAP": d(got["mAP"], ref["mAP"])}
    for c in classes:
        out[f"AP {c}"] = d(got["per_class_AP"][c], ref["per_class"][c])
        for th in THRESHOLDS:
            out[f"AP {c}@{th:g}"] = d(got["AP_by_class_and_distance"][f"{c}@{th:g}m"], ref["aps"][c][th])
    for k, per in got["per_class_TP_errors"].items():
        out[f"m{k}"] = d(got[f"m{k}"], ref["tp"][k])
        for c in classes:
            out[f"{k} {c}"] = d(per[c], ref["errs"][k][c])
    if "NDS" in got:
        out["NDS"] = d(got["NDS"], ref["NDS"])
    return out


def random_scenes(n: int, seed: int, num_classes: int) -> list[tuple[dict, dict]]:
    """Ties (scores and positions on coarse grids), empty frames, duplicated predictions,
    the last class never present."""
    rng = np.random.default_rng(seed)
    frames = []
    for f in range(n):
        m = 0 if f % 6 == 2 else int(rng.integers(0, 10))
        gt = np.column_stack([np.round(rng.uniform(-30, 30, (m, 3)) * 2) / 2, rng.uniform(0.5, 5, (m, 3)),
                              rng.uniform(-np.pi, np.pi, m)])
        g_lab = rng.integers(0, num_classes - 1, m)
        hit = rng.random(m) < 0.7
        pb = np.round((gt + rng.normal(0, 0.7, (m, 7)) * [1, 1, 0.2, 0.1, 0.1, 0.1, 0.5])[hit] * 4) / 4
        pb[:, 3:6] = np.abs(pb[:, 3:6]) + 0.1
        pl = g_lab[hit]
        k = int(rng.integers(0, 4))
        fps = np.column_stack([rng.uniform(-30, 30, (k, 3)), np.full((k, 3), 2.0), rng.uniform(-np.pi, np.pi, k)])
        pb, pl = np.concatenate([pb, fps]), np.concatenate([pl, rng.integers(0, num_classes - 1, k)])
        scores = np.round(rng.uniform(0.05, 1.0, len(pb)) * 10) / 10
        if len(pb) and rng.random() < 0.3:
            j = int(rng.integers(0, len(pb)))
            pb, pl, scores = np.vstack([pb, pb[j]]), np.append(pl, pl[j]), np.append(scores, scores[j])
        frames.append((
            {"boxes": pb, "scores": scores, "labels": pl, "velocities": rng.normal(0, 2, (len(pb), 2))},
            {"boxes": gt, "labels": g_lab, "velocities": rng.normal(0, 2, (m, 2))},
        ))
    return frames


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shipped", action="store_true", help="also the shipped model on the shipped data")
    parser.add_argument("--tol", type=float, default=1e-6)
    args = parser.parse_args()
    try:
        devkit()
    except DevkitMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    classes = ("car", "pedestrian", "barrier", "traffic_cone", "bus")
    runs: list[tuple[str, Any, Sequence[str], Any]] = []
    for seed in range(args.seeds if args.scenes else 0):
        frames = random_scenes(args.scenes, seed, len(classes))
        runs.append((f"random seed {seed}", frames, classes, None))
        runs.append((f"random seed {seed}, class_range", frames, classes,
                     {"car": 25.0, "pedestrian": 20.0, "barrier": 30.0, "traffic_cone": 15.0, "bus": 25.0}))
    if args.shipped:
        from benchmarks.t4_metric_compare import shipped_frames

        frames, names = shipped_frames()
        runs.append(("shipped model", frames, names, None))
    worst = 0.0
    for name, frames, names, class_range in runs:
        got, ref = ours(frames, names, class_range), reference(frames, names, class_range)
        diff = differences(got, ref, names)
        w = max(diff.values())
        worst = max(worst, w)
        extra = f"  NDS {got['NDS']:.6f} vs {ref['NDS']:.6f}" if "NDS" in got else ""
        print(f"{name:34s} mAP {got['mAP']:.6f} vs {ref['mAP']:.6f}  mATE {got['mATE']:.6f} vs {ref['tp']['ATE']:.6f}"
              f"{extra}  max |diff| over {len(diff)} numbers {w:.1e}")
    print(f"largest difference {worst:.2e} (tolerance {args.tol:g})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
