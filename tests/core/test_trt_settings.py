"""Deploy config -> TensorRT build settings, on CPU without tensorrt.

The translation is pure data (`awml_harness.export.trt_settings`), so every precision
policy x TensorRT major is checked here. The builder and runner themselves need
tensorrt and a CUDA device; their tests at the bottom skip without them.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from awml_harness.backends.base import BackendUnavailable
from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import BackendConfig, CommonBackendConfig, ModelInputs, ProfileShape
from awml_harness.export.trt_settings import (
    BuildPlan,
    UnsupportedTensorRT,
    check_profile_names,
    plan_build,
    plan_builds,
    resolve_profiles,
    trt_major,
)
from awml_harness.graph import Graph, ShapeRange


def graph(name="g", inputs=None, profiles=()):
    inputs = inputs or {"x": (1, 3, 8, 8)}
    return Graph(name=name, module=None, example_inputs={n: np.zeros(s, np.float32) for n, s in inputs.items()},
                 input_names=tuple(inputs), output_names=("y",), profiles=profiles)


def backend(policy="auto", shapes=(), workspace=1 << 30, level=3):
    return BackendConfig(
        common_config=CommonBackendConfig(precision_policy=policy, max_workspace_size=workspace,
                                          builder_optimization_level=level),
        model_inputs=tuple(ModelInputs(input_shapes={n: ProfileShape(*t) for n, t in entry.items()})
                           for entry in shapes),
    )


# -- precision policy x TensorRT major ----------------------------------------------------
# (policy, major) -> (flags, strongly_typed, convert_fp16)
EXPECTED = {
    ("auto", 10): ((), False, False),
    ("fp16", 10): (("FP16",), False, False),
    ("fp32_tf32", 10): (("TF32",), False, False),
    ("strongly_typed", 10): ((), True, False),
    ("auto", 11): ((), True, False),
    ("fp16", 11): ((), True, True),
    ("fp32_tf32", 11): (("TF32",), True, False),
    ("strongly_typed", 11): ((), True, False),
}


@pytest.mark.parametrize(("policy", "major"), sorted(EXPECTED), ids=lambda v: str(v))
def test_policy_translation(policy, major):
    plan = plan_build(policy, major, backend(policy), graph())
    flags, strongly_typed, convert = EXPECTED[(policy, major)]
    assert (plan.flags, plan.strongly_typed, plan.convert_fp16) == (flags, strongly_typed, convert)
    assert plan.policy == policy
    assert plan.onnx_precision == ("fp16" if convert else "fp32")


def test_trt11_never_uses_weak_typing_flags():
    for policy in ("auto", "fp16", "fp32_tf32", "strongly_typed"):
        for precision in ("fp32", "fp16"):
            plan = plan_build(policy, 11, backend(policy), graph(), precision=precision)
            assert plan.strongly_typed
            assert not {"FP16", "BF16", "INT8", "FP8"} & set(plan.flags)


@pytest.mark.parametrize("major", [10, 11])
def test_fp16_backend_precision_overrides_fp32_policies(major):
    for policy in ("auto", "fp32_tf32", "fp16"):
        plan = plan_build(policy, major, backend(policy), graph(), precision="fp16")
        assert plan.policy == "fp16"
        assert plan.flags == (("FP16",) if major == 10 else ())
        assert plan.convert_fp16 is (major == 11)


@pytest.mark.parametrize("major", [10, 11])
def test_strongly_typed_fp16_backend_builds_from_fp16_onnx(major):
    plan = plan_build("strongly_typed", major, backend("strongly_typed"), graph(), precision="fp16")
    assert (plan.flags, plan.strongly_typed, plan.convert_fp16) == ((), True, True)


@pytest.mark.parametrize("major", [7, 8, 9, 12])
def test_unknown_major_is_a_clear_unavailable_error(major):
    with pytest.raises(UnsupportedTensorRT, match=rf"TensorRT {major}\.x is not supported.*10\.x or 11\.x"):
        plan_build("auto", major, backend(), graph())
    assert issubclass(UnsupportedTensorRT, BackendUnavailable)  # a skip, or a failure under --awml-strict


def test_version_string_parsing():
    assert trt_major("10.13.0.35") == 10
    assert trt_major("11.1.0") == 11
    with pytest.raises(UnsupportedTensorRT, match="8.6.1"):
        trt_major("8.6.1")
    with pytest.raises(UnsupportedTensorRT, match="cannot read"):
        trt_major("dev")


def test_unknown_policy_names_the_config_key():
    with pytest.raises(ConfigError, match="precision_policy"):
        plan_build("int4", 10, backend(), graph())


# -- workspace, optimization level --------------------------------------------------------
def test_workspace_and_level_pass_through():
    plan = plan_build("auto", 10, backend(workspace=123 << 20, level=5), graph())
    assert plan.workspace_bytes == 123 << 20
    assert plan.optimization_level == 5


def test_plan_is_frozen_json_data():
    import json

    plan = plan_build("fp16", 11, backend("fp16", shapes=[{"x": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))}]), graph())
    with pytest.raises(AttributeError):
        plan.flags = ("FP16",)  # type: ignore[misc]
    data = json.loads(json.dumps(plan.as_dict()))
    assert data["profiles"] == [{"x": [[1, 3, 8, 8], [2, 3, 8, 8], [4, 3, 8, 8]]}]
    assert data["convert_fp16"] is True and data["trt_major"] == 11
    # engines record layer types, formats and tactics: what the per-node profiles read
    assert data["profiling_verbosity"] == "DETAILED"
    assert isinstance(plan, BuildPlan)


# -- profiles -----------------------------------------------------------------------------
def test_profiles_from_config_one_per_entry():
    shapes = [
        {"x": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))},
        {"x": ((4, 3, 8, 8), (8, 3, 8, 8), (16, 3, 8, 8))},
    ]
    plan = plan_build("auto", 10, backend(shapes=shapes), graph())
    assert plan.profiles == (
        {"x": ((1, 3, 8, 8), (2, 3, 8, 8), (4, 3, 8, 8))},
        {"x": ((4, 3, 8, 8), (8, 3, 8, 8), (16, 3, 8, 8))},
    )


def test_static_example_shape_when_nothing_is_configured():
    assert resolve_profiles(backend(), graph()) == ({"x": ((1, 3, 8, 8),) * 3},)


def test_graph_profiles_when_config_has_none():
    g = graph(profiles=({"x": ShapeRange((1, 3, 8, 8), (2, 3, 8, 8), (3, 3, 8, 8))},))
    assert resolve_profiles(backend(), g) == ({"x": ((1, 3, 8, 8), (2, 3, 8, 8), (3, 3, 8, 8))},)


def test_unnamed_inputs_fall_back_to_graph_profile_then_example():
    g = graph(inputs={"a": (1, 4), "b": (2, 5), "c": (7,)},
              profiles=({"b": ShapeRange((1, 5), (2, 5), (9, 5))},))
    profiles = resolve_profiles(backend(shapes=[{"a": ((1, 4), (1, 4), (8, 4))}]), g)
    assert profiles == ({"a": ((1, 4), (1, 4), (8, 4)), "b": ((1, 5), (2, 5), (9, 5)), "c": ((7,),) * 3},)


def test_multi_graph_entries_are_matched_per_graph():
    """CenterPoint style: one entry lists inputs of both graphs; each graph takes its own."""
    enc = graph("pts_voxel_encoder", {"input_features": (100, 32, 11)})
    head = graph("pts_backbone_neck_head", {"spatial_features": (1, 32, 64, 64)})
    cfg = backend(shapes=[{
        "input_features": ((1, 32, 11), (100, 32, 11), (500, 32, 11)),
        "spatial_features": ((1, 32, 64, 64),) * 3,
    }])
    plans = plan_builds("auto", 10, cfg, [enc, head])
    assert plans["pts_voxel_encoder"].profiles == ({"input_features": ((1, 32, 11), (100, 32, 11), (500, 32, 11))},)
    assert plans["pts_backbone_neck_head"].profiles == ({"spatial_features": ((1, 32, 64, 64),) * 3},)


def test_graph_qualified_keys_and_entries_for_other_graphs():
    a = graph("a", {"x": (1, 2)})
    b = graph("b", {"x": (1, 3)})
    cfg = backend(shapes=[{"a.x": ((1, 2), (2, 2), (4, 2))}, {"b.x": ((1, 3), (1, 3), (5, 3))}])
    plans = plan_builds("auto", 11, cfg, [a, b])
    assert plans["a"].profiles == ({"x": ((1, 2), (2, 2), (4, 2))},)
    assert plans["b"].profiles == ({"x": ((1, 3), (1, 3), (5, 3))},)


def test_profile_key_naming_no_graph_input_is_a_config_error():
    cfg = backend(shapes=[{"imgs": ((1, 3, 8, 8),) * 3}])
    with pytest.raises(ConfigError) as info:
        check_profile_names(cfg, [graph()])
    assert info.value.key == "backend_config.model_inputs[0].input_shapes.imgs"
    assert "['x']" in info.value.allowed


@pytest.mark.parametrize(("triple", "why"), [
    (((1, 3, 8), (1, 3, 8), (1, 3, 8)), "rank 4"),
    (((2, 3, 8, 8), (1, 3, 8, 8), (4, 3, 8, 8)), "min <= opt <= max"),
    (((1, 3, 8, 8), (4, 3, 8, 8), (2, 3, 8, 8)), "min <= opt <= max"),
    (((0, 3, 8, 8), (1, 3, 8, 8), (2, 3, 8, 8)), "0 < min"),
])
def test_bad_profile_is_a_config_error_naming_the_key(triple, why):
    # ProfileShape.validate runs at config load; built directly here, so plan_build must check too
    cfg = backend(shapes=[{"x": ((1, 3, 8, 8),) * 3}, {"x": triple}])
    with pytest.raises(ConfigError, match=why) as info:
        plan_build("auto", 10, cfg, graph())
    assert info.value.key == "backend_config.model_inputs[1].input_shapes.x"


def test_shipped_style_config_loads_into_a_plan(tmp_path):
    """Through the real loader: dict config -> typed BackendConfig -> plan."""
    from awml_harness.config.validation import from_mapping

    cfg = from_mapping(BackendConfig, {"common_config": {"precision_policy": "fp32_tf32", "max_workspace_size": 2 << 30},
                   "model_inputs": [{"input_shapes": {"x": {"min_shape": [1, 3, 8, 8], "opt_shape": [2, 3, 8, 8],
                                                             "max_shape": [8, 3, 8, 8]}}}]},
                       "backend_config")
    plan = plan_build(cfg.common_config.precision_policy, 10, cfg, graph())
    assert plan.flags == ("TF32",) and plan.workspace_bytes == 2 << 30
    assert plan.profiles[0]["x"][2] == (8, 3, 8, 8)


def test_importing_trt_settings_loads_neither_tensorrt_nor_torch():
    code = ("import sys, awml_harness.export.trt_settings as s; "
            "s.plan_build('fp16', 11, __import__('awml_harness.config.schema', fromlist=['x']).BackendConfig(), "
            "type('G', (), {'name': 'g', 'input_names': (), 'example_inputs': {}, 'profiles': ()})()); "
            "print(sorted(m for m in ('torch', 'tensorrt', 'onnx', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# -- the builder and runner: only where tensorrt and CUDA exist ----------------------------
@pytest.fixture
def trt_cuda():
    trt = pytest.importorskip("tensorrt", reason="tensorrt not installed")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return trt


def _onnx_model(path, dynamic=True, nonzero=False):
    """y = relu(x @ W) (+ nonzero indices of x > 0 when `nonzero`), written with onnx.helper."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = np.arange(12, dtype=np.float32).reshape(4, 3) / 10 - 0.5
    batch = "n" if dynamic else 2
    nodes = [helper.make_node("MatMul", ["x", "w"], ["m"]), helper.make_node("Relu", ["m"], ["y"])]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])]
    if nonzero:
        nodes += [helper.make_node("Greater", ["x", "zero"], ["pos"]), helper.make_node("NonZero", ["pos"], ["idx"])]
        outputs.append(helper.make_tensor_value_info("idx", TensorProto.INT64, [2, "k"]))
    g = helper.make_graph(nodes, "toy", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])], outputs,
                          initializer=[numpy_helper.from_array(w, "w"),
                                       numpy_helper.from_array(np.zeros((), np.float32), "zero")])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return w


