"""The model config's evaluator -> CenterPoint's metric settings.

AWML's model configs name their metric: `*_t4metric_v2.py` sets `val_evaluator.type =
"T4MetricV2"` (tier4 perception_eval: mAP/mAPH per BEV distance bucket), the older
configs `"T4Metric"` (a subclass of mmdet3d's NuScenesMetric: the nuScenes detection
eval with per-class ranges). The evaluator picks `metric` and its parameters; a deploy
config that sets one of them wins, with a note (awml_harness.openmmlab.load_settings).

    T4MetricV2   metric="t4"; perception_evaluator_configs.evaluation_config_dict:
                 zip(min_distance, max_distance) -> metric_distance_ranges (the last is
                 the headline, as T4MetricV2's last evaluator is its main one);
                 center_distance_bev_thresholds -> distance_thresholds with
                 metric_matching="center_distance_bev" (else plane_distance_thresholds,
                 iou_3d_thresholds, iou_2d_thresholds, in that order)
    T4Metric     metric="nuscenes"; eval_class_range -> metric_class_range
    NuScenesMetric  metric="nuscenes"
    other        refused by name (unless the deploy config sets `metric`)

`val_evaluator` is read (what the deployment framework reads), else `test_evaluator`.
"""

from __future__ import annotations

from typing import Any

from awml_harness.openmmlab import ConfigReader, strip_scope

_V2 = "T4MetricV2"
_NUSCENES = ("T4Metric", "NuScenesMetric")
#: T4MetricV2 fields that describe where results go or what else it reports, not the metric
_V2_BOOKKEEPING = ("data_root", "ann_file", "training_statistics_parquet_path", "testing_statistics_parquet_path",
                   "validation_statistics_parquet_path", "output_dir", "dataset_name", "num_workers",
                   "scene_batch_size", "write_metric_summary", "experiment_name", "experiment_group_name",
                   "name_mapping", "class_names", "perception_evaluator_configs", "critical_object_filter_config",
                   "frame_pass_fail_config", "collect_device", "prefix", "results_pickle_path", "checkpoint_path",
                   "evaluate_frame_prefix")
_MATCHERS = (("center_distance_bev_thresholds", "center_distance_bev"), ("plane_distance_thresholds", "plane_distance"),
             ("iou_3d_thresholds", "iou_3d"), ("iou_2d_thresholds", "iou_2d"))


def read_evaluator(r: ConfigReader, class_names: tuple[str, ...] | None) -> None:
    path = "val_evaluator" if r.get("val_evaluator", None) is not None else "test_evaluator"
    ev = r.get(path, None)
    if ev is None:
        return
    if isinstance(ev, (list, tuple)):  # mmengine allows a list of evaluators: the first one decides
        path, ev = f"{path}[0]", (ev[0] if ev else None)
    if not isinstance(ev, dict) or not isinstance(ev.get("type"), str):
        r.refuse_unless_set("metric", path, ev, "an evaluator dict with a `type`")
        return
    kind = strip_scope(ev["type"])
    if kind == _V2:
        _t4metric_v2(r, path, ev, class_names)
    elif kind in _NUSCENES:
        r.suggest("metric", "nuscenes", f"{path}.type")
        ranges = ev.get("eval_class_range")
        if ranges is not None:
            r.suggest("metric_class_range", {str(k): float(v) for k, v in dict(ranges).items()},
                      f"{path}.eval_class_range")
        if ev.get("filter_attributes"):
            r.note(f"{path}.filter_attributes", ev["filter_attributes"], "ground truth is not filtered by "
                   "attribute here (every box of the info file counts)")
    else:
        r.refuse_unless_set("metric", f"{path}.type", ev["type"],
                            f"an evaluator the harness implements: {_V2} (metric='t4'), "
                            f"{' / '.join(_NUSCENES)} (metric='nuscenes')")


def _t4metric_v2(r: ConfigReader, path: str, ev: dict[str, Any], class_names: tuple[str, ...] | None) -> None:
    src = f"{path}.perception_evaluator_configs.evaluation_config_dict"
    conf = r.get(src, None)
    r.suggest("metric", "t4", f"{path}.type")
    if not isinstance(conf, dict):
        r.refuse_unless_set("metric", src, conf, "T4MetricV2's evaluation_config_dict (distance buckets, thresholds)")
        return
    task = conf.get("evaluation_task", "detection")
    if task != "detection":
        r.problem(f"{src}.evaluation_task", task, "'detection' (3D boxes)")
    lo, hi = conf.get("min_distance"), conf.get("max_distance")
    if lo is not None or hi is not None:
        lo_list = list(lo) if isinstance(lo, (list, tuple)) else [lo]
        hi_list = list(hi) if isinstance(hi, (list, tuple)) else [hi]
        if len(lo_list) != len(hi_list):
            r.problem(f"{src}.min_distance", lo, f"one minimum per max_distance entry ({len(hi_list)})")
        else:
            r.suggest("metric_distance_ranges", tuple((float(a), float(b)) for a, b in zip(lo_list, hi_list, strict=True)),
                      f"{src}.min_distance/max_distance")
    matchers = [(key, name) for key, name in _MATCHERS if conf.get(key)]
    if matchers:
        key, name = matchers[0]
        r.suggest("metric_matching", name, f"{src}.{key}")
        r.suggest("distance_thresholds", tuple(float(t) for t in conf[key]), f"{src}.{key}")
        for other, _ in matchers[1:]:
            r.note(f"{src}.{other}", conf[other], f"the harness computes one matcher ({key}); "
                   "T4MetricV2 reports each configured one")
    points = conf.get("min_point_numbers", 0)
    if any(int(p) > 0 for p in (points if isinstance(points, (list, tuple)) else [points])):
        r.problem(f"{src}.min_point_numbers", points, "0 (the harness does not filter ground truth by point count)")
    if conf.get("matching_class_agnostic_fps"):
        r.problem(f"{src}.matching_class_agnostic_fps", True, "False (false positives are matched per class here)")
    labels = conf.get("target_labels")
    if labels is not None and class_names is not None and [str(x).lower() for x in labels] != [c.lower() for c in class_names]:
        r.problem(f"{src}.target_labels", list(labels), f"the head's classes {list(class_names)}, in that order")
    ignored = {k: ev[k] for k in ("critical_object_filter_config", "frame_pass_fail_config") if ev.get(k) is not None}
    for k, v in ignored.items():
        r.note(f"{path}.{k}", v, "the harness reports mAP/mAPH, not T4MetricV2's per-frame pass/fail")
    unknown = sorted(k for k in ev if k not in (*_V2_BOOKKEEPING, "type") and not str(k).startswith("_"))
    if unknown:
        r.problem(f"{path}.{unknown[0]}", ev[unknown[0]], f"a T4MetricV2 argument the harness understands: "
                                                          f"{sorted(_V2_BOOKKEEPING)}")
