"""CenterPoint's metric="t4" against tier4 perception_eval itself, driven as AWML's T4MetricV2 drives it.

perception_eval is not on PyPI. Extract the commit AWML's Dockerfile pins (9d8c977) and
its import-time dependencies outside the repository, then run this with both on the path:

    git -C <mirror of tier4/autoware_perception_evaluation> archive 9d8c977 perception_eval | tar -x -C /tmp/pe
    # perception_eval reads its own version from package metadata
    mkdir -p /tmp/pe_site/perception_eval-1.0.0.dist-info
    printf 'Metadata-Version: 2.1\\nName: perception_eval\\nVersion: 1.0.0\\n' > /tmp/pe_site/perception_eval-1.0.0.dist-info/METADATA
    pip install --no-deps --target /tmp/pe_site shapely scikit-learn scipy joblib threadpoolctl tqdm \\
        cachetools cloudpickle narwhals pandas plotly   # nuscenes-devkit + pyquaternion in the venv
    PYTHONPATH=.:/tmp/pe/perception_eval:/tmp/pe_site python -m benchmarks.t4_metric_compare [--scenes 40] [--shipped]

For every range of AWML's base.py ([0, 50), [50, 90), [90, 121), [0, 121) m) it prints
mAP / mAPH, every per-class mean and every per-class, per-threshold AP / APH from both,
and the largest difference; exit status 1 when one exceeds --tol (default 1e-6).

Matchers: every one of perception_eval's five 3D matchers by default (`--matching` picks),
IoU at 0.1/0.3/0.5/0.7 (AWML sets no IoU thresholds), the distances at 0.5/1/2/4 m.

Data: `--scenes N` seeded random scenes (scores on a coarse grid so that ties occur,
positions up to 130 m so that every range is populated, empty frames, duplicated
predictions, a class that never occurs); `--shipped` the shipped CenterPoint checkpoint
on the shipped evaluation set (fixtures/centerpoint), decoded as the project does.

Equal scores: perception_eval orders them with numpy's default (unstable) argsort, which
depends on the CPU (t4_metric.py, convention 2); metric="t4" makes the same call on the
same list, so the two agree on the machine and numpy they run on.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

import numpy as np

from projects.CenterPoint.metrics import CenterDistanceEvaluator
from projects.CenterPoint.t4_metric import DEFAULT_RANGES, range_name

THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
IOU_THRESHOLDS = (0.1, 0.3, 0.5, 0.7)  # AWML's config sets none for IoU
MATCHERS = ("center_distance_bev", "center_distance", "plane_distance", "iou_2d", "iou_3d")


def thresholds_of(matching: str) -> tuple[float, ...]:
    return IOU_THRESHOLDS if matching.startswith("iou_") else THRESHOLDS
CLASSES = ("car", "truck", "bus", "bicycle", "pedestrian")


def reference(frames: Sequence[tuple[dict, dict]], class_names: Sequence[str], matching: str) -> dict[str, Any]:
    """perception_eval's Map per range, objects built exactly as T4MetricV2 builds them."""
    from perception_eval.common.dataset import FrameGroundTruth
    from perception_eval.common.label import AutowareLabel, Label
    from perception_eval.common.object import DynamicObject
    from perception_eval.common.shape import Shape, ShapeType
    from perception_eval.config.perception_evaluation_config import PerceptionEvaluationConfig
    from perception_eval.evaluation.result.perception_frame_config import PerceptionPassFailConfig
    from perception_eval.manager import PerceptionEvaluationManager
    from pyquaternion import Quaternion

    def label(i: int) -> Any:
        name = class_names[i] if 0 <= i < len(class_names) else "unknown"
        return Label(label=AutowareLabel.__members__.get(name.upper(), AutowareLabel.UNKNOWN), name=name)

    def objects(d: dict, t: float, gt: bool) -> list[Any]:
        out = []
        for i in range(len(d["labels"])):
            b = np.asarray(d["boxes"][i], np.float64)
            score = 1.0 if gt else float(d["scores"][i])
            if np.isnan(b).any() or np.isnan(score):
                continue
            out.append(DynamicObject(
                unix_time=t, frame_id="base_link", position=tuple(b[:3]),
                orientation=Quaternion(np.cos(b[6] / 2), 0, 0, np.sin(b[6] / 2)),
                shape=Shape(shape_type=ShapeType.BOUNDING_BOX, size=tuple(b[3:6])),
                velocity=(0.0, 0.0, 0.0), semantic_score=score, semantic_label=label(int(d["labels"][i])),
                **({"pointcloud_num": 1} if gt else {}),
            ))
        return out

    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for lo, hi in DEFAULT_RANGES:
            config = {
                "evaluation_task": "detection", "target_labels": list(class_names),
                "center_distance_bev_thresholds": list(THRESHOLDS), "plane_distance_thresholds": [2.0, 4.0],
                "iou_2d_thresholds": None, "iou_3d_thresholds": None, "label_prefix": "autoware",
                "min_distance": lo, "max_distance": hi, "min_point_numbers": 0,
                "matching_class_agnostic_fps": False,
            }  # AWML's base.py, then the matcher under test with its thresholds
            config[f"{matching}_thresholds"] = list(thresholds_of(matching))
            cfg = PerceptionEvaluationConfig(
                dataset_paths=[tmp], frame_id="base_link", result_root_directory=tmp, load_raw_data=False,
                evaluation_config_dict=config,
            )
            manager = PerceptionEvaluationManager(evaluation_config=cfg, load_ground_truth=False, metric_output_dir=None)
            pass_fail = PerceptionPassFailConfig(evaluator_config=cfg, target_labels=list(class_names),
                                                 matching_threshold_list=[2.0] * len(class_names))
            for i, (pred, target) in enumerate(frames):
                t = float(i)
                gt = FrameGroundTruth(unix_time=t, frame_name=str(i), objects=objects(target, t, True))
                manager.add_frame_result(unix_time=t, ground_truth_now_frame=gt, estimated_objects=objects(pred, t, False),
                                         critical_object_filter_config=None, frame_pass_fail_config=pass_fail)
            score = manager.get_scene_result()
            mode = matching.replace("_bev", " bev").replace("_", " ")
            maps = [m for m in score.mean_ap_values if m.matching_mode.value.lower() == mode]
            m = maps[0]
            entry = {"mAP": m.map, "mAPH": m.maph, "per_class_AP": {}, "per_class_APH": {}, "AP_by_class_and_distance": {}}
            for lab, aps in m.label_to_aps.items():
                entry["per_class_AP"][lab.value] = m.label_mean_to_ap[lab]
                entry["per_class_APH"][lab.value] = m.label_mean_to_aph[lab]
                for ap in aps:
                    unit = "" if matching.startswith("iou_") else "m"
                    entry["AP_by_class_and_distance"][f"{lab.value}@{ap.matching_threshold:g}{unit}"] = ap.ap
            out[range_name(lo, hi)] = entry
    return out


