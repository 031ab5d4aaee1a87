"""YOLOX_opt_elan adapter: one graph (`images` -> `output` (B, A, 4 + 1 + C)), numpy
letterbox preprocessing, numpy decode + class-aware NMS, COCO metrics via pycocotools.

No torch at module level: the config is validated at pytest start, and `pytest --help`
must not import torch. Model code is imported inside the methods that need it.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import check_elements
from awml_harness.project import Evaluator, ModelSize, Prepared, ProjectAdapter

from .autoware_package import AutowarePackage
from .settings import YoloxSettings

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig
    from awml_harness.graph import Graph
    from awml_harness.matching import Detections

    from .data import CocoDataset, Sample
    from .pipeline import PostprocessParams

GRAPH_NAME = "yolox"
INPUT_NAME = "images"
OUTPUT_NAME = "output"


class Project(AutowarePackage, ProjectAdapter):
    name: ClassVar[str] = "YOLOX_opt_elan"
    task_type: ClassVar[str] = "detection2d"
    codebase: ClassVar[str | None] = "mmdet"  # an AWML deploy config's codebase_config.type
    settings_cls: ClassVar[type | None] = YoloxSettings
    default_configs: ClassVar[tuple[str, ...]] = ("configs/deploy_config.py",)  # the installed suites run it

    settings: YoloxSettings

    # -- config -------------------------------------------------------------------------
    @classmethod
    def model_size(cls, cfg: DeployConfig) -> ModelSize:
        from .size import activations, parameters

        s: YoloxSettings = cfg.model_settings
        return ModelSize(parameters=parameters(s), activations=activations(s))

    @classmethod
    def check_config(cls, cfg: DeployConfig) -> None:
        settings: YoloxSettings = cfg.model_settings
        check_elements((1, 3, *settings.input_size), "model_cfg.input_size", cfg.limits.max_elements)
        if cfg.task_type != "detection2d":
            raise ConfigError("task_type", cfg.task_type, "'detection2d' for YOLOX_opt_elan")
        if cfg.evaluation.enabled and cfg.runtime_io.info_file is None:
            raise ConfigError("runtime_io.info_file", None, "a COCO annotation JSON when evaluation is enabled")
        io = cfg.model_io
        if io.input_name not in (None, INPUT_NAME):
            raise ConfigError("model_io.input_name", io.input_name, f"{INPUT_NAME!r} (the exported input name)")
        if io.output_name not in (None, OUTPUT_NAME):
            raise ConfigError("model_io.output_name", io.output_name, f"{OUTPUT_NAME!r} (the exported output name)")
        if io.input_shape is not None and tuple(io.input_shape) != (3, *settings.input_size):
            raise ConfigError("model_io.input_shape", list(io.input_shape),
                              f"[3, {settings.input_size[0]}, {settings.input_size[1]}] (from model_cfg.input_size)")
        expected_out = (settings.num_priors(), 5 + settings.num_classes)
        if io.output_shape is not None and tuple(io.output_shape) != expected_out:
            raise ConfigError("model_io.output_shape", list(io.output_shape),
                              f"{list(expected_out)} (anchor points of input_size at strides {list(settings.strides)})")

    # -- model --------------------------------------------------------------------------
    def build_model(self) -> Any:
        from awml_harness.openmmlab import load_checkpoint

        from .model import build_yolox
        from .openmmlab import KEY_MAP, build_reference

        model = build_reference(self.settings) if self.settings.reference == "registry" else build_yolox(self.settings)
        if self.cfg.checkpoint_path is None:
            warnings.warn(
                f"{self.name}: checkpoint_path is None; using a random init seeded with model_cfg.seed="
                f"{self.settings.seed} (export/verification only, metrics are meaningless)",
                stacklevel=2,
            )
        else:
            load_checkpoint(model, self.cfg.checkpoint_path, KEY_MAP, strict=self.settings.strict_load,
                            allow_pickle=self.cfg.unsafe_load)
        return model.eval()

    def graphs(self, model: Any) -> Sequence[Graph]:
        from awml_harness.graph import Graph, ShapeRange, profile_input

        from .model import export_module

        profiles = []
        for entry in self.cfg.backend_config.model_inputs:
            mine = [v for k, v in entry.input_shapes.items() if profile_input(k, GRAPH_NAME, (INPUT_NAME,))]
            if mine:  # both key forms in one entry: the one written last
                v = mine[-1]
                profiles.append({INPUT_NAME: ShapeRange(tuple(v.min_shape), tuple(v.opt_shape), tuple(v.max_shape))})
        dynamic_axes = dict(self.cfg.onnx_config.dynamic_axes or self.cfg.model_io.dynamic_axes)
        return [Graph(
            name=GRAPH_NAME,
            module=export_module(model, self.settings),
            example_inputs={INPUT_NAME: self._example_input()},
            input_names=(INPUT_NAME,),
            output_names=(OUTPUT_NAME,),
            dynamic_axes=dynamic_axes,
            profiles=tuple(profiles),
        )]

    def _example_input(self) -> np.ndarray:
        """The traced tensor: the configured sample, or a seeded random image if the
        config names no data."""
        data = self.dataset()
        if len(data):
            idx = self.cfg.runtime_io.sample_idx
            if idx >= len(data):
                raise ConfigError("runtime_io.sample_idx", idx, f"an index below the dataset size {len(data)}")
            return np.asarray(self.preprocess(data[idx]).inputs[INPUT_NAME])
        h, w = self.settings.input_size
        rng = np.random.default_rng(self.settings.seed)
        return rng.uniform(0, 255, size=(1, 3, h, w)).astype(np.float32)

    def graph_names(self) -> tuple[str, ...]:
        return (GRAPH_NAME,)

    # -- data ---------------------------------------------------------------------------
    @cached_property
    def _dataset(self) -> CocoDataset:
        from .data import CocoDataset, load_coco

        io = self.cfg.runtime_io
        if io.info_file is None:
            return CocoDataset([])
        return CocoDataset(load_coco(io.info_file, self.settings.class_names, io.data_root))

    def dataset(self) -> CocoDataset:
        return self._dataset

    def target(self, sample: Sample) -> dict[str, Any]:
        return sample.target()

    # -- pipeline -----------------------------------------------------------------------
    def preprocess(self, sample: Sample) -> Prepared:
        from .pipeline import letterbox

        images, geo = letterbox(sample.load_bgr(), self.settings.input_size, self.settings.pad_value)
        return Prepared(sample_id=str(sample.image_id), inputs={INPUT_NAME: images},
                        meta={"letterbox": geo, "image_id": sample.image_id})

    @cached_property
    def _post_params(self) -> PostprocessParams:
        from .pipeline import PostprocessParams

        s = self.settings
        return PostprocessParams(input_hw=s.input_size, strides=s.strides, num_classes=s.num_classes,
                                 score_threshold=s.score_threshold, nms_iou_threshold=s.nms_iou_threshold,
                                 max_detections=s.max_detections)

    def postprocess(self, outputs: Mapping[str, Any], prepared: Prepared) -> dict[str, Any]:
        from .pipeline import postprocess

        return postprocess(outputs[OUTPUT_NAME], prepared.meta["letterbox"], self._post_params)

    def evaluator(self) -> Evaluator:
        from .metrics import CocoEvaluator

        return CocoEvaluator(self.settings.class_names)

    # -- detection-aware verification ---------------------------------------------------
    def detections(self, prediction: Any) -> Detections:
        from awml_harness.matching import Detections

        return Detections(boxes=np.asarray(prediction["boxes"]), scores=np.asarray(prediction["scores"]),
                          labels=np.asarray(prediction["labels"]), kind="box2d")

    def match_settings(self) -> Mapping[str, Any]:
        return {"threshold": 0.5, "score_threshold": self.settings.score_threshold}
