"""An OpenMMLab (AWML/mmdet3d) pillar CenterPoint config -> CenterPointSettings.

What is read (anything else in `model` or `test_pipeline` is named in one ConfigError):

    model.data_preprocessor.voxel_layer   point_cloud_range, voxel_size, max_num_points
                                          -> max_points_per_voxel, max_voxels (test value)
    model.pts_voxel_encoder  PillarFeatureNet in_channels -> num_point_features,
                             feat_channels -> pfn_channels (cluster + voxel centre, no distance)
    model.pts_middle_encoder PointPillarsScatter (channels and output_shape checked)
    model.pts_voxel_encoder  or BackwardPillarFeatureNet (AWML: no z-centre offset, C = N + 5)
    model.pts_backbone       SECOND layer_nums, out_channels, layer_strides; or AWML's
                             ConvNeXt_PC depths, out_channels, out_indices,
                             layer_scale_init_value (first_downsample 1, no large_arch)
    model.pts_neck           SECONDFPN out_channels, upsample_strides, use_conv_for_no_stride
    model.pts_bbox_head      CenterHead: ONE task -> class_names; share_conv_channel, head_conv,
                             separate_head.final_kernel; bbox_coder out_size_factor (checked),
                             max_num -> pre_max_size, score_threshold
                             post_center_range -> post_center_range (all as the head uses them)
    model.test_cfg.pts       nms_type="circle", min_radius (squared metres, one per task),
                             post_max_size; score_threshold / post_center_limit_range are
                             read by mmdet3d's rotate NMS only, so they are ignored here
    val_evaluator            the metric (metric_config.py): T4MetricV2 -> metric="t4" with its
                             distance buckets and thresholds, T4Metric -> "nuscenes" + ranges
    test_pipeline            LoadPointsFromFile load_dim / use_dim (a prefix);
                             LoadPointsFromMultiSweeps sweeps_num, load_dim, use_dim (any
                             columns, e.g. [0, 1, 2, 4]), remove_close, pad_empty_sweeps;
                             PointsRangeFilter

Checkpoint names: the native model mirrors mmdet3d (`pts_voxel_encoder.pfn_layers.0.linear`,
`pts_backbone.blocks.0.0`, `pts_neck.deblocks.0.0`, `pts_bbox_head.shared_conv.conv`,
`pts_bbox_head.task_heads.0.heatmap.0.conv`); the table adds the original CenterPoint
head name `hm` -> `heatmap`.
"""

from __future__ import annotations

from typing import Any

from awml_harness.openmmlab import ConfigReader, Rule

KEY_MAP: tuple[Rule, ...] = (
    Rule(r"^(pts_bbox_head\.task_heads\.\d+\.)hm\.", r"\1heatmap.", "tianweiy/CenterPoint head name"),
)

_TRAIN_ONLY = ("init_cfg", "train_cfg", "pretrained", "loss_cls", "loss_bbox", "norm_bbox", "init_bias")
_COMMON_HEADS = {"reg": (2, 2), "height": (1, 2), "dim": (3, 2), "rot": (2, 2), "vel": (2, 2)}
_BN = {"eps": 1e-3, "momentum": 0.01}


def _close(a: Any, b: Any) -> bool:
    return len(a) == len(b) and all(abs(float(x) - float(y)) < 1e-6 for x, y in zip(a, b, strict=False))


def _bn_ok(kind: str) -> Any:
    return lambda v: v.get("type") == kind and all(abs(v.get(k, d) - d) < 1e-9 for k, d in _BN.items())