def ours(frames: Sequence[tuple[dict, dict]], class_names: Sequence[str], matching: str) -> dict[str, Any]:
    ev = CenterDistanceEvaluator(class_names, thresholds_of(matching), metric="t4", matching=matching)
    for i, (pred, target) in enumerate(frames):
        ev.add(str(i), pred, target)
    return ev.compute()["by_range"]


def random_scenes(n: int, seed: int, noise: float = 1.0) -> list[tuple[dict, dict]]:
    """`noise` scales the predictions' errors (IoU matchers need boxes that overlap)."""
    rng = np.random.default_rng(seed)
    frames = []
    for f in range(n):
        if f % 7 == 3:  # an empty frame now and then
            frames.append(({"boxes": np.zeros((0, 7)), "scores": np.zeros(0), "labels": np.zeros(0, np.int64)},
                           {"boxes": np.zeros((0, 7)), "labels": np.zeros(0, np.int64)}))
            continue
        m = int(rng.integers(0, 8))
        r = rng.uniform(0, 130, m)
        a = rng.uniform(-np.pi, np.pi, m)
        gt = np.column_stack([r * np.cos(a), r * np.sin(a), rng.uniform(-1, 1, m), rng.uniform(0.5, 5, (m, 3)),
                              rng.uniform(-np.pi, np.pi, m)])
        g_lab = rng.choice([0, 1, 3, 4], m)  # "bus" (2) never occurs
        hit = rng.random(m) < 0.7
        err = rng.normal(0, 0.8, (m, 7)) * [1, 1, 0.3, 0.1, 0.1, 0.1, 0.6] * noise
        pb = (gt + err)[hit]
        pl = g_lab[hit].copy()
        k = int(rng.integers(0, 4))  # false positives anywhere
        r2, a2 = rng.uniform(0, 130, k), rng.uniform(-np.pi, np.pi, k)
        fps = np.column_stack([r2 * np.cos(a2), r2 * np.sin(a2), np.zeros(k), np.full((k, 3), 2.0),
                               rng.uniform(-np.pi, np.pi, k)])
        pb = np.concatenate([pb, fps])
        pl = np.concatenate([pl, rng.choice([0, 1, 3, 4], k)])
        scores = np.round(rng.uniform(0.1, 1.0, len(pb)) * 20) / 20  # 19 values: ties
        if len(pb) and rng.random() < 0.3:  # a duplicated prediction
            j = int(rng.integers(0, len(pb)))
            pb, pl, scores = np.vstack([pb, pb[j]]), np.append(pl, pl[j]), np.append(scores, scores[j])
        frames.append(({"boxes": pb, "scores": scores, "labels": pl}, {"boxes": gt, "labels": g_lab}))
    return frames


