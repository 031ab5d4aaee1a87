"""Typed `model_cfg` of the CenterPoint deploy config.

Everything shape-related is derived here from a few primary numbers (point cloud
range, voxel size, point feature count, strides), so the exported graphs, the
TensorRT profiles, the pipeline and the training script can never disagree. In
particular the voxel encoder's input width is `num_point_features + 6` (three
cluster-center and three voxel-center offsets) -- the public code hard-codes 11.

Imports no torch: the config is loaded when pytest starts.
"""

from __future__ import annotations

from dataclasses import dataclass

from awml_harness.config.errors import ConfigError

DEFAULT_CLASSES = ("car", "truck", "bus", "bicycle", "pedestrian")
#: per point: 3 offsets to the mean of its voxel's points + offsets to the voxel center,
#: in x, y, z (PillarFeatureNet) or x, y only (AWML's BackwardPillarFeatureNet)
DECORATION_CHANNELS = {"PillarFeatureNet": 6, "BackwardPillarFeatureNet": 5}
BACKBONES = ("SECOND", "ConvNeXt_PC")


@dataclass(frozen=True)
class CenterPointSettings:
    class_names: tuple[str, ...] = DEFAULT_CLASSES
    # -- voxelization ---------------------------------------------------------------
    point_cloud_range: tuple[float, float, float, float, float, float] = (-25.6, -25.6, -3.0, 25.6, 25.6, 3.0)
    voxel_size: tuple[float, float, float] = (0.4, 0.4, 6.0)
    #: point columns fed to the model (x, y, z, intensity[, time lag]); the .bin may hold more
    num_point_features: int = 4
    # -- point loading (mmdet3d's LoadPointsFromFile + LoadPointsFromMultiSweeps) ------
    #: floats per point in every .bin (key frame and sweeps); 0: the info's num_pts_feats
    load_dim: int = 0
    #: columns of the merged cloud fed to the model, any order (mmdet3d's `use_dim`,
    #: e.g. (0, 1, 2, 4) = x, y, z, time lag); empty: the first num_point_features
    use_dim: tuple[int, ...] = ()
    #: earlier sweeps merged into each key frame (0: the key frame alone); column 4 then
    #: holds the time lag (0 for the key frame), so load_dim must be at least 5
    sweeps_num: int = 0
    #: drop sweep points with |x| < 1 and |y| < 1 m (in the sweep's own frame)
    remove_close: bool = False
    #: without `lidar_sweeps` in an entry: repeat the key frame sweeps_num times
    pad_empty_sweeps: bool = False
    max_points_per_voxel: int = 20
    max_voxels: int = 12000
    #: TensorRT profile of the dynamic voxel axis (min, opt, max); max defaults to max_voxels
    num_voxels_profile: tuple[int, int, int] | None = None
    # -- network --------------------------------------------------------------------
    #: "PillarFeatureNet" (mmdet3d) or "BackwardPillarFeatureNet" (AWML: no z-centre offset)
    voxel_encoder: str = "PillarFeatureNet"
    pfn_channels: tuple[int, ...] = (32,)
    #: "SECOND" (backbone_layer_nums / _out_channels / _strides) or "ConvNeXt_PC" (AWML's
    #: ConvNeXt on the pillar grid: the convnext_* fields; stage 0 keeps the PFN width
    #: and the input resolution, each later stage halves it with a LayerNorm + 2x2 conv)
    backbone: str = "SECOND"
    backbone_layer_nums: tuple[int, ...] = (3, 5, 5)
    backbone_out_channels: tuple[int, ...] = (64, 128, 256)
    backbone_strides: tuple[int, ...] = (2, 2, 2)
    convnext_depths: tuple[int, ...] = ()
    convnext_channels: tuple[int, ...] = ()  # per stage; entry 0 is replaced by the PFN width
    convnext_out_indices: tuple[int, ...] = ()
    #: layer_scale_init_value: > 0 gives each block a per-channel scale `gamma` starting there
    convnext_layer_scale: float = 1.0
    neck_out_channels: tuple[int, ...] = (128, 128, 128)
    neck_upsample_strides: tuple[float, ...] = (1, 2, 4)
    neck_use_conv_for_no_stride: bool = True
    share_conv_channel: int = 64
    head_conv: int = 64
    final_kernel: int = 3
    #: BatchNorm eps of the head's shared conv (CenterHead.norm_cfg) and of the task heads
    #: (separate_head.norm_cfg): mmdet3d's default BN2d has 1e-5 for both
    head_norm_eps: float = 1e-5
    separate_head_norm_eps: float = 1e-5
    # -- export convention ----------------------------------------------------------
    #: Autoware's layout: `dim` as (w, l, h) and `rot` as (-cos, -sin); undone in postprocess
    rot_y_axis_reference: bool = False
    # -- decode ---------------------------------------------------------------------
    #: boxes need a score strictly above it (the bbox coder's rule; 0 keeps every box)
    score_threshold: float = 0.1
    pre_max_size: int = 500  # the bbox coder's max_num: top-k over the task's classes and cells
    post_max_size: int = 83  # boxes kept after NMS
    #: only "circle" (mmdet3d's CenterHead also knows "rotate", a rotated-IoU BEV NMS)
    nms_type: str = "circle"
    #: per task (one task here): circle NMS suppresses a box whose BEV centre lies at a
    #: *squared* distance <= min_radius (m^2) from a better one, whatever their classes
    min_radius: tuple[float, ...] = (1.0,)
    #: the coder's post_center_range: boxes whose gravity centre lies outside are dropped
    post_center_range: tuple[float, float, float, float, float, float] | None = None
    # -- evaluation / verification --------------------------------------------------
    distance_thresholds: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    #: the 3D metric definition: "nuscenes" (the nuScenes devkit's detection eval) or "t4"
    #: (AWML's T4MetricV2, tier4 perception_eval); projects/CenterPoint/metrics.py
    metric: str = "nuscenes"
    #: metric="nuscenes": per-class ego-distance limit (m), the devkit's class_range; None: no filter
    metric_class_range: dict[str, float] | None = None
    #: metric="t4": BEV distance buckets [lo, hi) m; the last one is the headline (None: AWML's)
    metric_distance_ranges: tuple[tuple[float, float], ...] | None = None
    #: metric="t4": perception_eval's matcher, "center_distance_bev", "center_distance" (3D),
    #: "plane_distance" (distance_thresholds in m; AWML uses 2, 4), "iou_2d" or "iou_3d"
    #: (distance_thresholds then are IoU ratios in [0, 1], matched when IoU > the ratio)
    metric_matching: str = "center_distance_bev"
    match_threshold: float = 0.5  # metres, BEV center distance between backends' boxes
    match_box_atol: float = 0.05
    # -- model building -------------------------------------------------------------
    strict_load: bool = True
    seed: int = 0  # random init when checkpoint_path is None
    #: without runtime_io.info_file: this many seeded synthetic clouds over the whole range
    synthetic_samples: int = 1
    synthetic_points: int = 200_000
    #: the OpenMMLab model config these settings were derived from (set by the loader)
    openmmlab_config: str | None = None

    # ------------------------------------------------------------------------------
    def validate(self, key: str) -> None:
        if not self.class_names:
            raise ConfigError(f"{key}.class_names", self.class_names, "at least one class name")
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        for axis in range(3):
            span = hi[axis] - lo[axis]
            if span <= 0 or self.voxel_size[axis] <= 0:
                raise ConfigError(
                    f"{key}.point_cloud_range", self.point_cloud_range, "min < max on x, y, z and positive voxel sizes"
                )
            cells = span / self.voxel_size[axis]
            if abs(cells - round(cells)) > 1e-4:
                raise ConfigError(
                    f"{key}.voxel_size",
                    self.voxel_size,
                    f"sizes dividing the range evenly (axis {axis}: {span} / {self.voxel_size[axis]} = {cells:.4f})",
                )
        if self.grid_size[2] != 1:
            raise ConfigError(
                f"{key}.voxel_size",
                self.voxel_size,
                "pillars: voxel_size[2] equal to the z extent of point_cloud_range",
            )
        if self.num_point_features < 3:
            raise ConfigError(f"{key}.num_point_features", self.num_point_features, "an integer >= 3 (x, y, z first)")
        for name in (
            "max_points_per_voxel",
            "max_voxels",
            "pre_max_size",
            "post_max_size",
            "share_conv_channel",
            "head_conv",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{key}.{name}", getattr(self, name), "a positive integer")
        if self.voxel_encoder not in DECORATION_CHANNELS:
            raise ConfigError(f"{key}.voxel_encoder", self.voxel_encoder, f"one of {sorted(DECORATION_CHANNELS)}")
        if self.backbone not in BACKBONES:
            raise ConfigError(f"{key}.backbone", self.backbone, f"one of {list(BACKBONES)}")
        if not self.pfn_channels:
            raise ConfigError(f"{key}.pfn_channels", self.pfn_channels, "at least one PFN layer width")
        if self.backbone == "SECOND":
            n = len(self.backbone_layer_nums)
            for name in ("backbone_out_channels", "backbone_strides"):
                if len(getattr(self, name)) != n:
                    raise ConfigError(f"{key}.{name}", getattr(self, name), f"{n} entries, one per backbone stage")
        else:
            n = len(self.convnext_depths)
            if n < 1 or len(self.convnext_channels) != n:
                raise ConfigError(f"{key}.convnext_channels", self.convnext_channels,
                                  f"one width per stage of convnext_depths {self.convnext_depths}")
            idx = self.convnext_out_indices
            if not idx or list(idx) != sorted(set(idx)) or idx[0] < 0 or idx[-1] >= n:
                raise ConfigError(f"{key}.convnext_out_indices", idx, f"increasing stage indices below {n}")
        n = len(self.backbone_output_strides)
        for name in ("neck_out_channels", "neck_upsample_strides"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"{key}.{name}", getattr(self, name), f"{n} entries, one per backbone output")
        sizes = [stride / up for stride, up in zip(self.backbone_output_strides, self.neck_upsample_strides, strict=True)]
        if any(abs(s - sizes[0]) > 1e-6 for s in sizes) or sizes[0] < 1 or abs(sizes[0] - round(sizes[0])) > 1e-6:
            raise ConfigError(
                f"{key}.neck_upsample_strides",
                self.neck_upsample_strides,
                f"strides bringing every stage to one integer output stride (got {sizes})",
            )
        nx, ny, _ = self.grid_size
        for total in self.backbone_output_strides:  # odd sizes would round up and break the FPN concat
            if nx % total or ny % total:
                raise ConfigError(
                    f"{key}.{'backbone_strides' if self.backbone == 'SECOND' else 'convnext_out_indices'}",
                    self.backbone_strides if self.backbone == "SECOND" else self.convnext_out_indices,
                    f"output strides that divide the grid {nx}x{ny} (fails at {total})",
                )
        if self.nms_type != "circle":
            raise ConfigError(f"{key}.nms_type", self.nms_type, "'circle' (rotated-IoU NMS is not implemented)")
        if len(self.min_radius) != 1 or self.min_radius[0] < 0:
            raise ConfigError(f"{key}.min_radius", self.min_radius, "one non-negative squared radius (m^2): one task")
        if self.post_center_range is not None and len(self.post_center_range) != 6:
            raise ConfigError(f"{key}.post_center_range", self.post_center_range, "[x0, y0, z0, x1, y1, z1] or None")
        if self.use_dim and len(self.use_dim) != self.num_point_features:
            raise ConfigError(
                f"{key}.use_dim", self.use_dim, f"{self.num_point_features} column indices (num_point_features)"
            )
        if any(c < 0 for c in self.use_dim) or self.load_dim < 0 or self.sweeps_num < 0:
            raise ConfigError(f"{key}.use_dim", self.use_dim, "non-negative columns, load_dim and sweeps_num")
        if self.load_dim and self.use_dim and max(self.use_dim) >= self.load_dim:
            raise ConfigError(f"{key}.use_dim", self.use_dim, f"columns below load_dim={self.load_dim}")
        if self.sweeps_num and self.load_dim and self.load_dim < 5:
            raise ConfigError(f"{key}.load_dim", self.load_dim, "at least 5 with sweeps (column 4 is the time lag)")
        if self.num_voxels_profile is not None:
            a, b, c = self.num_voxels_profile
            if not 0 < a <= b <= c:
                raise ConfigError(f"{key}.num_voxels_profile", self.num_voxels_profile, "0 < min <= opt <= max")
            if c < self.max_voxels:
                raise ConfigError(f"{key}.num_voxels_profile", self.num_voxels_profile,
                                  f"a max of at least max_voxels ({self.max_voxels}): the voxelizer keeps that many "
                                  "pillars and an engine refuses more than its profile's max")
        if self.metric not in ("nuscenes", "t4"):
            raise ConfigError(f"{key}.metric", self.metric, "'nuscenes' (nuScenes devkit) or 't4' (AWML T4MetricV2)")
        matchers = ("center_distance_bev", "center_distance", "plane_distance", "iou_2d", "iou_3d")
        if self.metric_matching not in matchers:
            raise ConfigError(f"{key}.metric_matching", self.metric_matching, f"one of {', '.join(matchers)}")
        if self.metric_matching.startswith("iou_") and not all(0 <= t <= 1 for t in self.distance_thresholds):
            raise ConfigError(
                f"{key}.distance_thresholds", self.distance_thresholds,
                f"IoU ratios in [0, 1] with metric_matching={self.metric_matching!r} (e.g. [0.5, 0.7])",
            )
        if self.metric_class_range is not None:
            if set(self.metric_class_range) != set(self.class_names) or min(self.metric_class_range.values()) <= 0:
                raise ConfigError(
                    f"{key}.metric_class_range", self.metric_class_range,
                    f"a positive distance (m) for each of {list(self.class_names)}",
                )
        if self.metric_distance_ranges is not None:
            if not self.metric_distance_ranges or any(
                len(r) != 2 or not 0 <= r[0] < r[1] for r in self.metric_distance_ranges
            ):
                raise ConfigError(
                    f"{key}.metric_distance_ranges", self.metric_distance_ranges,
                    "a non-empty list of [min, max] metre pairs with 0 <= min < max",
                )
        if not self.distance_thresholds or (min(self.distance_thresholds) <= 0 and self.metric_matching[:4] != "iou_"):
            raise ConfigError(f"{key}.distance_thresholds", self.distance_thresholds, "positive distances in metres")

    # -- derived ----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def point_columns(self) -> tuple[int, ...]:
        """Columns of the merged cloud the model reads (use_dim, or a prefix)."""
        return tuple(self.use_dim) if self.use_dim else tuple(range(self.num_point_features))

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """Voxels along x, y, z (nz is 1 for pillars)."""
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        return tuple(int(round((hi[i] - lo[i]) / self.voxel_size[i])) for i in range(3))  # type: ignore[return-value]

    @property
    def in_channels(self) -> int:
        """Width of the voxel encoder input: point features + cluster and center offsets."""
        return self.num_point_features + DECORATION_CHANNELS[self.voxel_encoder]

    @property
    def backbone_output_channels(self) -> tuple[int, ...]:
        if self.backbone == "SECOND":
            return tuple(self.backbone_out_channels)
        widths = (self.pillar_channels, *self.convnext_channels[1:])
        return tuple(widths[i] for i in self.convnext_out_indices)

    @property
    def backbone_output_strides(self) -> tuple[int, ...]:
        """BEV grid cells per cell of each backbone output."""
        if self.backbone == "SECOND":
            out, total = [], 1
            for s in self.backbone_strides:
                total *= s
                out.append(total)
            return tuple(out)
        return tuple(2**i for i in self.convnext_out_indices)

    @property
    def pillar_channels(self) -> int:
        return self.pfn_channels[-1]

    @property
    def out_size_factor(self) -> int:
        """BEV grid cells per head output cell."""
        return int(round(self.backbone_output_strides[0] / self.neck_upsample_strides[0]))

    @property
    def head_size(self) -> tuple[int, int]:
        nx, ny, _ = self.grid_size
        return ny // self.out_size_factor, nx // self.out_size_factor

    @property
    def voxel_profile(self) -> tuple[int, int, int]:
        if self.num_voxels_profile is not None:
            return self.num_voxels_profile
        hi = self.max_voxels
        return (1, max(1, hi // 3), hi)
