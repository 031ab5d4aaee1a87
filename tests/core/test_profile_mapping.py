"""Attribution of what a backend timed to ONNX nodes, on hand-written graphs and on the
name formats ONNX Runtime and TensorRT document (TensorRT itself needs a GPU: the test
that runs an engine skips without one)."""

from __future__ import annotations

import pytest

from awml_harness.profile.nodes import (
    NodeGraph,
    OnnxNode,
    attribute,
    family,
    is_integer_kernel,
    onto_reference,
    resolve,
)
from awml_harness.profile.rows import GraphTimes, graph_entry
from awml_harness.profile.tensorrt import datatype_precision, graph_times, layer_information, layer_nodes


def _graph(*nodes: tuple[str, str, tuple[str, ...], tuple[str, ...]], inputs=("x",), outputs=("y",), init=("w",)):
    return NodeGraph(tuple(OnnxNode(*n) for n in nodes), frozenset(inputs), frozenset(outputs), frozenset(init))


# conv -> relu -> conv2 -> add(+relu out) -> relu2 -> shape chain -> reshape
G = _graph(("conv", "Conv", ("x", "w"), ("c",)), ("relu", "Relu", ("c",), ("r",)),
           ("conv2", "Conv", ("r", "w"), ("c2",)), ("add", "Add", ("c2", "r"), ("a",)),
           ("relu2", "Relu", ("a",), ("r2",)), ("shape", "Shape", ("r2",), ("s",)),
           ("reshape", "Reshape", ("r2", "s"), ("y",)))


def test_kernel_families_and_integer_kernels():
    assert family("FusedConv") == family("QLinearConv") == family("NhwcFusedConv") == family("ConvInteger") == "Conv"
    assert family("QGemm") == "Gemm" and family("Upsample") == "Resize" and family("Relu") == "Relu"
    assert is_integer_kernel("QLinearConv") and is_integer_kernel("MatMulInteger", "float")
    assert is_integer_kernel("NhwcMaxPool", "uint8")  # a compute op reading 8-bit integers
    assert not is_integer_kernel("Conv", "float") and not is_integer_kernel("FusedConv")
    assert not is_integer_kernel("DequantizeLinear", "uint8")  # a conversion, not integer compute


def test_ort_names_resolve_through_the_optimizers_renames():
    assert resolve(G, "conv") == ("conv", False)
    assert resolve(G, "r_nchwc") == ("relu", True)  # named after the tensor it computes
    assert resolve(G, "InsertedPrecisionFreeCast_r_nchwc") == ("relu", True)
    assert resolve(G, "conv2_token_17") == ("conv2", False)  # QDQ fusion
    assert resolve(G, "conv/duplicated") == ("conv", False)
    assert resolve(G, "ReorderOutput_token_3") == (None, False)


def test_nchwc_kernels_take_the_conv_and_what_it_absorbed():
    """`r_nchwc` is Conv+Relu (named after the Relu's output): the Conv carries the time and
    the Relu is fused into it. `c2_nchwc` is conv2 named after its own output, which also
    ran the Add and Relu after it (they leave no event): fused into conv2. The shape chain
    feeding the Reshape is folded into it; a reorder goes to its neighbour in the
    optimized graph."""
    kernels = {"r_nchwc": "Conv", "c2_nchwc": "Conv", "reshape": "Reshape", "ReorderOutput": "ReorderOutput"}
    optimized = _graph(("r_nchwc", "Conv", ("x", "w"), ("t1",)), ("c2_nchwc", "Conv", ("t1", "w"), ("t2",)),
                       ("ReorderOutput", "ReorderOutput", ("t2",), ("r2",)),
                       ("reshape", "Reshape", ("r2", "s_folded"), ("y",)), init=("w", "s_folded"))
    att = attribute(G, kernels, visible={"x", "t1", "t2", "r2", "y", "s_folded"}, optimized=optimized)
    assert att.target["r_nchwc"] == "conv" and att.target["c2_nchwc"] == "conv2"
    assert att.target["ReorderOutput"] == "conv2"  # upstream neighbour first
    assert att.merged["relu"] == ("conv", "fused")
    assert att.merged["add"] == ("conv2", "fused") and att.merged["relu2"] == ("conv2", "fused")
    assert att.merged["shape"][1] == "fused" and att.merged["shape"][0] == "reshape"
    # without the optimized graph the reorder has no node: unmapped, not guessed
    assert attribute(G, kernels).target["ReorderOutput"] is None


