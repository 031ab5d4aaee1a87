"""ProjectAdapter.single_input_graph: the one-input graph the calibration and segmentation
projects build from their deploy configs (batch, dynamic axes, TensorRT profiles)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from awml_harness.config.load import load_deploy_config
from awml_harness.project import load_project_class

TOY = Path(__file__).parents[1] / "toy"


def adapter(*overrides: str):
    cfg = load_deploy_config(TOY / "projects/Toy/configs/deploy.yaml", base_dir=TOY, overrides=overrides)
    return load_project_class(cfg.project_dir)(cfg)


def test_dynamic_batch_names_axis_zero_and_config_axes_merge_with_onnx_config_last():
    a = adapter("model_io.batch_size=None", "model_io.dynamic_axes={'x': {2: 'h'}}", "onnx_config.dynamic_axes={'x': {2: 'height'}, 'y': {1: 'c'}}")
    g = a.single_input_graph("g", object(), np.zeros((1, 3, 4, 4), np.float32), "x", "y")
    assert g.dynamic_axes == {"x": {2: "height", 0: "batch"}, "y": {1: "c", 0: "batch"}}
    assert g.example_inputs["x"].shape == (1, 3, 4, 4)


def test_fixed_batch_repeats_the_example_and_keeps_only_this_inputs_profiles():
    shapes = ("backend_config.model_inputs=[{'input_shapes': {"
              "'x': {'min_shape': [2, 3, 4, 4], 'opt_shape': [2, 3, 4, 4], 'max_shape': [2, 3, 4, 4]}, "
              "'other': {'min_shape': [1], 'opt_shape': [1], 'max_shape': [1]}}}]")
    a = adapter("model_io.batch_size=2", shapes)
    g = a.single_input_graph("g", object(), np.ones((1, 3, 4, 4), np.float32), "x", "y")
    assert g.example_inputs["x"].shape == (2, 3, 4, 4)
    assert g.dynamic_axes == {}
    assert [set(p) for p in g.profiles] == [{"x"}]
    assert g.profiles[0]["x"].max == (2, 3, 4, 4)
