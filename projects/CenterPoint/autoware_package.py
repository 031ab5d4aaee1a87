"""CenterPoint's Autoware package: what autoware_lidar_centerpoint reads.

Formats from autowarefoundation/autoware_universe, perception/autoware_lidar_centerpoint:
the model bundle manifest `ml_package.param.yaml` (schema/ml_package.schema.json and the
node, src/node.cpp, @656cdab8: version v4.1, the four ONNX/engine file names relative to
the bundle folder, `class_remapper_param_path`, `trt_precision`, `model_params`) and
`detection_class_remapper.param.yaml` (three flat 8x8 matrices over Autoware's object
labels, schema @2a524a0a of autoware.universe). The schemas under `schemas/` are this
project's own statement of what the node accepts (it reads every model_params key
without a default; point_feature_size 4|5, encoder_in_feature_size 9|10|11).

What the model decides, and so what test_package compares (the node feeds the ONNX with
these numbers; a mismatch is a deployment bug no ONNX comparison catches):

    model_params.class_names            model_cfg.class_names, upper-cased, head channel order
    model_params.point_feature_size     the loaded point columns (use_dim / num_point_features)
    model_params.voxel_size             model_cfg.voxel_size
    model_params.point_cloud_range      model_cfg.point_cloud_range
    model_params.max_voxel_size         the TensorRT profile max of input_features (the node
                                        builds its engine at min = opt = max = this)
    model_params.encoder_in_feature_size  the exported voxel encoder's input_features[-1]
    model_params.downsample_factor      the exported head: spatial_features H / heatmap H
    model_params.has_variance           the exported head's reg channels (2: no variance)
    model_params.yaw_norm_thresholds    one per class (the node throws otherwise)
    model_params.detection_score_thresholds.min_confidence_scores  one list per class

The node decodes `dim` as (w, l, h) and `rot` as (-cos, -sin): a package is written only
from a model exported so (model_cfg.rot_y_axis_reference, --rot-y-axis-reference), and
only for what the node hard-codes (32 points per pillar, a 32-wide encoder output).

Chosen here, not by the model (package.params writes other values): trt_precision fp16,
has_twist True (the head regresses velocity: code_size 9), yaw_norm_thresholds 0.3 per
class and 0.0 for pedestrians (Autoware's default), score bins [50, 90, 121, 200] m (its
default) each at the model's score_threshold, and the remapper's default matrices.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from awml_harness.autoware import PackageError, PackageValue, dump_params, read_value

from .settings import CenterPointSettings

MANIFEST = "ml_package.param.yaml"
REMAPPER = "detection_class_remapper.param.yaml"
VERSION = "v4.1"
SCHEMAS = {MANIFEST: "schemas/ml_package.schema.json", REMAPPER: "schemas/detection_class_remapper.schema.json"}
#: Autoware's ObjectClassification labels, the remapper matrices' row and column order
LABELS = ("UNKNOWN", "CAR", "TRUCK", "BUS", "TRAILER", "MOTORCYCLE", "BICYCLE", "PEDESTRIAN")
SCORE_BINS = (50.0, 90.0, 121.0, 200.0)
#: (point_feature_size, encoder_in_feature_size) -> the per-point layout the node builds
LAYOUTS = {(4, 9): "x, y, z, t, cluster offsets, x/y centre offsets", (4, 10): "... plus the z centre offset",
           (5, 11): "x, y, z, intensity, t, cluster offsets, x/y/z centre offsets"}
#: area rules of the remapper (Autoware's defaults): (from, to, min m^2, max m^2)
REMAP = (("CAR", "TRUCK", 12.1, 36.0), ("CAR", "TRAILER", 36.0, 999.999), ("TRUCK", "TRAILER", 36.0, 999.999),
         ("BUS", "TRAILER", 36.0, 999.999))
ENCODER, HEAD = "pts_voxel_encoder", "pts_backbone_neck_head"


def autoware_names(s: CenterPointSettings) -> list[str]:
    return [c.upper() for c in s.class_names]


def check_deployable(s: CenterPointSettings) -> None:
    """What autoware_lidar_centerpoint hard-codes or refuses (centerpoint_config.hpp)."""
    if not s.rot_y_axis_reference:
        raise PackageError("model_cfg.rot_y_axis_reference = False: Autoware's decoder reads dim as (w, l, h) and "
                           "rot as (-cos, -sin); export the head in that layout (--rot-y-axis-reference, or "
                           "model_cfg.rot_y_axis_reference=True), or set package.enabled=False")
    if s.max_points_per_voxel != 32:
        raise PackageError(f"model_cfg.max_points_per_voxel = {s.max_points_per_voxel}: Autoware's voxelizer fills "
                           "32 points per pillar (MAX_POINT_IN_VOXEL_SIZE)")
    if s.pillar_channels != 32:
        raise PackageError(f"model_cfg.pfn_channels[-1] = {s.pillar_channels}: the node's encoder output is 32 wide")
    if (s.num_point_features, s.in_channels) not in LAYOUTS:
        raise PackageError(f"model_cfg.num_point_features = {s.num_point_features} with {s.voxel_encoder} gives "
                           f"{s.in_channels} encoder inputs; the node builds {sorted(LAYOUTS)} "
                           "(point_feature_size, encoder_in_feature_size) only")


def package(s: CenterPointSettings, onnx_files: Mapping[str, Path]) -> dict[str, str]:
    check_deployable(s)
    names = autoware_names(s)
    encoder, head = onnx_files[ENCODER].name, onnx_files[HEAD].name
    manifest = {
        "version": VERSION,
        "encoder_onnx_path": encoder,
        "encoder_engine_path": Path(encoder).with_suffix(".engine").name,
        "head_onnx_path": head,
        "head_engine_path": Path(head).with_suffix(".engine").name,
        "class_remapper_param_path": REMAPPER,
        "trt_precision": "fp16",
        "model_params": {
            "class_names": names,
            "point_feature_size": len(s.point_columns),
            "max_voxel_size": int(s.voxel_profile[2]),
            "point_cloud_range": [float(v) for v in s.point_cloud_range],
            "voxel_size": [float(v) for v in s.voxel_size],
            "downsample_factor": int(s.out_size_factor),
            "encoder_in_feature_size": int(s.in_channels),
            "has_variance": False,
            "has_twist": True,
            "yaw_norm_thresholds": [0.0 if n == "PEDESTRIAN" else 0.3 for n in names],
            "detection_score_thresholds": {
                "distance_bin_upper_limits": list(SCORE_BINS),
                "min_confidence_scores": {n: [float(s.score_threshold)] * len(SCORE_BINS) for n in names},
            },
        },
    }
    source = f"from {s.openmmlab_config or 'the deploy config model_cfg'}"
    return {MANIFEST: dump_params(manifest, header=[f"autoware_lidar_centerpoint model bundle manifest {VERSION}",
                                                    f"written by awml-harness {source}"]),
            REMAPPER: dump_params(remapper(), header=["autoware_lidar_centerpoint class remapper (Autoware's "
                                                      "default area rules)"])}


def remapper() -> dict[str, list[Any]]:
    n = len(LABELS)
    allow, low, high = [0] * n * n, [0.0] * n * n, [0.0] * n * n
    for src, dst, lo, hi in REMAP:
        i = LABELS.index(src) * n + LABELS.index(dst)
        allow[i], low[i], high[i] = 1, lo, hi
    return {"allow_remapping_by_area_matrix": allow, "min_area_matrix": low, "max_area_matrix": high}


def metadata(s: CenterPointSettings) -> dict[str, Any]:
    return {"ml_package_version": VERSION, "rot_y_axis_reference": bool(s.rot_y_axis_reference)}


def _version_ok(value: Any) -> bool:
    text = str(value).lstrip("vV")
    major, dot, minor = text.partition(".")
    return bool(dot) and major.isdigit() and minor.isdigit() and int(major) == 4 and int(minor) >= 1


def checks(s: CenterPointSettings) -> dict[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]]:
    names = autoware_names(s)

    def shape(onnx: Mapping[str, Path], graph: str, side: str, tensor: str) -> list[Any]:
        return read_value(onnx[graph], f"{side}.{tensor}")

    def downsample(onnx: Mapping[str, Path]) -> PackageValue:
        grid, heat = shape(onnx, HEAD, "inputs", "spatial_features"), shape(onnx, HEAD, "outputs", "heatmap")
        if isinstance(grid[2], int) and isinstance(heat[2], int) and heat[2]:
            return PackageValue(grid[2] // heat[2], f"{HEAD}.onnx spatial_features H {grid[2]} / heatmap H {heat[2]}")
        return PackageValue(s.out_size_factor, "model_cfg (the head's out_size_factor)")

    m = "model_params."
    table: dict[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]] = {
        (MANIFEST, "version"): lambda onnx: PackageValue(True, "a bundle version the node reads (v4.x, x >= 1)",
                                                         _version_ok, "readable"),
        (MANIFEST, m + "class_names"): lambda onnx: PackageValue(names, "model_cfg.class_names (upper-cased, in "
                                                                        "the heatmap's channel order)"),
        (MANIFEST, m + "point_feature_size"): lambda onnx: PackageValue(
            len(s.point_columns), f"the loaded point columns {list(s.point_columns)} (model_cfg use_dim)"),
        (MANIFEST, m + "voxel_size"): lambda onnx: PackageValue(list(s.voxel_size), "model_cfg.voxel_size"),
        (MANIFEST, m + "point_cloud_range"): lambda onnx: PackageValue(list(s.point_cloud_range),
                                                                       "model_cfg.point_cloud_range"),
        (MANIFEST, m + "max_voxel_size"): lambda onnx: PackageValue(
            s.voxel_profile[2], f"the TensorRT profile max of {ENCODER}.input_features (model_cfg num_voxels_profile)"),
        (MANIFEST, m + "encoder_in_feature_size"): lambda onnx: PackageValue(
            shape(onnx, ENCODER, "inputs", "input_features")[-1], f"{ENCODER}.onnx input_features[-1]"),
        (MANIFEST, m + "downsample_factor"): downsample,
        (MANIFEST, m + "has_variance"): lambda onnx: PackageValue(
            shape(onnx, HEAD, "outputs", "reg")[1] == 4, f"{HEAD}.onnx reg channels (2: no variance, 4: variance)"),
        (MANIFEST, m + "yaw_norm_thresholds"): lambda onnx: PackageValue(
            len(names), "one threshold per class of model_cfg.class_names", len, "len"),
        (MANIFEST, m + "detection_score_thresholds.min_confidence_scores"): lambda onnx: PackageValue(
            sorted(names), "one list per class of model_cfg.class_names", lambda d: sorted(d or {}), "classes"),
    }
    return table


class AutowarePackage:
    """The ProjectAdapter hooks of the package (Project mixes this in)."""

    settings: CenterPointSettings

    def autoware_package(self, onnx_files: Mapping[str, Path]) -> Mapping[str, str]:
        return package(self.settings, onnx_files)

    def autoware_metadata(self) -> Mapping[str, Any]:
        return metadata(self.settings)

    def autoware_checks(self) -> Mapping[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]]:
        return checks(self.settings)
