"""precision_policy="auto_mixed" pieces (issue 18, item 3): the search on a synthetic
criterion, the fp32 round trips the converter leaves, the TensorRT build plan, and the
layer pinning on a real TensorRT build (GPU only)."""

from __future__ import annotations

import numpy as np
import pytest

from awml_harness.export.auto_mixed import AutoMixedError, search


def _needs(*needed):
    calls = []

    def criterion(blocked):
        calls.append(blocked)
        ok = all(n in blocked[g] for g, n in needed)
        return ok, "" if ok else f"missing {sorted(needed)}"

    return criterion, calls


def test_search_finds_exactly_the_needed_nodes():
    names = [f"n{i}" for i in range(40)]
    criterion, calls = _needs(("g", "n3"), ("g", "n17"), ("g", "n30"))
    found = search({"g": names}, criterion)
    assert set(found.fp32_nodes["g"]) == {"n3", "n17", "n30"} and found.count == 3
    assert found.evaluations == len(calls) < 40  # far fewer than one try per node
    assert not found.plain_fp16_passed and found.candidates == {"g": 40}


def test_search_spans_graphs_and_keeps_candidate_order():
    criterion, _ = _needs(("b", "y"), ("a", "q"))
    found = search({"a": ["p", "q", "r"], "b": ["x", "y"]}, criterion)
    assert found.fp32_nodes == {"a": ("q",), "b": ("y",)}


def test_plain_fp16_that_passes_keeps_nothing_in_fp32():
    criterion, calls = _needs()
    found = search({"g": ["a", "b"]}, criterion)
    assert found.fp32_nodes == {"g": ()} and found.plain_fp16_passed and len(calls) == 1


def test_unreachable_tolerance_is_one_clear_error():
    with pytest.raises(AutoMixedError, match=r"even with all 2 candidate nodes in fp32.*\n.*too far.*\n.*pair_outputs"):
        search({"g": ["a", "b"]}, lambda blocked: (False, "too far"))


# -- conversion: every node blocked is fp32 again ------------------------------------------------
def test_blocking_every_node_gives_fp32_results(tmp_path):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxconverter_common")
    from onnx import TensorProto, helper, numpy_helper

    from awml_harness.export.auto_mixed import candidate_nodes, convert_mixed, prepare_source

    # t is read by two nodes: the converter rounds it to fp16 between them unless undone
    w = numpy_helper.from_array((np.arange(16, dtype=np.float32).reshape(4, 4) + 1) / 3, "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["t"], name="mm"), helper.make_node("Relu", ["t"], ["r"], name="relu"),
             helper.make_node("Add", ["t", "r"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(tmp_path / "m.onnx"))
    prepared = prepare_source(tmp_path / "m.onnx")
    assert candidate_nodes(prepared) == ["add", "relu", "mm"]
    x = np.array([[1 / 7, 2 / 7, 3 / 7, 5 / 7]], np.float32)

    def run(m):
        return ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    ref = run(prepared)
    full = convert_mixed(prepared.SerializeToString(), ["mm", "relu", "add"])
    assert not [n for n in full.graph.node if n.op_type == "Cast"
                and any(a.name == "to" and a.i == TensorProto.FLOAT16 for a in n.attribute)]
    np.testing.assert_allclose(run(full), ref, rtol=1e-6, atol=0)
    half = convert_mixed(prepared.SerializeToString(), [])
    assert np.abs(run(half) - ref).max() > 1e-4  # plain fp16 really differs here


# -- TensorRT: the plan, and the pinned layers on a real build ------------------------------------
def _plan(major, precision="fp32"):
    from awml_harness.config.schema import BackendConfig, CommonBackendConfig
    from awml_harness.export.trt_settings import plan_build
    from awml_harness.graph import Graph

    g = Graph(name="g", module=None, example_inputs={"x": np.zeros((2, 4), np.float32)}, input_names=("x",),
              output_names=("y",))
    cfg = BackendConfig(common_config=CommonBackendConfig(precision_policy="auto_mixed"))
    return plan_build("auto_mixed", major, cfg, g, precision=precision)


@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_trt_plan_for_auto_mixed(precision):
    ten, eleven = _plan(10, precision), _plan(11, precision)
    assert ten.policy == eleven.policy == "auto_mixed"
    # 10.x: weak fp16 with the chosen layers pinned; 11.x: the searched fp16 ONNX, strongly typed
    assert (ten.flags, ten.strongly_typed, ten.onnx_precision) == (("FP16", "OBEY_PRECISION_CONSTRAINTS"), False, "fp32")
    assert (eleven.flags, eleven.strongly_typed, eleven.onnx_precision) == ((), True, "fp16")
    assert "fp32_layers" in ten.as_dict()  # the pinned layers are part of the engine's key


@pytest.mark.gpu
def test_pinned_layers_build_in_fp32(tmp_path):
    trt = pytest.importorskip("tensorrt", reason="tensorrt not installed")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    onnx = pytest.importorskip("onnx")
    import dataclasses

    from onnx import TensorProto, helper, numpy_helper

    from awml_harness.export.tensorrt import build_engine, pin_fp32_layers
    from awml_harness.export.trt_settings import trt_major

    w = numpy_helper.from_array(np.full((4, 4), 1 / 3, np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["t"], name="mm"), helper.make_node("Relu", ["t"], ["y"], name="relu")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(tmp_path / "m.onnx"))
    major = trt_major(trt.__version__)
    if major != 10:
        pytest.skip(f"layer pinning is the TensorRT 10 route; {trt.__version__} builds from the typed fp16 ONNX")
    logger = trt.Logger(trt.Logger.ERROR)
    network = trt.Builder(logger).create_network(0)
    assert trt.OnnxParser(network, logger).parse_from_file(str(tmp_path / "m.onnx"))
    assert pin_fp32_layers(trt, network, ("mm",), tmp_path / "m.onnx") >= 1
    pinned = [network.get_layer(i) for i in range(network.num_layers) if network.get_layer(i).precision_is_set]
    assert pinned and all(layer.precision == trt.float32 for layer in pinned)
    plan = dataclasses.replace(_plan(10), fp32_layers=("mm",))
    assert build_engine(trt, tmp_path / "m.onnx", plan, tmp_path, "m.engine", None) == "m.engine"