@pytest.mark.gpu
@pytest.mark.parametrize("policy", ["auto", "fp32_tf32", "strongly_typed"])
def test_engine_builds_and_runs_with_profiles(trt_cuda, tmp_path, policy):
    from awml_harness.backends.tensorrt import TensorRTRunner
    from awml_harness.export.tensorrt import build_engine

    w = _onnx_model(tmp_path / "m.onnx")
    g = graph("toy", {"x": (2, 4)})
    cfg = backend(policy, shapes=[{"x": ((1, 4), (2, 4), (4, 4))}, {"x": ((5, 4), (8, 4), (16, 4))}])
    plan = plan_build(policy, trt_major(trt_cuda.__version__), cfg, g)
    cache = tmp_path / "timing.cache"
    name = build_engine(trt_cuda, tmp_path / "m.onnx", plan, tmp_path, "m.engine", cache)
    assert cache.is_file() and (tmp_path / name).stat().st_size > 0
    runner = TensorRTRunner(tmp_path / name, "cuda:0")
    runner.activate()
    for n in (1, 3, 9, 16, 2):  # both profiles, growing and shrinking shapes
        x = np.random.default_rng(n).standard_normal((n, 4)).astype(np.float32)
        y = runner.infer({"x": x})["y"]
        np.testing.assert_allclose(y, np.maximum(x @ w, 0), rtol=1e-2, atol=1e-2)
    with pytest.raises(ValueError, match="no optimization profile"):
        runner.infer({"x": np.zeros((17, 4), np.float32)})
    runner.deactivate()