def translate(r: ConfigReader) -> dict[str, Any]:
    out: dict[str, Any] = {}
    m = "model"
    r.check_keys(m, ("data_preprocessor", "pts_voxel_encoder", "pts_middle_encoder", "pts_backbone", "pts_neck",
                     "pts_bbox_head", "test_cfg"), _TRAIN_ONLY)
    r.expect_type(m, ("CenterPoint",))

    dp, vl = f"{m}.data_preprocessor", f"{m}.data_preprocessor.voxel_layer"
    r.check_keys(dp, ("voxel", "voxel_layer", "voxel_type"), ())
    r.expect(f"{dp}.voxel", lambda v: v is True, "True (hard voxelization)")
    r.expect(f"{dp}.voxel_type", lambda v: v == "hard", "'hard'", "hard")
    r.check_keys(vl, ("max_num_points", "voxel_size", "point_cloud_range", "max_voxels"), ("deterministic",))
    pcr = r.expect(f"{vl}.point_cloud_range", lambda v: len(v) == 6, "[x0, y0, z0, x1, y1, z1]")
    voxel = r.expect(f"{vl}.voxel_size", lambda v: len(v) == 3, "[dx, dy, dz]")
    out["point_cloud_range"] = tuple(pcr) if pcr else None
    out["voxel_size"] = tuple(voxel) if voxel else None
    out["max_points_per_voxel"] = r.get(f"{vl}.max_num_points")
    mv = r.get(f"{vl}.max_voxels")
    out["max_voxels"] = mv[1] if isinstance(mv, (list, tuple)) and len(mv) == 2 else mv  # (train, test)

    ve = f"{m}.pts_voxel_encoder"
    r.check_keys(ve, ("in_channels", "feat_channels", "with_distance", "with_cluster_center", "with_voxel_center",
                      "voxel_size", "point_cloud_range", "norm_cfg", "mode", "legacy"), ("frozen_stages",))
    out["voxel_encoder"] = r.expect_type(ve, ("PillarFeatureNet", "BackwardPillarFeatureNet"))
    out["num_point_features"] = r.expect(f"{ve}.in_channels", lambda v: isinstance(v, int) and v >= 3, "an integer >= 3")
    out["pfn_channels"] = tuple(r.expect(f"{ve}.feat_channels", lambda v: len(v) >= 1, "PFN widths", (64,)) or ())
    r.expect(f"{ve}.with_distance", lambda v: v is False, "False", False)
    r.expect(f"{ve}.with_cluster_center", lambda v: v is True, "True", True)
    r.expect(f"{ve}.with_voxel_center", lambda v: v is True, "True", True)
    r.expect(f"{ve}.mode", lambda v: v == "max", "'max'", "max")
    r.expect(f"{ve}.legacy", lambda v: v is False, "False (the current mmdet3d decoration)", True)
    r.expect(f"{ve}.norm_cfg", _bn_ok("BN1d"), f"BN1d with {_BN}", {"type": "BN1d", **_BN})
    for k, ref in (("voxel_size", voxel), ("point_cloud_range", pcr)):
        if ref:
            r.expect(f"{ve}.{k}", lambda v, ref=ref: _close(v, ref), f"{list(ref)} (as the voxel layer)", ref)

    me = f"{m}.pts_middle_encoder"
    r.check_keys(me, ("in_channels", "output_shape"), ())
    r.expect_type(me, ("PointPillarsScatter",))
    if out["pfn_channels"]:
        r.expect(f"{me}.in_channels", lambda v: v == out["pfn_channels"][-1], f"{out['pfn_channels'][-1]} (PFN width)")
    grid = None
    if pcr and voxel and len(pcr) == 6 and len(voxel) == 3:
        grid = [int(round((pcr[i + 3] - pcr[i]) / voxel[i])) for i in range(3)]
        r.expect(f"{me}.output_shape", lambda v: list(v) == [grid[1], grid[0]], f"{[grid[1], grid[0]]} (ny, nx of the grid)")

    bb = f"{m}.pts_backbone"
    kind = r.expect_type(bb, ("SECOND", "ConvNeXt_PC"))
    if out["pfn_channels"]:
        r.expect(f"{bb}.in_channels", lambda v: v == out["pfn_channels"][-1], f"{out['pfn_channels'][-1]} (PFN width)")
    if kind == "ConvNeXt_PC":
        _convnext(r, bb, out)
    else:
        r.check_keys(bb, ("in_channels", "out_channels", "layer_nums", "layer_strides", "norm_cfg", "conv_cfg"), ())
        out["backbone_out_channels"] = tuple(r.get(f"{bb}.out_channels") or ())
        out["backbone_layer_nums"] = tuple(r.get(f"{bb}.layer_nums") or ())
        out["backbone_strides"] = tuple(r.get(f"{bb}.layer_strides") or ())
        r.expect(f"{bb}.norm_cfg", _bn_ok("BN"), f"BN with {_BN}", {"type": "BN", **_BN})
        r.expect(f"{bb}.conv_cfg", lambda v: v.get("bias", True) is False, "dict(type='Conv2d', bias=False)")
    backbone_outputs = out.get("backbone_out_channels", ())
    if kind == "ConvNeXt_PC" and out.get("convnext_channels") and out.get("convnext_out_indices") and out["pfn_channels"]:
        widths = (out["pfn_channels"][-1], *out["convnext_channels"][1:])
        backbone_outputs = tuple(widths[i] for i in out["convnext_out_indices"] if i < len(widths))

    nk = f"{m}.pts_neck"
    r.check_keys(nk, ("in_channels", "out_channels", "upsample_strides", "use_conv_for_no_stride", "norm_cfg",
                      "upsample_cfg", "conv_cfg"), ())
    r.expect_type(nk, ("SECONDFPN",))
    r.expect(f"{nk}.in_channels", lambda v: tuple(v) == backbone_outputs, f"{list(backbone_outputs)} (the backbone outputs)")
    out["neck_out_channels"] = tuple(r.get(f"{nk}.out_channels") or ())
    out["neck_upsample_strides"] = tuple(r.get(f"{nk}.upsample_strides") or ())
    out["neck_use_conv_for_no_stride"] = r.get(f"{nk}.use_conv_for_no_stride", False)
    r.expect(f"{nk}.norm_cfg", _bn_ok("BN"), f"BN with {_BN}", {"type": "BN", **_BN})
    r.expect(f"{nk}.upsample_cfg", lambda v: v.get("type") == "deconv" and v.get("bias", True) is False,
             "dict(type='deconv', bias=False)")

    hd = f"{m}.pts_bbox_head"
    r.check_keys(hd, ("in_channels", "tasks", "common_heads", "share_conv_channel", "bbox_coder", "separate_head",
                      "num_heatmap_convs", "conv_cfg", "norm_cfg", "bias"), _TRAIN_ONLY)
    r.expect_type(hd, ("CenterHead",))
    r.expect(f"{hd}.in_channels", lambda v: v == sum(out["neck_out_channels"]),
             f"{sum(out['neck_out_channels'])} (sum of the neck outputs)")
    tasks = r.expect(f"{hd}.tasks", lambda v: len(v) == 1, "exactly one task (the native head has one heatmap "
                     "with a channel per class)")
    if tasks and len(tasks) == 1:
        names = tuple(tasks[0].get("class_names", ()))
        out["class_names"] = names
        r.expect(f"{hd}.tasks[0].num_class", lambda v: v == len(names), f"{len(names)} (its class_names)")
        top = r.get("class_names", None)
        if top is not None and tuple(top) != names:
            r.problem("class_names", top, f"the head's task classes {list(names)}")
    r.expect(f"{hd}.common_heads", lambda v: {k: tuple(x) for k, x in v.items()} == _COMMON_HEADS,
             f"{_COMMON_HEADS} (output channels, convs)", _COMMON_HEADS)
    r.expect(f"{hd}.num_heatmap_convs", lambda v: v == 2, "2", 2)
    out["share_conv_channel"] = r.get(f"{hd}.share_conv_channel", 64)
    sh = f"{hd}.separate_head"
    r.check_keys(sh, ("head_conv", "final_kernel", "norm_cfg"), ("init_bias",))
    bn2d = lambda v: v.get("type") in ("BN2d", "BN")  # noqa: E731
    out["separate_head_norm_eps"] = float((r.expect(f"{sh}.norm_cfg", bn2d, "a BN2d norm_cfg", {}) or {}).get("eps", 1e-5))
    out["head_norm_eps"] = float((r.expect(f"{hd}.norm_cfg", bn2d, "a BN2d norm_cfg", {}) or {}).get("eps", 1e-5))
    r.expect_type(sh, ("SeparateHead", "CustomSeparateHead"))
    out["head_conv"] = r.get(f"{sh}.head_conv", 64)
    out["final_kernel"] = r.get(f"{sh}.final_kernel", 1)
    bc = f"{hd}.bbox_coder"
    r.check_keys(bc, ("out_size_factor", "max_num", "score_threshold", "voxel_size", "pc_range", "code_size",
                      "post_center_range"), ())
    r.expect(f"{bc}.code_size", lambda v: v == 9, "9 (x, y, z, w, l, h, yaw, vx, vy)", 9)
    ups = out["neck_upsample_strides"]
    if kind == "ConvNeXt_PC":
        first = 2 ** out["convnext_out_indices"][0] if out.get("convnext_out_indices") else None
    else:
        first = out["backbone_strides"][0] if out.get("backbone_strides") else None
    osf = int(round(first / ups[0])) if first and ups and ups[0] else None
    r.expect(f"{bc}.out_size_factor", lambda v: v == osf, f"{osf} (backbone stride / neck upsample stride)")
    out["pre_max_size"] = r.get(f"{bc}.max_num", 500)
    score = r.get(f"{bc}.score_threshold", None)

    post_center = r.get(f"{bc}.post_center_range", None)
    if post_center is not None:
        if len(post_center) == 6:
            out["post_center_range"] = tuple(float(v) for v in post_center)
        else:
            r.problem(f"{bc}.post_center_range", post_center, "[x0, y0, z0, x1, y1, z1]")

    # circle NMS reads only nms_type, min_radius and post_max_size from test_cfg; the
    # score threshold and the centre range are the bbox coder's (mmdet3d's CenterHead)
    tc = f"{m}.test_cfg.pts"
    r.check_keys(f"{m}.test_cfg", ("pts",), ())
    r.check_keys(tc, ("nms_type", "min_radius", "post_max_size", "grid_size", "out_size_factor",
                      "pc_range", "voxel_size"),
                 ("pre_max_size", "nms_thr", "max_per_img", "score_threshold", "post_center_limit_range"))
    out["nms_type"] = r.expect(f"{tc}.nms_type", lambda v: v == "circle", "'circle' (BEV centre-distance NMS)")
    radii = r.expect(f"{tc}.min_radius", lambda v: len(v) == 1 and v[0] >= 0, "one squared radius per task (one task)")
    if radii:
        out["min_radius"] = tuple(float(v) for v in radii)
    out["post_max_size"] = r.get(f"{tc}.post_max_size", 83)
    if score is None:
        r.problem(f"{bc}.score_threshold", None, "a score threshold in the head's bbox_coder")
    out["score_threshold"] = score
    if osf is not None:
        r.expect(f"{tc}.out_size_factor", lambda v: v == osf, f"{osf}", osf)
    if grid is not None:
        r.expect(f"{tc}.grid_size", lambda v: list(v) == grid, f"{grid}", grid)
    for k, ref in (("voxel_size", voxel), ("pc_range", pcr)):
        if ref:
            r.expect(f"{tc}.{k}", lambda v, ref=ref: _close(v, ref), f"{list(ref)}", ref)

    loading: dict[str, Any] = {}

    def load_points(path: str, t: dict[str, Any]) -> None:
        r.check_keys(path, ("use_dim", "load_dim", "coord_type"), ("backend_args", "shift_height", "use_color",
                                                                    "norm_intensity", "norm_elongation"))
        r.expect(f"{path}.coord_type", lambda v: v == "LIDAR", "'LIDAR'", "LIDAR")
        load_dim = r.get(f"{path}.load_dim", 6)
        use = r.get(f"{path}.use_dim", [0, 1, 2])
        use = list(range(use)) if isinstance(use, int) else list(use)
        if use != list(range(len(use))):
            r.problem(f"{path}.use_dim", use, "a prefix of the columns (an int or [0, 1, ..., n-1])")
        loading["file"] = (load_dim, len(use))
        for flag in ("norm_intensity", "norm_elongation"):
            r.expect(f"{path}.{flag}", lambda v: v is False, "False (the harness feeds raw intensity)", False)

    def sweeps(path: str, t: dict[str, Any]) -> None:
        r.check_keys(path, ("sweeps_num", "load_dim", "use_dim", "pad_empty_sweeps", "remove_close", "test_mode"),
                     ("backend_args",))
        use = r.get(f"{path}.use_dim", [0, 1, 2, 4])
        loading["sweeps"] = {
            "sweeps_num": r.expect(f"{path}.sweeps_num", lambda v: isinstance(v, int) and v >= 1,
                                   "an integer >= 1 (leave the step out for single frames)", 10),
            "load_dim": r.get(f"{path}.load_dim", 5),
            "use_dim": list(range(use)) if isinstance(use, int) else list(use),
            "pad_empty_sweeps": bool(r.get(f"{path}.pad_empty_sweeps", False)),
            "remove_close": bool(r.get(f"{path}.remove_close", False)),
        }

    def range_filter(path: str, t: dict[str, Any]) -> None:
        r.check_keys(path, ("point_cloud_range",), ())
        if pcr:
            r.expect(f"{path}.point_cloud_range", lambda v: _close(v, pcr), f"{list(pcr)} (the voxel layer's)")

    r.pipeline("test_pipeline", {"LoadPointsFromFile": load_points, "LoadPointsFromMultiSweeps": sweeps,
                                 "PointsRangeFilter": range_filter},
               ignored=("Pack3DDetInputs", "LoadAnnotations3D"))
    _point_loading(r, out, loading)
    from .metric_config import read_evaluator

    read_evaluator(r, out.get("class_names"))  # the metric: the model config's evaluator (val_evaluator)
    return out