def test_fused_conv_keeps_the_conv_name_and_absorbs_its_activation():
    att = attribute(G, {"conv": "FusedConv", "conv2": "Conv", "add": "Add", "relu2": "Relu", "reshape": "Reshape"})
    assert att.target["conv"] == "conv" and att.merged["relu"] == ("conv", "fused")
    assert "conv2" not in att.merged and "add" not in att.merged  # ran as themselves


def test_variant_only_nodes_join_their_nearest_fp32_node():
    variant = _graph(("x_cast", "Cast", ("x",), ("xh",)), ("conv", "Conv", ("xh", "w"), ("c",)),
                     ("relu", "Relu", ("c",), ("r",)), ("q", "QuantizeLinear", ("r", "w"), ("rq",)),
                     ("dq", "DequantizeLinear", ("rq", "w"), ("rd",)), ("conv2", "Conv", ("rd", "w"), ("y",)))
    reference = _graph(("conv", "Conv", ("x", "w"), ("c",)), ("relu", "Relu", ("c",), ("r",)),
                       ("conv2", "Conv", ("r", "w"), ("y",)))
    to_ref = onto_reference(variant, reference)
    assert to_ref == {"conv": "conv", "relu": "relu", "conv2": "conv2", "x_cast": "conv", "q": "relu", "dq": "conv2"}


def test_rows_keep_every_reference_node_and_say_what_happened_to_it():
    reference = _graph(("conv", "Conv", ("x", "w"), ("c",)), ("relu", "Relu", ("c",), ("r",)),
                       ("conv2", "Conv", ("r", "w"), ("y",)))
    variant = _graph(("conv", "Conv", ("x", "w"), ("c",)), ("conv2", "Conv", ("c", "w"), ("y",)),
                     ("y_cast", "Cast", ("y",), ("z",)))
    times = GraphTimes("g", variant, rounds=({"conv": 1.0, "conv2": 2.0, "y_cast": 0.5},
                                            {"conv": 3.0, "conv2": 2.0, "y_cast": 0.5}),
                       totals=(4.0, 6.0), unmapped=({"mystery": 0.5}, {"mystery": 0.5}),
                       info={"conv": {"kernels": ["Conv"], "precision": "fp32"}})
    entry = graph_entry(times, reference, unprofiled_ms=4.0)
    cells = entry["nodes"]
    assert list(cells) == ["conv", "relu", "conv2"]
    assert cells["conv"]["ms"] == 2.0 and cells["conv"]["share"] == pytest.approx(0.4)  # median 2 of total 5
    assert cells["conv2"]["ms"] == 2.5 and cells["conv2"]["includes"] == ["y_cast"]
    assert cells["relu"]["status"] == "absent"
    assert entry["total_ms"] == 5.0 and entry["coverage"] == pytest.approx(1.25)
    assert entry["unmapped_ms"] == 0.5 and entry["unmapped"] == {"mystery": 0.5}


# -- TensorRT name formats (NVIDIA's docs and trex examples) ---------------------------------------
T = _graph(("/a/Conv", "Conv", ("x", "w"), ("c",)), ("/a/Relu", "Relu", ("c",), ("r",)),
           ("/b/Conv", "Conv", ("r", "w"), ("c2",)), ("/b/Add", "Add", ("c2", "r"), ("a",)),
           ("/b/Relu", "Relu", ("a",), ("y",)))


def test_tensorrt_layer_names_split_into_onnx_nodes():
    assert layer_nodes("/a/Conv + /a/Relu", T) == ["/a/Conv", "/a/Relu"]
    assert layer_nodes("/a/Conv + /a/Relu [profile 1]", T) == ["/a/Conv", "/a/Relu"]
    assert layer_nodes("PWN(PWN(/b/Add), /b/Relu)", T) == ["/b/Add", "/b/Relu"]
    assert layer_nodes("{ForeignNode[/a/Relu.../b/Add]}", T) == ["/a/Relu", "/b/Conv", "/b/Add"]
    assert layer_nodes("/b/Conv_myl3_12", T) == ["/b/Conv"]
    assert layer_nodes("(Unnamed Layer* 1) [ElementWise]", T) == []
    info = {"fused": {"onnx": ["/b/Conv", "/b/Add"]}}  # Metadata wins over the name
    assert layer_nodes("fused", T, info) == ["/b/Conv", "/b/Add"]


