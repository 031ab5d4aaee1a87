"""int8 pieces (issue "INT8 you can trust"): the calibration samples kept apart from
evaluation, the TensorRT form of the Q/DQ graph ORT writes, the calibration methods, the
TensorRT calibration cache both ways, the int8 tolerance floor and per-pair detection
matching, the handed-over Q/DQ file recognised at config load, the gate message naming
the calibration, and the TensorRT plans of the int8 policies."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from awml_harness.export import int8  # noqa: E402
from awml_harness.export.calibration import choose_samples  # noqa: E402


# -- samples -------------------------------------------------------------------------------------
def test_calibration_samples_come_from_outside_the_evaluation_first():
    chosen, overlap = choose_samples(20, 5, seed=0, avoid=range(12))
    assert len(chosen) == 5 and all(i >= 12 for i in chosen) and overlap == []
    assert choose_samples(20, 5, seed=0, avoid=range(12)) == (chosen, overlap)  # seeded: the same draw
    assert choose_samples(20, 5, seed=1, avoid=range(12))[0] != chosen


def test_calibration_samples_overlap_only_when_the_rest_runs_out():
    chosen, overlap = choose_samples(10, 6, seed=3, avoid=range(8))
    assert {8, 9} <= set(chosen) and len(chosen) == 6
    assert sorted(overlap) == sorted(set(chosen) - {8, 9}) and len(overlap) == 4
    assert choose_samples(4, 10, seed=0) == ([0, 1, 2, 3], [])  # fewer than asked: all of them


# -- a small graph: Conv -> Relu -> Conv -> Add(residual) -> output --------------------------------
def _model(path: Path) -> Path:
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.normal(0, 0.5, (8, 3, 3, 3)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.normal(0, 0.5, (8, 8, 3, 3)).astype(np.float32), "w2")
    b1 = numpy_helper.from_array(rng.normal(0, 0.1, (8,)).astype(np.float32), "b1")
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
             helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
             helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
             helper.make_node("Add", ["c2", "r1"], ["y"], name="add")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 8, 8])], [w1, w2, b1])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def _feeds(n: int = 6, scale: float = 1.0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(1)
    return [{"x": (rng.normal(0, 1, (1, 3, 8, 8)) * scale).astype(np.float32)} for _ in range(n)]


def _run(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)[0]


@pytest.fixture()
def quantized(tmp_path):
    src = _model(tmp_path / "m.onnx")
    prepared = tmp_path / "m.prepared.onnx"
    int8.prepare(src, prepared)
    cal = int8.calibrate(prepared, _feeds(), tmp_path)
    return src, prepared, cal


def test_the_qdq_graph_is_in_the_form_tensorrt_builds(quantized, tmp_path):
    src, prepared, cal = quantized
    placed = int8.quantize(prepared, tmp_path / "q.onnx", cal.ranges)
    model = onnx.load(str(tmp_path / "q.onnx"))
    assert int8.check_trt_form(model) == []  # every zero point int8 0 (symmetric)
    assert set(placed.quantized) == {"conv1", "conv2", "add"} and placed.qdq_nodes == int8.qdq_count(model) > 0
    inits = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producers = {o: n for n in model.graph.node for o in n.output}
    for conv in ("conv1", "conv2"):  # weights per output channel, behind a Q/DQ pair on the fp32 weight
        node = next(n for n in model.graph.node if n.name == conv)
        dq = producers[node.input[1]]
        assert dq.op_type == "DequantizeLinear" and inits[dq.input[1]].shape == (8,)
        assert producers[dq.input[0]].op_type == "QuantizeLinear"
        if len(node.input) > 2:  # float bias (QuantizeBias=False)
            assert node.input[2] in inits and inits[node.input[2]].dtype == np.float32
    assert producers["y"].op_type == "Add"  # no Q/DQ on an output
    ref, test = _run(src, _feeds(1)[0]), _run(tmp_path / "q.onnx", _feeds(1)[0])
    assert 0 < np.abs(ref - test).max() < 0.1 * np.abs(ref).max()  # quantized, and close


def test_an_excluded_node_stays_float_with_the_same_ranges(quantized, tmp_path):
    """conv2 reads r1, which the quantized add reads too: the shared Q/DQ pair of r1 stays
    for add, and conv2 gets the float r1 back."""
    _, prepared, cal = quantized
    placed = int8.quantize(prepared, tmp_path / "q.onnx", cal.ranges, exclude=["conv2"])
    assert "conv2" not in placed.quantized and placed.excluded == ("conv2",)
    model = onnx.load(str(tmp_path / "q.onnx"))
    producers = {o: n.op_type for n in model.graph.node for o in n.output}
    conv2 = next(n for n in model.graph.node if n.name == "conv2")
    assert not any(producers.get(i) == "DequantizeLinear" for i in conv2.input)
    add = next(n for n in model.graph.node if n.name == "add")
    assert all(producers.get(i) == "DequantizeLinear" for i in add.input)
    assert int8.check_trt_form(model) == [] and "conv1" in placed.quantized
    assert int8.matching_nodes(model, [r"^conv\d$"]) == ["conv1", "conv2"]
    assert int8.matching_nodes(model, [], ["Add"]) == ["add"]


def test_minmax_ranges_are_the_calibration_data_extremes(quantized):
    _, _, cal = quantized
    xs = np.stack([f["x"] for f in _feeds()])
    assert cal.ranges["x"] == pytest.approx((float(xs.min()), float(xs.max())))
    assert cal.samples == 6 and len(cal.digest()) == 64


@pytest.mark.parametrize("method", ["percentile", "mse", "entropy"])
def test_histogram_methods_clip_inside_the_observed_range(quantized, tmp_path, method):
    _, prepared, minmax = quantized
    cal = int8.calibrate(prepared, _feeds(), tmp_path, method=method, percentile=99.0)
    amax = max(abs(v) for v in minmax.ranges["x"])
    lo, hi = cal.ranges["x"]
    assert 0 < hi <= amax * 1.001 and lo == pytest.approx(-hi, rel=0.01)
    if method != "entropy":
        assert hi < amax  # heavy-tailed enough that clipping pays


def test_a_varying_input_shape_calibrates_one_sample_at_a_time(tmp_path):
    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "v.onnx"))
    feeds = [{"x": np.full((n, 4), float(n), np.float32)} for n in (3, 7, 5)]
    for method in ("minmax", "mse"):
        cal = int8.calibrate(tmp_path / "v.onnx", feeds, tmp_path, method=method)
        assert cal.ranges["x"][1] == pytest.approx(7.0, rel=0.05)


def test_mse_amax_clips_a_long_tail_and_keeps_a_uniform_range():
    edges = np.linspace(0, 100, 2049)
    tail = np.zeros(2048)
    tail[:200] = 10_000  # the mass within ~10
    tail[-1] = 1  # one outlier at 100
    assert int8.mse_amax(tail, edges) < 20
    uniform = np.ones(2048)
    assert int8.mse_amax(uniform, edges) > 95


def test_unknown_method_and_no_samples_are_errors(quantized, tmp_path):
    _, prepared, _ = quantized
    with pytest.raises(int8.QuantizationError, match="one of"):
        int8.calibrate(prepared, _feeds(), tmp_path, method="kl")
    with pytest.raises(int8.QuantizationError, match="no calibration samples"):
        int8.calibrate(prepared, [], tmp_path)


# -- TensorRT calibration caches --------------------------------------------------------------------
def test_trt_cache_round_trip_and_import(tmp_path):
    ranges = {"x": (-2.54, 1.0), "c1": (0.0, 12.7)}
    text = int8.trt_cache_text(ranges)
    assert text.splitlines()[0].startswith("TRT-") and "c1: " in text
    (tmp_path / "cal.cache").write_text(text)
    scales = int8.read_trt_cache(tmp_path / "cal.cache")
    assert scales == pytest.approx({"x": 0.02, "c1": 0.1})
    applied, counts = int8.apply_trt_cache({"x": (-1.0, 1.0), "r1": (0.0, 3.0)}, {**scales, "elsewhere": 1.0})
    assert applied["x"] == pytest.approx((-2.54, 2.54)) and applied["r1"] == (0.0, 3.0)
    assert counts == {"cache_entries": 3, "applied": 1, "calibrated": 1}


def test_an_autoware_style_cache_is_read_and_a_bad_line_is_named(tmp_path):
    (tmp_path / "a.cache").write_text("TRT-8501-EntropyCalibration2\nimages: 3c010204\n/backbone/conv/Conv_output_0: 3d8f5c29\n")
    scales = int8.read_trt_cache(tmp_path / "a.cache")
    assert scales["images"] == pytest.approx(0.00787402, rel=1e-4) and len(scales) == 2
    (tmp_path / "b.cache").write_text("TRT-8501-EntropyCalibration2\nimages 3c010a14\n")
    with pytest.raises(int8.QuantizationError, match=r"b.cache:2"):
        int8.read_trt_cache(tmp_path / "b.cache")
    (tmp_path / "c.cache").write_text("images: 3c010a14\n")
    with pytest.raises(int8.QuantizationError, match="not a TensorRT calibration cache"):
        int8.read_trt_cache(tmp_path / "c.cache")


# -- recognising a Q/DQ file --------------------------------------------------------------------------
def test_file_precision_sees_qdq_nodes(quantized, tmp_path):
    from awml_harness.io.onnx_file import file_precision

    src, prepared, cal = quantized
    assert file_precision(src) == "fp32"
    int8.quantize(prepared, tmp_path / "q.onnx", cal.ranges)
    assert file_precision(tmp_path / "q.onnx") == "int8"
    folder = tmp_path / "graphs"
    folder.mkdir()
    (folder / "a.onnx").write_bytes(src.read_bytes())
    assert file_precision(folder) == "fp32"
    (folder / "b.onnx").write_bytes((tmp_path / "q.onnx").read_bytes())
    assert file_precision(folder) == "int8"


# -- tolerances, detection matching, gate message ---------------------------------------------------
def test_int8_scenarios_get_the_int8_floor_unless_a_rule_names_the_pair():
    from awml_harness.config.schema import Backend, Scenario, Tolerance, VerificationConfig
    from awml_harness.verification.tolerance import PRECISION_FLOORS, resolve

    sc = Scenario(Backend.PYTORCH, Backend.ONNX, test_precision="int8")
    ver = VerificationConfig(default=Tolerance(atol=1e-4, rtol=1e-4))
    found = resolve(ver, sc, "out")
    assert found.tolerance == PRECISION_FLOORS["int8"] and found.rule == "verification.default + int8 floor"
    named = VerificationConfig(pairs={"pytorch->onnx-int8": Tolerance(atol=0.01, rtol=0.0)})
    assert resolve(named, sc, "out").tolerance == Tolerance(atol=0.01, rtol=0.0)


def test_pair_detection_replaces_the_global_matching_for_that_pair():
    from awml_harness.config.schema import Backend, DetectionMatch, Scenario, VerificationConfig
    from awml_harness.verification.tolerance import detection_for

    ver = VerificationConfig(detection=DetectionMatch(box_atol=0.05),
                             pair_detection={"pytorch->onnx-int8": DetectionMatch(box_atol=0.2)})
    assert detection_for(ver, Scenario(Backend.PYTORCH, Backend.ONNX, test_precision="int8")).box_atol == 0.2
    assert detection_for(ver, Scenario(Backend.PYTORCH, Backend.ONNX)).box_atol == 0.05


def test_min_score_makes_an_unmatched_low_score_box_borderline():
    from awml_harness.config.schema import DetectionMatch
    from awml_harness.matching import Detections, match_detections, match_settings

    box = np.array([[10.0, 10.0, 40.0, 40.0]])
    ref = Detections(box, np.array([0.16]), np.array([7]), "box2d")
    test = Detections(box, np.array([0.158]), np.array([3]), "box2d")  # a near-tied class flipped
    strict = match_detections(ref, test, **match_settings({}, DetectionMatch()))
    assert not strict.passed and strict.unmatched_ref
    loose = match_detections(ref, test, **match_settings({}, DetectionMatch(min_score=0.2)))
    assert loose.passed and loose.borderline == 2


def test_a_yaw_across_pi_is_a_small_box_delta():
    from awml_harness.matching import Detections, match_detections

    ref = Detections(np.array([[7.5, 9.6, -1.6, 0.7, 0.7, 1.7, -3.064]]), np.array([0.14]), np.array([4]), "box3d")
    test = Detections(np.array([[7.5, 9.6, -1.6, 0.7, 0.7, 1.7, 3.053]]), np.array([0.15]), np.array([4]), "box3d")
    found = match_detections(ref, test, box_atol=0.2)
    assert found.passed and found.max_box_delta == pytest.approx(2 * np.pi - 6.117, abs=1e-6)
    far = Detections(np.array([[7.5, 9.6, -1.6, 0.7, 0.7, 1.7, 0.0]]), np.array([0.15]), np.array([4]), "box3d")
    assert match_detections(ref, far, box_atol=0.2).max_box_delta == pytest.approx(3.064)


def test_the_gate_message_of_an_int8_backend_names_its_calibration():
    from awml_harness.evaluation.gate import judge_metrics
    from awml_harness.evaluation.results import BackendResult, gate_message

    gate = judge_metrics({"acc": 0.5}, {"acc": 1.0}, {"*": 0.02})
    res = BackendResult("onnx-int8", "cpu", "int8", gate=gate, calibration="int8 calibration: minmax, zeros")
    text = gate_message("P-onnx-int8:cpu", "pytorch", res)
    assert "acc: 0.5" in text and "int8 calibration: minmax, zeros" in text
    assert res.record()["calibration"] == "int8 calibration: minmax, zeros"
    assert "calibration" not in gate_message("x", "pytorch", BackendResult("onnx", "cpu", "fp32", gate=gate))


# -- TensorRT plans ---------------------------------------------------------------------------------
def _plan(policy, major, precision="fp32"):
    from awml_harness.config.schema import BackendConfig, CommonBackendConfig
    from awml_harness.export.trt_settings import plan_build
    from awml_harness.graph import Graph

    g = Graph(name="g", module=None, example_inputs={"x": np.zeros((1, 4), np.float32)}, input_names=("x",),
              output_names=("y",))
    return plan_build(policy, major, BackendConfig(common_config=CommonBackendConfig(precision_policy=policy)),
                      g, precision=precision)


@pytest.mark.parametrize("major", [10, 11])
@pytest.mark.parametrize("policy,precision", [("int8", "fp32"), ("auto_int8", "fp32"), ("auto", "int8"),
                                              ("fp16", "int8"), ("auto_int8", "int8")])
def test_int8_engines_are_strongly_typed_builds_of_the_qdq_onnx(major, policy, precision):
    plan = _plan(policy, major, precision)
    assert plan.policy == (policy if policy in ("int8", "auto_int8") else "int8")
    assert plan.flags == () and plan.strongly_typed and plan.onnx_precision == "int8"  # no INT8 flag, no calibrator
    assert plan.as_dict()["quantized"] is True


def test_an_fp16_spec_under_an_int8_policy_builds_fp16():
    plan = _plan("int8", 10, "fp16")
    assert plan.policy == "fp16" and plan.onnx_precision == "fp32" and plan.flags == ("FP16",)


@pytest.mark.gpu
def test_a_qdq_graph_builds_a_strongly_typed_engine(quantized, tmp_path):
    trt = pytest.importorskip("tensorrt", reason="tensorrt not installed")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    import dataclasses

    from awml_harness.export.tensorrt import build_engine
    from awml_harness.export.trt_settings import trt_major

    _, prepared, cal = quantized
    int8.quantize(prepared, tmp_path / "q.onnx", cal.ranges)
    plan = dataclasses.replace(_plan("int8", trt_major(trt.__version__)), profiles=({"x": ((1, 3, 8, 8),) * 3},))
    assert build_engine(trt, tmp_path / "q.onnx", plan, tmp_path, "q.engine", None) == "q.engine"
    assert (tmp_path / "q.engine").stat().st_size > 0


# -- P9's fusion count (benchmarks/int8_latency.py) ------------------------------------------------
def test_ort_cpu_leaves_the_tensorrt_form_unfused_and_fuses_u8s8(quantized, tmp_path):
    from benchmarks.int8_latency import describe_ops, optimized_ops, u8s8

    src, prepared, cal = quantized
    trt_form = tmp_path / "trt.onnx"
    int8.quantize(prepared, trt_form, cal.ranges)
    ops = optimized_ops(trt_form, 1, 1)
    assert ops["QLinearConv"] == 0 and ops["DequantizeLinear"] >= 2  # fake quantization: float Conv behind DQ
    assert ops["Conv"] + ops["FusedConv"] == 2
    assert describe_ops(ops).endswith(", 0 integer kernels, 2 float Conv/FusedConv/ConvTranspose/Gemm/MatMul")
    cpu = tmp_path / "u8s8.onnx"
    u8s8(src, cpu, _feeds(1)[0])
    fused = optimized_ops(cpu, 1, 1)
    assert fused["QLinearConv"] == 2 and fused["Conv"] + fused["FusedConv"] == 0
    assert describe_ops(fused).startswith("Q 1 / DQ 1 left, 3 integer kernels (QLinearConv 2, QLinearAdd 1), 0 float")
    ref, got = _run(src, _feeds(1)[0]), _run(cpu, _feeds(1)[0])
    assert np.max(np.abs(ref - got)) < 0.1 * np.max(np.abs(ref))  # it is still the same model
