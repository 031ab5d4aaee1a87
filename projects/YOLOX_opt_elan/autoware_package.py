"""YOLOX's Autoware package: what autoware_tensorrt_yolox reads.

Formats from autowarefoundation/autoware_universe, perception/autoware_tensorrt_yolox:
the ML-package parameters `ml_package_yolox.param.yaml` (schema/ml_package_yolox.schema.json
@9e9727c7: precision, calibration_algorithm, quantize_first_layer, quantize_last_layer,
profile_per_layer, clip_value, score_threshold, nms_threshold; every key required, no
other key) and the label file `label.txt` (src/label.cpp: one class name per line, the
line's index is the class id). The node takes the input size from the engine's first
tensor (N, C, H, W), so the ONNX file carries it; the class count is the label count.

What the model decides, and so what test_package compares:

    label.txt labels                   model_cfg.class_names, upper-cased, in output order
    <onnx> inputs.images  [-2:]        model_cfg.input_size (H, W)
    <onnx> outputs.output classes      model_cfg.class_names: the output's last axis is
                                       4 box + 1 objectness + one score per class

Written from the model config: score_threshold (its score_thr) and nms_threshold (its
NMS IoU). The node's choices (precision fp16, no int8 calibration) are Autoware's
defaults; package.params writes other values.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from awml_harness.autoware import PackageValue, dump_params, labels_text

from .settings import YoloxSettings

PARAMS = "ml_package_yolox.param.yaml"
LABELS = "label.txt"
SCHEMAS = {PARAMS: "schemas/ml_package_yolox.schema.json"}


def package(s: YoloxSettings, onnx_files: Mapping[str, Path]) -> dict[str, str]:
    params = {"precision": "fp16", "calibration_algorithm": "Entropy", "quantize_first_layer": False,
              "quantize_last_layer": False, "profile_per_layer": False, "clip_value": 6.0,
              "score_threshold": float(s.score_threshold), "nms_threshold": float(s.nms_iou_threshold)}
    source = s.openmmlab_config or "the deploy config's model_cfg"
    return {PARAMS: dump_params(params, header=["autoware_tensorrt_yolox ML-package parameters",
                                                f"written by awml-harness from {source}"]),
            LABELS: labels_text([c.upper() for c in s.class_names])}


def checks(s: YoloxSettings, onnx_name: str, input_name: str, output_name: str
           ) -> dict[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]]:
    names = [c.upper() for c in s.class_names]
    return {
        (LABELS, "labels"): lambda onnx: PackageValue(names, "model_cfg.class_names (upper-cased, in the order of "
                                                             "the output's class scores)"),
        (onnx_name, f"inputs.{input_name}"): lambda onnx: PackageValue(
            list(s.input_size), "model_cfg.input_size (H, W): the node letterboxes to the engine's input size",
            lambda shape: list(shape[-2:]), "[-2:]"),
        (onnx_name, f"outputs.{output_name}"): lambda onnx: PackageValue(
            len(names), "the classes of model_cfg.class_names (label.txt's line count is the node's class count)",
            lambda shape: shape[-1] - 5 if isinstance(shape[-1], int) else shape[-1], "classes"),
    }


class AutowarePackage:
    """The ProjectAdapter hooks of the package (Project mixes this in)."""

    settings: YoloxSettings
    autoware_schemas = SCHEMAS

    def autoware_package(self, onnx_files: Mapping[str, Path]) -> Mapping[str, str]:
        return package(self.settings, onnx_files)

    def autoware_checks(self) -> Mapping[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]]:
        from .project import INPUT_NAME, OUTPUT_NAME

        return checks(self.settings, self.cfg.onnx_config.save_file, INPUT_NAME, OUTPUT_NAME)  # type: ignore[attr-defined]

    def autoware_metadata(self) -> Mapping[str, Any]:
        return {"input_size": list(self.settings.input_size), "num_classes": len(self.settings.class_names)}