def _point_loading(r: ConfigReader, out: dict[str, Any], loading: dict[str, Any]) -> None:
    """LoadPointsFromFile (+ LoadPointsFromMultiSweeps) -> load_dim, use_dim, sweeps."""
    n = out.get("num_point_features")
    file_dim, file_use = loading.get("file", (None, None))
    sw = loading.get("sweeps")
    if file_dim is None:
        r.problem("test_pipeline", None, "a LoadPointsFromFile step")
        return
    if sw is None:
        if isinstance(n, int) and file_use != n:
            r.problem("test_pipeline.LoadPointsFromFile.use_dim", file_use,
                      f"{n} columns (pts_voxel_encoder.in_channels)")
        out["load_dim"] = file_dim
        return
    if sw["load_dim"] != file_dim or file_use != file_dim:
        r.problem("test_pipeline.LoadPointsFromMultiSweeps.load_dim", sw["load_dim"],
                  f"{file_dim}, with LoadPointsFromFile keeping every column (use_dim={file_dim})")
    if file_dim < 5:
        r.problem("test_pipeline.LoadPointsFromFile.load_dim", file_dim, "at least 5 (column 4 holds the time lag)")
    if isinstance(n, int) and len(sw["use_dim"]) != n:
        r.problem("test_pipeline.LoadPointsFromMultiSweeps.use_dim", sw["use_dim"],
                  f"{n} columns (pts_voxel_encoder.in_channels)")
    out.update(load_dim=file_dim, use_dim=tuple(sw["use_dim"]), sweeps_num=sw["sweeps_num"],
               remove_close=sw["remove_close"], pad_empty_sweeps=sw["pad_empty_sweeps"])


