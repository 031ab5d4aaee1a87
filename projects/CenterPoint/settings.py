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
#: per point: 3 offsets to the mean of its voxel's points + 3 offsets to the voxel center
DECORATION_CHANNELS = 6


@dataclass(frozen=True)
class CenterPointSettings:
    class_names: tuple[str, ...] = DEFAULT_CLASSES
    # -- voxelization ---------------------------------------------------------------
    point_cloud_range: tuple[float, float, float, float, float, float] = (-25.6, -25.6, -3.0, 25.6, 25.6, 3.0)
    voxel_size: tuple[float, float, float] = (0.4, 0.4, 6.0)
    #: point columns fed to the model (x, y, z, intensity[, time lag]); the .bin may hold more
    num_point_features: int = 4
    max_points_per_voxel: int = 20
    max_voxels: int = 12000
    #: TensorRT profile of the dynamic voxel axis (min, opt, max); max defaults to max_voxels
    num_voxels_profile: tuple[int, int, int] | None = None
    # -- network --------------------------------------------------------------------
    pfn_channels: tuple[int, ...] = (32,)
    backbone_layer_nums: tuple[int, ...] = (3, 5, 5)
    backbone_out_channels: tuple[int, ...] = (64, 128, 256)
    backbone_strides: tuple[int, ...] = (2, 2, 2)
    neck_out_channels: tuple[int, ...] = (128, 128, 128)
    neck_upsample_strides: tuple[float, ...] = (1, 2, 4)
    neck_use_conv_for_no_stride: bool = True
    share_conv_channel: int = 64
    head_conv: int = 64
    final_kernel: int = 3
    # -- export convention ----------------------------------------------------------
    #: Autoware's layout: `dim` as (w, l, h) and `rot` as (-cos, -sin); undone in postprocess
    rot_y_axis_reference: bool = False
    # -- decode ---------------------------------------------------------------------
    score_threshold: float = 0.1
    pre_max_size: int = 500  # top-k over all classes and cells
    post_max_size: int = 83
    #: circle NMS radius per class in metres (BEV center distance); 0 disables it
    nms_radius: tuple[float, ...] = (1.0, 2.0, 2.5, 0.5, 0.4)
    # -- evaluation / verification --------------------------------------------------
    distance_thresholds: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
    #: the 3D metric definition: "nuscenes" (the nuScenes devkit's detection eval) or "t4"
    #: (AWML's T4MetricV2, tier4 perception_eval); projects/CenterPoint/metrics.py
    metric: str = "nuscenes"
    #: metric="nuscenes": per-class ego-distance limit (m), the devkit's class_range; None: no filter
    metric_class_range: dict[str, float] | None = None
    #: metric="t4": BEV distance buckets [lo, hi) m; the last one is the headline (None: AWML's)
    metric_distance_ranges: tuple[tuple[float, float], ...] | None = None
    #: metric="t4": "center_distance_bev" or "center_distance" (3D)
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
        n = len(self.backbone_layer_nums)
        for name in ("backbone_out_channels", "backbone_strides", "neck_out_channels", "neck_upsample_strides"):
            if len(getattr(self, name)) != n:
                raise ConfigError(f"{key}.{name}", getattr(self, name), f"{n} entries, one per backbone stage")
        if not self.pfn_channels:
            raise ConfigError(f"{key}.pfn_channels", self.pfn_channels, "at least one PFN layer width")
        total = 1
        sizes = []
        for stride, up in zip(self.backbone_strides, self.neck_upsample_strides, strict=True):
            total *= stride
            sizes.append(total / up)
        if any(abs(s - sizes[0]) > 1e-6 for s in sizes) or sizes[0] < 1 or abs(sizes[0] - round(sizes[0])) > 1e-6:
            raise ConfigError(
                f"{key}.neck_upsample_strides",
                self.neck_upsample_strides,
                f"strides bringing every stage to one integer output stride (got {sizes})",
            )
        nx, ny, _ = self.grid_size
        total = 1
        for stride in self.backbone_strides:  # odd sizes would round up and break the FPN concat
            total *= stride
            if nx % total or ny % total:
                raise ConfigError(
                    f"{key}.backbone_strides",
                    self.backbone_strides,
                    f"strides whose running products divide the grid {nx}x{ny} (fails at {total})",
                )
        if len(self.nms_radius) != len(self.class_names):
            raise ConfigError(f"{key}.nms_radius", self.nms_radius, f"{len(self.class_names)} radii, one per class")
        if self.num_voxels_profile is not None:
            a, b, c = self.num_voxels_profile
            if not 0 < a <= b <= c:
                raise ConfigError(f"{key}.num_voxels_profile", self.num_voxels_profile, "0 < min <= opt <= max")
        if self.metric not in ("nuscenes", "t4"):
            raise ConfigError(f"{key}.metric", self.metric, "'nuscenes' (nuScenes devkit) or 't4' (AWML T4MetricV2)")
        if self.metric_matching not in ("center_distance_bev", "center_distance"):
            raise ConfigError(f"{key}.metric_matching", self.metric_matching, "'center_distance_bev' or 'center_distance'")
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
        if not self.distance_thresholds or min(self.distance_thresholds) <= 0:
            raise ConfigError(f"{key}.distance_thresholds", self.distance_thresholds, "positive distances in metres")

    # -- derived ----------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def grid_size(self) -> tuple[int, int, int]:
        """Voxels along x, y, z (nz is 1 for pillars)."""
        lo, hi = self.point_cloud_range[:3], self.point_cloud_range[3:]
        return tuple(int(round((hi[i] - lo[i]) / self.voxel_size[i])) for i in range(3))  # type: ignore[return-value]

    @property
    def in_channels(self) -> int:
        """Width of the voxel encoder input: point features + cluster and center offsets."""
        return self.num_point_features + DECORATION_CHANNELS

    @property
    def pillar_channels(self) -> int:
        return self.pfn_channels[-1]

    @property
    def out_size_factor(self) -> int:
        """BEV grid cells per head output cell."""
        return int(round(self.backbone_strides[0] / self.neck_upsample_strides[0]))

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