@pytest.mark.gpu
def test_data_dependent_output_and_cuda_graph(trt_cuda, tmp_path):
    from awml_harness.backends.tensorrt import TensorRTRunner
    from awml_harness.export.tensorrt import build_engine

    _onnx_model(tmp_path / "nz.onnx", dynamic=False, nonzero=True)
    plan = plan_build("auto", trt_major(trt_cuda.__version__), backend(), graph("nz", {"x": (2, 4)}))
    build_engine(trt_cuda, tmp_path / "nz.onnx", plan, tmp_path, "nz.engine", None)
    runner = TensorRTRunner((tmp_path / "nz.engine").read_bytes(), "cuda:0")  # an engine given as bytes
    runner.activate()
    x = np.array([[1, -1, 2, 0], [0, 3, -2, 4]], np.float32)
    idx = runner.infer({"x": x})["idx"]
    np.testing.assert_array_equal(idx, np.stack(np.nonzero(x > 0)))

    _onnx_model(tmp_path / "s.onnx", dynamic=False)
    build_engine(trt_cuda, tmp_path / "s.onnx", plan, tmp_path, "s.engine", None)
    graphed = TensorRTRunner(tmp_path / "s.engine", "cuda:0", cuda_graph=True)
    graphed.activate()
    first = graphed.infer({"x": x})["y"]
    again = graphed.infer({"x": x * 2})["y"]  # replayed graph reads the new input
    np.testing.assert_allclose(again, 2 * first, rtol=1e-2, atol=1e-2)


@pytest.mark.gpu
def test_parser_error_names_the_node(trt_cuda, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    from awml_harness.export.tensorrt import EngineBuildError, build_engine

    node = helper.make_node("NoSuchOp", ["x"], ["y"], name="the_bad_node", domain="example.invalid")
    g = helper.make_graph([node], "bad", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.invalid", 1)]),
              str(tmp_path / "bad.onnx"))
    plan = plan_build("auto", trt_major(trt_cuda.__version__), backend(), graph("bad", {"x": (1, 4)}))
    with pytest.raises(EngineBuildError, match="the_bad_node"):
        build_engine(trt_cuda, tmp_path / "bad.onnx", plan, tmp_path, "bad.engine", None)