def _convnext(r: ConfigReader, bb: str, out: dict[str, Any]) -> None:
    """AWML's ConvNeXt_PC, in the form its ShortRange configs use."""
    r.check_keys(bb, ("in_channels", "out_channels", "depths", "out_indices", "layer_scale_init_value",
                      "gap_before_final_norm", "norm_cfg", "act_cfg", "linear_pw_conv", "first_downsample",
                      "large_arch"),
                 ("drop_path_rate", "with_cp", "frozen_stages", "init_cfg", "stem_patch_size"))
    out["backbone"] = "ConvNeXt_PC"
    depths = r.expect(f"{bb}.depths", lambda v: len(v) >= 1, "blocks per stage")
    chans = r.expect(f"{bb}.out_channels", lambda v: depths is not None and len(v) == len(depths),
                     "one width per stage (depths)")
    idx = r.get(f"{bb}.out_indices", -1)
    idx = [idx] if isinstance(idx, int) else list(idx)
    if any(i < 0 for i in idx):
        r.problem(f"{bb}.out_indices", idx, "non-negative stage indices")
    out["convnext_depths"] = tuple(depths or ())
    out["convnext_channels"] = tuple(chans or ())
    out["convnext_out_indices"] = tuple(idx)
    out["convnext_layer_scale"] = float(r.get(f"{bb}.layer_scale_init_value", 1e-6))
    r.expect(f"{bb}.gap_before_final_norm", lambda v: v is False, "False (feature maps, not pooled vectors)", True)
    r.expect(f"{bb}.first_downsample", lambda v: v == 1, "1 (stage 0 at the canvas resolution)", 1)
    r.expect(f"{bb}.large_arch", lambda v: v is None, "None (no large-kernel stages)", None)
    r.expect(f"{bb}.linear_pw_conv", lambda v: v is True, "True", True)
    r.expect(f"{bb}.norm_cfg", lambda v: v.get("type") == "LN2d" and abs(v.get("eps", 1e-5) - 1e-6) < 1e-12,
             "dict(type='LN2d', eps=1e-6)", {"type": "LN2d", "eps": 1e-6})
    r.expect(f"{bb}.act_cfg", lambda v: v.get("type") == "GELU" and not v.get("approximate"), "dict(type='GELU')",
             {"type": "GELU"})


def load(model_cfg: Any, config_dir: Any) -> Any:
    """Settings from an OpenMMLab config, or None when `model_cfg` is the native form."""
    from awml_harness.openmmlab import load_settings

    from .settings import CenterPointSettings

    return load_settings(CenterPointSettings, model_cfg, config_dir, translate)