def shipped_frames() -> tuple[list[tuple[dict, dict]], tuple[str, ...]]:
    """The shipped checkpoint's PyTorch predictions on the shipped evaluation set."""
    import torch

    from awml_harness.config.read import read_file
    from awml_harness.config.validation import from_mapping
    from awml_harness.openmmlab import load_checkpoint
    from projects.CenterPoint.data import InfoDataset, PointLoading
    from projects.CenterPoint.decode import decode
    from projects.CenterPoint.model import CenterPoint
    from projects.CenterPoint.openmmlab import KEY_MAP
    from projects.CenterPoint.settings import CenterPointSettings
    from projects.CenterPoint.voxelize import decorate, scatter, voxelize

    raw = read_file("projects/CenterPoint/configs/deploy_config.py")
    s = from_mapping(CenterPointSettings, raw["model_cfg"], "model_cfg")
    model = CenterPoint(s)
    load_checkpoint(model, raw["checkpoint_path"], KEY_MAP, strict=True)
    model.eval()
    # the project's own point loading (key frame + sweeps, use_dim columns)
    loading = PointLoading(s.point_columns, s.load_dim, s.sweeps_num, s.remove_close, s.pad_empty_sweeps)
    data = InfoDataset(raw["runtime_io"]["info_file"], raw["runtime_io"]["data_root"], loading)
    nx, ny, _ = s.grid_size
    frames = []
    with torch.no_grad():
        for sample in data:
            pts = np.ascontiguousarray(sample.points[:, : s.num_point_features], np.float32)
            vox = voxelize(pts, s.point_cloud_range, s.voxel_size, s.max_points_per_voxel, s.max_voxels)
            feats = torch.from_numpy(decorate(vox, s.point_cloud_range, s.voxel_size))
            spatial = scatter(model.pts_voxel_encoder(feats).numpy(), vox.coords, (nx, ny))
            out = {k: v.numpy() for k, v in model.head_outputs(torch.from_numpy(spatial)).items()}
            frames.append((decode(out, s), {"boxes": sample.boxes, "labels": sample.labels}))
    return frames, tuple(s.class_names)


def compare(name: str, got: dict[str, Any], ref: dict[str, Any]) -> float:
    worst = 0.0

    def diff(a: float, b: float) -> float:
        if np.isnan(a) and np.isnan(b):
            return 0.0
        return float("inf") if np.isnan(a) or np.isnan(b) else abs(a - b)

    for rng_name, r in ref.items():
        g = got[rng_name]
        d = max([diff(g["mAP"], r["mAP"]), diff(g["mAPH"], r["mAPH"])]
                + [diff(g["per_class_AP"][c], v) for c, v in r["per_class_AP"].items()]
                + [diff(g["per_class_APH"][c], v) for c, v in r["per_class_APH"].items()]
                + [diff(g["AP_by_class_and_distance"][k], v) for k, v in r["AP_by_class_and_distance"].items()])
        worst = max(worst, d)
        print(f"{name:28s} {rng_name:24s} mAP {g['mAP']:.6f} vs {r['mAP']:.6f}   mAPH {g['mAPH']:.6f} vs "
              f"{r['mAPH']:.6f}   max |diff| over {2 + 2 * len(r['per_class_AP']) + len(r['AP_by_class_and_distance'])}"
              f" numbers {d:.1e}")
    return worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=40, help="random scenes per seed (0: none)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--shipped", action="store_true", help="also the shipped model on the shipped data")
    parser.add_argument("--tol", type=float, default=1e-6)
    parser.add_argument("--matching", nargs="+", choices=MATCHERS, default=list(MATCHERS))
    args = parser.parse_args()
    try:
        import perception_eval  # noqa: F401
    except ImportError as exc:
        print(f"perception_eval is not importable ({exc}); see this module's docstring", file=sys.stderr)
        return 2
    worst = 0.0
    for matching in args.matching:
        if args.scenes:
            for seed in range(args.seeds):
                frames = random_scenes(args.scenes, seed, 0.3 if matching.startswith("iou_") else 1.0)
                worst = max(worst, compare(f"random seed {seed} {matching}", ours(frames, CLASSES, matching),
                                           reference(frames, CLASSES, matching)))
    if args.shipped:
        frames, names = shipped_frames()
        for matching in args.matching:
            worst = max(worst, compare(f"shipped model {matching}", ours(frames, names, matching),
                                       reference(frames, names, matching)))
    print(f"largest difference {worst:.2e} (tolerance {args.tol:g})")
    return 0 if worst <= args.tol else 1


if __name__ == "__main__":
    sys.exit(main())
