"""CenterPoint adapter: two exported graphs with the pillar scatter between them.

    points --voxelize+decorate--> input_features (V, P, C)       [numpy, timed "voxelize"]
           --pts_voxel_encoder--> pillar_features (V, 1, C')     [graph]
           --scatter------------> spatial_features (1, C', ny, nx) [numpy, timed "scatter"]
           --pts_backbone_neck_head--> heatmap, reg, height, dim, rot, vel [graph]
           --decode + circle NMS--> boxes (N, 7), scores, labels [postprocess]

Voxelization runs inside `forward` (not `preprocess`) so that it is timed as its own
stage; it is deterministic numpy, identical for every backend. The voxel axis is
dynamic (`num_voxels`); C = num_point_features + 6 and every profile come from the
typed settings (settings.py). Torch is imported inside methods only.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import check_elements
from awml_harness.project import GraphCaller, ModelSize, Prepared, ProjectAdapter, StageTimer

from .autoware_package import SCHEMAS, AutowarePackage
from .settings import CenterPointSettings

VOXEL_ENCODER = "pts_voxel_encoder"
BACKBONE_NECK_HEAD = "pts_backbone_neck_head"
HEAD_OUTPUTS = ("heatmap", "reg", "height", "dim", "rot", "vel")


class Project(AutowarePackage, ProjectAdapter):
    name = "CenterPoint"
    task_type = "detection3d"
    codebase = "mmdet3d"  # an AWML deploy config's codebase_config.type
    settings_cls = CenterPointSettings
    default_configs = ("configs/deploy_config.py",)  # the installed suites run it
    settings: CenterPointSettings
    # The seed's model_io names the PyTorch model's voxelized inputs and head outputs. Here
    # the voxelizer (voxelize.py) makes those tensors in numpy and decorates them into
    # `input_features` before pts_voxel_encoder; neither graph sees them. `hm` is the
    # heatmap head output, exported as `heatmap` (the head's own key).
    model_io_aliases = {"hm": "heatmap"}
    # the voxel axis of the encoder's input is dynamic (profile: model_cfg.num_voxels_profile,
    # or a TensorRT profile the deploy config writes for input_features); nothing else is
    fixed_dynamic_axes = (f"CenterPoint's graphs fix their axes: {VOXEL_ENCODER}'s input_features and "
                          "pillar_features are dynamic along the voxel axis only (max_points_per_voxel and the "
                          "BEV grid are the model's), test_export checks the file")
    profile_settings = {f"{VOXEL_ENCODER}.input_features": (0, "num_voxels_profile")}
    autoware_schemas = SCHEMAS  # the package (autoware_lidar_centerpoint): AutowarePackage
    model_io_pipeline_tensors = {
        "voxels": f"the voxelizer's points per voxel (V, max_points, point_dim), made in numpy and "
                  f"decorated into `input_features` before {VOXEL_ENCODER}; no exported graph takes it",
        "num_points": "the voxelizer's point count per voxel (V,), used in numpy to decorate "
                      "`input_features`; no exported graph takes it",
        "coors": "the voxelizer's voxel indices (V, 4), used in numpy to decorate `input_features` and "
                 "to scatter `pillar_features` into `spatial_features`; no exported graph takes it",
    }

    # -- config -----------------------------------------------------------------------
    @classmethod
    def model_size(cls, cfg: Any) -> ModelSize:
        from .size import activations, parameters

        s: CenterPointSettings = cfg.model_settings
        return ModelSize(parameters=parameters(s), activations=activations(s))

    @classmethod
    def check_config(cls, cfg: Any) -> None:
        """Profiles written in backend_config must agree with the ones derived from model_cfg."""
        s: CenterPointSettings = cfg.model_settings
        expected = {name: (rng.min, rng.opt, rng.max) for name, rng in _profiles(s).items()}
        bounds = {"input_features": "model_cfg.max_voxels",  # or num_voxels_profile / max_points_per_voxel
                  "spatial_features": "model_cfg.voxel_size"}  # grid = point_cloud_range / voxel_size
        for name, triple in expected.items():  # before any example tensor is allocated
            check_elements(triple[2], bounds.get(name, "model_cfg"), cfg.limits.max_elements)
        check_elements((s.synthetic_points, s.num_point_features), "model_cfg.synthetic_points", cfg.limits.max_elements)
        from awml_harness.graph import profile_input

        inputs = {VOXEL_ENCODER: ("input_features",), BACKBONE_NECK_HEAD: ("spatial_features",)}
        for i, entry in enumerate(cfg.backend_config.model_inputs):
            for key, shape in entry.input_shapes.items():
                name = next((n for g, names in inputs.items() if (n := profile_input(key, g, names))), None)
                if name is None:
                    raise ConfigError(
                        f"backend_config.model_inputs[{i}].input_shapes.{key}",
                        key,
                        f"one of the graph inputs {sorted(expected)}, or '<graph>.<input>' "
                        f"({', '.join(f'{g}.{n[0]}' for g, n in inputs.items())})",
                    )
                got = (tuple(shape.min_shape), tuple(shape.opt_shape), tuple(shape.max_shape))
                if got != expected[name]:
                    raise ConfigError(
                        f"backend_config.model_inputs[{i}].input_shapes.{key}",
                        {"min": got[0], "opt": got[1], "max": got[2]},
                        f"the shapes model_cfg implies: min {expected[name][0]}, opt {expected[name][1]}, max {expected[name][2]}",
                    )

    # -- model ------------------------------------------------------------------------
    def build_model(self) -> Any:
        import torch

        from .model import CenterPoint

        torch.manual_seed(self.settings.seed)
        model = CenterPoint(self.settings)
        if self.cfg.checkpoint_path is None:
            warnings.warn(
                "CenterPoint: checkpoint_path is None; using a seeded random initialization", UserWarning, stacklevel=2
            )
        else:
            from awml_harness.openmmlab import load_checkpoint

            from .openmmlab import KEY_MAP

            load_checkpoint(model, self.cfg.checkpoint_path, KEY_MAP, strict=self.settings.strict_load,
                            allow_pickle=self.cfg.unsafe_load)
        return model.eval()

    def graphs(self, model: Any) -> Sequence[Any]:
        import torch

        from awml_harness.graph import Graph

        from .model import BackboneNeckHeadGraph, VoxelEncoderGraph
        from .voxelize import scatter

        s = self.settings
        data = self.dataset()
        sample = data[min(self.cfg.runtime_io.sample_idx, len(data) - 1)]
        features, coords = self.voxel_inputs(self.preprocess(sample).inputs["points"])
        encoder = VoxelEncoderGraph(model).eval()
        head = BackboneNeckHeadGraph(model, s.rot_y_axis_reference).eval()
        with torch.no_grad():
            pillars = encoder(torch.from_numpy(features)).numpy()
        nx, ny, _ = s.grid_size
        spatial = scatter(pillars, coords, (nx, ny))
        profiles = _profiles(s)
        return (
            Graph(
                name=VOXEL_ENCODER,
                module=encoder,
                example_inputs={"input_features": features},
                input_names=("input_features",),
                output_names=("pillar_features",),
                dynamic_axes={"input_features": {0: "num_voxels"}, "pillar_features": {0: "num_voxels"}},
                profiles=({"input_features": profiles["input_features"]},),
            ),
            Graph(
                name=BACKBONE_NECK_HEAD,
                module=head,
                example_inputs={"spatial_features": spatial},
                input_names=("spatial_features",),
                output_names=HEAD_OUTPUTS,
                profiles=({"spatial_features": profiles["spatial_features"]},),
            ),
        )

    def graph_names(self) -> tuple[str, ...]:
        return (VOXEL_ENCODER, BACKBONE_NECK_HEAD)

    def has_dynamic_shapes(self) -> bool:
        return True  # the voxel axis of pts_voxel_encoder is always dynamic, with a profile

    # -- data -------------------------------------------------------------------------
    def dataset(self) -> Sequence[Any]:
        from .data import InfoDataset, PointLoading, SyntheticDataset

        s, io = self.settings, self.cfg.runtime_io
        if io.info_file is None:
            return SyntheticDataset(
                s.synthetic_samples, s.synthetic_points, s.point_cloud_range, s.num_point_features, s.seed
            )
        loading = PointLoading(s.point_columns, s.load_dim, s.sweeps_num, s.remove_close, s.pad_empty_sweeps)
        return InfoDataset(io.info_file, io.data_root, loading, allow_unsafe=self.cfg.unsafe_load)

    def target(self, sample: Any) -> Any:
        return {"boxes": sample.boxes, "labels": sample.labels}

    # -- pipeline ---------------------------------------------------------------------
    def preprocess(self, sample: Any) -> Prepared:
        from .voxelize import drop_nan_points

        points = np.ascontiguousarray(sample.points[:, : self.settings.num_point_features], dtype=np.float32)
        return Prepared(sample.sample_id, {"points": drop_nan_points(points)})

    def voxel_inputs(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """points -> (`input_features` (V, P, C), coords (V, 3) z, y, x)."""
        from .voxelize import decorate, voxelize

        s = self.settings
        vox = voxelize(points, s.point_cloud_range, s.voxel_size, s.max_points_per_voxel, s.max_voxels)
        return decorate(vox, s.point_cloud_range, s.voxel_size, s.voxel_encoder == "PillarFeatureNet"), vox.coords

    def forward(self, prepared: Prepared, run_graph: GraphCaller, timer: StageTimer) -> dict[str, Any]:
        from .voxelize import scatter

        s = self.settings
        nx, ny, _ = s.grid_size
        with timer("voxelize"):
            features, coords = self.voxel_inputs(prepared.inputs["points"])
        if len(features):
            with timer(VOXEL_ENCODER):
                pillars = np.asarray(run_graph(VOXEL_ENCODER, {"input_features": features})["pillar_features"])
        else:  # an empty cloud: nothing to encode (engines refuse a zero-size axis)
            pillars = np.zeros((0, 1, s.pillar_channels), np.float32)
        with timer("scatter"):
            spatial = scatter(pillars, coords, (nx, ny))
        with timer(BACKBONE_NECK_HEAD):
            heads = run_graph(BACKBONE_NECK_HEAD, {"spatial_features": spatial})
        return {"pillar_features": pillars, **{n: np.asarray(heads[n]) for n in HEAD_OUTPUTS}}

    def postprocess(self, outputs: Mapping[str, Any], prepared: Prepared) -> Any:
        from .decode import decode

        return decode(outputs, self.settings)

    # -- evaluation / verification ----------------------------------------------------
    def evaluator(self) -> Any:
        from .metrics import CenterDistanceEvaluator

        s = self.settings
        return CenterDistanceEvaluator(
            s.class_names, s.distance_thresholds, metric=s.metric, class_range=s.metric_class_range,
            distance_ranges=s.metric_distance_ranges, matching=s.metric_matching,
        )

    def detections(self, prediction: Any) -> Any:
        from awml_harness.matching import Detections

        return Detections(prediction["boxes"], prediction["scores"], prediction["labels"], kind="box3d")

    def match_settings(self) -> Mapping[str, Any]:
        s = self.settings
        return {"threshold": s.match_threshold, "box_atol": s.match_box_atol, "score_threshold": s.score_threshold}


def _profiles(s: CenterPointSettings) -> dict[str, Any]:
    from awml_harness.graph import ShapeRange

    lo, opt, hi = s.voxel_profile
    p, c = s.max_points_per_voxel, s.in_channels
    nx, ny, _ = s.grid_size
    bev = (1, s.pillar_channels, ny, nx)
    return {
        "input_features": ShapeRange((lo, p, c), (opt, p, c), (hi, p, c)),
        "spatial_features": ShapeRange(bev, bev, bev),
    }
