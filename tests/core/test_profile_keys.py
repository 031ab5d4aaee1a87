"""The profile key forms the README documents (an input's name, `<graph>.<input>`) are
what every reader of `backend_config.model_inputs` accepts (issue 24 item 9): the
CenterPoint config check, the TensorRT profiles, the shape sweep, the single-input
graph helper and YOLOX's graph."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import load_deploy_config
from awml_harness.config.schema import BackendConfig
from awml_harness.config.validation import from_mapping
from awml_harness.export.trt_settings import check_profile_names, resolve_profiles
from awml_harness.graph import Graph, profile_input
from awml_harness.project import ProjectAdapter
from awml_harness.shapes import profile_shapes

REPO = Path(__file__).resolve().parents[2]
FORMS = ("plain", "graph.input")


def _key(form: str, graph: str, name: str) -> str:
    return name if form == "plain" else f"{graph}.{name}"


def _entry(key: str, lo: tuple[int, ...], opt: tuple[int, ...], hi: tuple[int, ...]) -> dict:
    return {"input_shapes": {key: {"min_shape": lo, "opt_shape": opt, "max_shape": hi}}}


def test_profile_input_reads_both_forms_and_nothing_else():
    assert profile_input("x", "g", ("x",)) == "x"
    assert profile_input("g.x", "g", ("x",)) == "x"
    assert profile_input("h.x", "g", ("x",)) is None
    assert profile_input("g.y", "g", ("x",)) is None
    assert profile_input("y", "g", ("x",)) is None


@pytest.mark.parametrize("form", FORMS)
def test_the_centerpoint_config_check_accepts_each_documented_form(form):
    cfg = REPO / "projects" / "CenterPoint" / "configs" / "deploy_config.py"
    s = load_deploy_config(cfg, base_dir=REPO).model_settings
    lo, opt, hi = s.voxel_profile
    p, c = s.max_points_per_voxel, s.in_channels
    key = _key(form, "pts_voxel_encoder", "input_features")
    entry = _entry(key, (lo, p, c), (opt, p, c), (hi, p, c))
    loaded = load_deploy_config(cfg, base_dir=REPO, overrides=[f"backend_config.model_inputs=[{entry!r}]"])
    assert list(loaded.backend_config.model_inputs[0].input_shapes) == [key]
    # the shapes are still checked under that key
    wrong = _entry(key, (lo, p, c), (opt, p, c), (hi + 1, p, c))
    with pytest.raises(ConfigError, match=rf"backend_config\.model_inputs\[0\]\.input_shapes\.{key}"):
        load_deploy_config(cfg, base_dir=REPO, overrides=[f"backend_config.model_inputs=[{wrong!r}]"])


def test_the_centerpoint_check_refuses_an_input_of_another_graph_by_name():
    cfg = REPO / "projects" / "CenterPoint" / "configs" / "deploy_config.py"
    entry = _entry("pts_backbone_neck_head.input_features", (1, 32, 11), (2, 32, 11), (3, 32, 11))
    with pytest.raises(ConfigError, match=r"pts_voxel_encoder\.input_features, pts_backbone_neck_head\.spatial_features"):
        load_deploy_config(cfg, base_dir=REPO, overrides=[f"backend_config.model_inputs=[{entry!r}]"])


def _graph() -> Graph:
    return Graph(name="enc", module=None, example_inputs={"x": np.zeros((4, 3), np.float32)}, input_names=("x",),
                 output_names=("y",), dynamic_axes={"x": {0: "n"}})


@pytest.mark.parametrize("form", FORMS)
def test_tensorrt_profiles_and_the_shape_sweep_read_each_form(form):
    backend = from_mapping(BackendConfig, {"model_inputs": [_entry(_key(form, "enc", "x"), (1, 3), (4, 3), (8, 3))]})
    graph = _graph()
    check_profile_names(backend, [graph])
    assert resolve_profiles(backend, graph) == ({"x": ((1, 3), (4, 3), (8, 3))},)
    ranges = profile_shapes(graph, SimpleNamespace(backend_config=backend))
    assert ranges["x"].max == (8, 3)


def test_a_profile_key_naming_no_input_is_refused_with_both_forms_offered():
    backend = from_mapping(BackendConfig, {"model_inputs": [_entry("dec.x", (1, 3), (4, 3), (8, 3))]})
    with pytest.raises(ConfigError, match=r"or '<graph>\.<input>'"):
        check_profile_names(backend, [_graph()])


@pytest.mark.parametrize("form", FORMS)
def test_the_single_input_graph_helper_reads_each_form(form):
    backend = from_mapping(BackendConfig, {"model_inputs": [_entry(_key(form, "model", "input"), (1, 3), (2, 3),
                                                                   (4, 3))]})
    cfg = SimpleNamespace(model_io=SimpleNamespace(batch_size=None, dynamic_axes={}),
                          onnx_config=SimpleNamespace(dynamic_axes={}), backend_config=backend)
    adapter = SimpleNamespace(cfg=cfg)
    graph = ProjectAdapter.single_input_graph(adapter, "model", None, np.zeros((1, 3), np.float32),  # type: ignore[arg-type]
                                              "input", "output")
    assert graph.profiles[0]["input"].max == (4, 3)


@pytest.mark.parametrize("form", FORMS)
def test_yolox_graph_reads_each_form(form):
    cfg = REPO / "projects" / "YOLOX_opt_elan" / "configs" / "deploy_config.py"
    entry = _entry(_key(form, "yolox", "images"), (1, 3, 192, 192), (2, 3, 192, 192), (3, 3, 192, 192))
    loaded = load_deploy_config(cfg, base_dir=REPO, overrides=[f"backend_config.model_inputs=[{entry!r}]"])
    from awml_harness.project import load_project_class

    adapter = load_project_class(loaded.project_dir)(loaded)
    model = adapter.build_model()
    (graph,) = adapter.graphs(model)
    assert graph.profiles[0]["images"].max == (3, 3, 192, 192)