def test_inspector_json_gives_precision_tactic_and_origin():
    detailed = {"Layers": [
        {"Name": "/a/Conv + /a/Relu", "LayerType": "CaskConvolution",
         "Inputs": [{"Name": "x", "Format/Datatype": "Thirty-two wide channel vectorized row major Int8 format"}],
         "TacticName": "sm80_xmma_fprop", "Metadata": "[ONNX Layer: /a/Conv]\x1f[ONNX Layer: /a/Relu]"},
        {"Name": "/b/Conv [profile 1]", "LayerType": "CaskConvolution",
         "Inputs": [{"Format/Datatype": "Channel major FP16 format where channel % 8 == 0"}]},
        {"Name": "Reformatting CopyNode for Input Tensor 0 to /b/Conv", "LayerType": "Reformat",
         "Inputs": [{"Format/Datatype": "Row major linear FP32"}]}], "Bindings": ["x", "y"]}
    info = layer_information(detailed)
    assert info["/a/Conv + /a/Relu"]["precision"] == "int8" and info["/a/Conv + /a/Relu"]["onnx"] == ["/a/Conv", "/a/Relu"]
    assert info["/b/Conv"]["precision"] == "fp16" and info["/a/Conv + /a/Relu"]["tactic"] == "sm80_xmma_fprop"
    assert layer_information({"Layers": ["/a/Conv + /a/Relu"]}) == {"/a/Conv + /a/Relu": {}}  # names only
    assert datatype_precision("Half") == "fp16" and datatype_precision("Float") == "fp32"
    assert datatype_precision(None) is None
    rounds = [[("/a/Conv + /a/Relu", 0.3), ("Reformatting CopyNode for Input Tensor 0 to /b/Conv", 0.1),
               ("/b/Conv [profile 1]", 0.5), ("(Unnamed Layer* 9) [Shuffle]", 0.05)]] * 3
    times = graph_times("g", T, rounds, info)
    entry = graph_entry(times, T, unprofiled_ms=None)
    cells = entry["nodes"]
    assert cells["/a/Conv"]["ms"] == pytest.approx(0.3) and cells["/a/Conv"]["precision"] == "int8"
    assert cells["/a/Conv"]["integer"] is True
    assert cells["/a/Relu"]["status"] == "fused" and cells["/a/Relu"]["into"] == "/a/Conv"
    assert cells["/b/Conv"]["ms"] == pytest.approx(0.6)  # its reformat included
    assert cells["/b/Conv"]["kernels"] == ["Reformat", "CaskConvolution"] and cells["/b/Conv"]["precision"] == "fp16"
    assert cells["/b/Add"]["status"] == "folded"
    assert entry["unmapped_ms"] == pytest.approx(0.05) and entry["total_ms"] == pytest.approx(0.95)


def test_tensorrt_profile_of_a_real_engine(tmp_path):
    """On a GPU machine: the IProfiler/inspector path against TensorRT itself."""
    trt = pytest.importorskip("tensorrt")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("tensorrt is installed but torch sees no CUDA device")
    import numpy as np

    from awml_harness.export.tensorrt import build_engine
    from awml_harness.export.trt_settings import BuildPlan, trt_major
    from awml_harness.profile.tensorrt import TrtProfiler
    from tests.core.test_profile_backends import SHAPE, _export

    model, _ = _export(tmp_path)
    major = trt_major(str(trt.__version__))
    plan = BuildPlan("net", "auto", major, (), major >= 11, False, 1 << 28, 3,
                     ({"input": (SHAPE, SHAPE, SHAPE)},))
    name = build_engine(trt, model, plan, tmp_path, "net.engine", None)
    x = {"input": np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)}
    with TrtProfiler({"net": tmp_path / name}, {"net": model}, "cuda:0") as prof:
        for _ in range(6):
            prof.begin_forward()
            prof.run_graph("net", x)
        times = prof.finish(2)["net"]
    entry = graph_entry(times, NodeGraph.load(model), unprofiled_ms=None)
    convs = [n for n, c in entry["nodes"].items() if c["op_type"] == "Conv"]
    assert all(entry["nodes"][c]["status"] in ("timed", "fused") for c in convs)
    assert any(entry["nodes"][c]["precision"] for c in convs), "DETAILED builds report a precision per layer"
    assert entry["total_ms"] > 0 and entry["unmapped_ms"] < entry["total_ms"]
