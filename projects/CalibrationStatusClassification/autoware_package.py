"""The calibration classifier's Autoware package: what autoware_calibration_status_classifier reads.

Format from autowarefoundation/autoware_universe, sensing/autoware_calibration_status_classifier:
`ml_package_calibration_status_classifier.param.yaml` (schema and config.hpp @c8010af1:
max_depth > 0, dilation_size >= 0, height and width each [min, opt, max] ascending and
positive, the TensorRT profile of the input; ego_box [x_min, y_min, z_min, x_max, y_max,
z_max], all zeros = off). The node feeds the ONNX input `input` [1, 5, H, W] (channels
fixed at 5: B, G, R, depth, intensity) and reads `output` [1, 2].

What the model decides, and so what test_package compares:

    height / width          the TensorRT profile of `input` (backend_config), else the
                            exported input's H, W
    max_depth               model_cfg.depth_scale (AWML's max_depth: metres -> 255)
    dilation_size           model_cfg.point_radius (AWML's dilation_size)
    <onnx> inputs.input [1] model_cfg.in_channels (the node's 5)
    <onnx> outputs.output [-1]  model_cfg.num_classes (miscalibrated, calibrated)

ego_box is the vehicle's, not the model's: written as all zeros (off); package.params sets it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from awml_harness.autoware import PackageValue, dump_params

PARAMS = "ml_package_calibration_status_classifier.param.yaml"
SCHEMAS = {PARAMS: "schemas/ml_package_calibration_status_classifier.schema.json"}


def profile_hw(cfg: Any, onnx: Path | None) -> tuple[list[int], list[int], str]:
    """([h_min, h_opt, h_max], [w_min, w_opt, w_max], where they come from)."""
    from awml_harness.graph import profile_input

    for entry in cfg.backend_config.model_inputs:
        shapes = [p for k, p in entry.input_shapes.items() if profile_input(k, "model", ("input",))]
        if shapes:
            p = shapes[-1]
            return ([int(p.min_shape[2]), int(p.opt_shape[2]), int(p.max_shape[2])],
                    [int(p.min_shape[3]), int(p.opt_shape[3]), int(p.max_shape[3])],
                    "backend_config's TensorRT profile of input")
    if onnx is not None:
        from awml_harness.autoware import read_value

        shape = read_value(onnx, "inputs.input")
        if all(isinstance(d, int) for d in shape[2:]):
            return [shape[2]] * 3, [shape[3]] * 3, f"{onnx.name} input (static H, W)"
    from awml_harness.autoware import PackageError

    raise PackageError("the input's height/width profile: give backend_config.model_inputs a profile for `input`")


def package(s: Any, cfg: Any, onnx_files: Mapping[str, Path]) -> dict[str, str]:
    height, width, _ = profile_hw(cfg, next(iter(onnx_files.values()), None))
    params = {"max_depth": float(s.depth_scale), "dilation_size": int(s.point_radius), "height": height,
              "width": width, "ego_box": [0.0] * 6}
    source = s.openmmlab_config or "the deploy config's model_cfg"
    return {PARAMS: dump_params(params, header=["autoware_calibration_status_classifier ML-package parameters",
                                                f"written by awml-harness from {source}",
                                                "ego_box: all zeros (off); set the vehicle's with package.params"])}


def checks(s: Any, cfg: Any, onnx_name: str) -> dict[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]]:
    def hw(which: int) -> Callable[[Mapping[str, Path]], PackageValue]:
        def value(onnx: Mapping[str, Path]) -> PackageValue:
            found = profile_hw(cfg, next(iter(onnx.values()), None))
            return PackageValue(found[which], found[2])

        return value

    return {
        (PARAMS, "height"): hw(0),
        (PARAMS, "width"): hw(1),
        (PARAMS, "max_depth"): lambda onnx: PackageValue(float(s.depth_scale), "model_cfg.depth_scale (AWML max_depth)"),
        (PARAMS, "dilation_size"): lambda onnx: PackageValue(int(s.point_radius),
                                                             "model_cfg.point_radius (AWML dilation_size)"),
        (onnx_name, "inputs.input"): lambda onnx: PackageValue(
            int(s.in_channels), "model_cfg.in_channels (the node feeds 5 channels: B, G, R, depth, intensity)",
            lambda shape: shape[1], "channels"),
        (onnx_name, "outputs.output"): lambda onnx: PackageValue(
            int(s.num_classes), "model_cfg.num_classes (the node reads miscalibrated, calibrated)",
            lambda shape: shape[-1], "classes"),
    }


class AutowarePackage:
    """The ProjectAdapter hooks of the package (Project mixes this in)."""

    autoware_schemas = SCHEMAS

    def autoware_package(self, onnx_files: Mapping[str, Path]) -> Mapping[str, str]:
        return package(self.settings, self.cfg, onnx_files)  # type: ignore[attr-defined]

    def autoware_checks(self) -> Mapping[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]]:
        return checks(self.settings, self.cfg, self.cfg.onnx_config.save_file)  # type: ignore[attr-defined]
