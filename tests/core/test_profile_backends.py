"""Per-node profiles on real runtimes: ONNX Runtime's own profiler file (fp32, the fp16
variant, int8 Q/DQ models quantized here with onnxruntime.quantization) and PyTorch's
module replays, attributed to the nodes of the fp32 ONNX graph (awml_harness/profile/)."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from awml_harness.profile.nodes import NodeGraph  # noqa: E402
from awml_harness.profile.onnxruntime import OrtProfiler, kernel_runs  # noqa: E402
from awml_harness.profile.rows import graph_entry  # noqa: E402

SHAPE = (1, 3, 32, 32)


class Net(torch.nn.Module):
    """Conv+BN+ReLU stem, a residual block (Add then ReLU), a concat of two branches, an
    upsample (Resize) and a Conv+Sigmoid head: the fusions ONNX Runtime does at
    ORT_ENABLE_ALL (NCHWc renames, FusedConv, the Add+ReLU a Conv absorbs)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.BatchNorm2d(16),
                                        torch.nn.ReLU())
        self.conv1 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.act1 = torch.nn.ReLU()
        self.conv2 = torch.nn.Conv2d(16, 16, 3, padding=1)
        self.act2 = torch.nn.ReLU()
        self.left = torch.nn.Conv2d(16, 8, 1)
        self.right = torch.nn.Conv2d(16, 8, 3, padding=1, stride=2)
        self.up = torch.nn.Upsample(scale_factor=2.0, mode="nearest")
        self.head = torch.nn.Conv2d(16, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = self.act2(self.conv2(self.act1(self.conv1(x))) + x)
        x = torch.cat([self.left(x), self.up(self.right(x))], 1)
        return torch.sigmoid(self.head(x))


def _export(folder: Path) -> tuple[Path, Net]:
    torch.manual_seed(0)
    net = Net().eval()
    with torch.no_grad():  # a trained-looking BatchNorm, so folding it changes the weights
        net.stem[1].running_mean.uniform_(-0.5, 0.5)
        net.stem[1].running_var.uniform_(0.5, 2.0)
    path = folder / "net.onnx"
    torch.onnx.export(net, (torch.randn(SHAPE),), str(path), input_names=["input"], output_names=["output"],
                      opset_version=17, dynamo=False, do_constant_folding=True)
    return path, net


def _feeds() -> dict[str, np.ndarray]:
    return {"input": np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)}


def _ort_profile(model: Path, folder: Path, rounds: int = 8, warmup: int = 3):
    folder.mkdir(exist_ok=True)
    with OrtProfiler({"net": model}, "cpu", folder, threads=1, inter_op=1) as prof:
        for _ in range(warmup + rounds):
            prof.begin_forward()
            prof.run_graph("net", _feeds())
        times = prof.finish(warmup)["net"]
    return times, prof


def _raw_kernels(folder: Path, skip: int) -> dict[str, dict]:
    """The profiler's own file read with json alone: per event name its median duration,
    op and input dtype over the runs after `skip`."""
    [path] = folder.glob("net-ort*.json")
    runs = kernel_runs(json.loads(path.read_text()))[skip:]
    out: dict[str, dict] = {}
    for run in runs:
        for e in run:
            entry = out.setdefault(e["name"].removesuffix("_kernel_time"), {"dur": [], "op": e["args"]["op_name"],
                                                                          "in": e["args"]["input_type_shape"]})
            entry["dur"].append(e["dur"])
    return {k: {**v, "dur": statistics.median(v["dur"])} for k, v in out.items()}


def test_ort_profile_attributes_every_kernel_and_its_top_node_is_the_profilers(tmp_path):
    model, _ = _export(tmp_path)
    times, prof = _ort_profile(model, tmp_path / "prof")
    reference = NodeGraph.load(model)
    entry = graph_entry(times, reference, unprofiled_ms=None)
    cells = entry["nodes"]
    assert set(cells) == {n.name for n in reference.nodes}
    # every kernel found a node, the layout reorders of the NCHWc region included
    assert entry["unmapped_ms"] == 0.0 and entry["unmapped"] == {}
    raw = _raw_kernels(tmp_path / "prof", skip=3)
    assert any(k.endswith("_nchwc") for k in raw), "the NCHWc transformer did not rename (x86 ORT_ENABLE_ALL)"
    assert any(v["op"].startswith("Reorder") for v in raw.values())
    convs = [n.name for n in reference.nodes if n.op_type == "Conv"]
    assert convs and all(cells[c]["status"] == "timed" and cells[c]["ms"] > 0 for c in convs)
    relus = [n.name for n in reference.nodes if n.op_type == "Relu"]
    assert relus and all(cells[r]["status"] == "fused" and cells[r]["into"] in convs for r in relus)
    # the ONNX graph's order is kept in the conv a Relu is fused into: the stem's Relu into the stem's Conv
    stem_conv, stem_relu = "/stem/stem.0/Conv", "/stem/stem.2/Relu"
    assert cells[stem_relu]["into"] == stem_conv
    # the heaviest kernel of ORT's own file, named after a tensor (`<tensor>_nchwc`) or a
    # node, read here with the onnx graph alone: that node carries the table's largest time
    heaviest = max(raw, key=lambda k: raw[k]["dur"])
    producers = {t: n for n in onnx.load(str(model)).graph.node for t in n.output}
    name = heaviest.removesuffix("_nchwc")
    node = producers[name] if name in producers else next(n for n in onnx.load(str(model)).graph.node if n.name == name)
    while node.op_type != "Conv":  # an activation a Conv absorbed: its input's producer
        node = producers[node.input[0]]
    top = max(cells, key=lambda n: cells[n]["ms"])
    assert top == node.name
    # the profiler's own cost per kernel is measured and subtracted
    assert prof.overhead_us > 0
    assert sum(c["ms"] for c in cells.values()) < sum(v["dur"] for v in raw.values()) / 1e3


def test_ort_fp16_variant_lines_up_with_the_fp32_nodes(tmp_path):
    from awml_harness.export.fp16 import convert_to_fp16

    model, _ = _export(tmp_path)
    (tmp_path / "fp16").mkdir()
    half = tmp_path / "fp16" / convert_to_fp16(model, tmp_path / "fp16")
    variant = NodeGraph.load(half)
    reference = NodeGraph.load(model)
    extra = {n.name for n in variant.nodes} - {n.name for n in reference.nodes}
    assert extra and all(variant.op(n) == "Cast" for n in extra)  # the converter's Casts
    times, _ = _ort_profile(half, tmp_path / "prof")
    entry = graph_entry(times, reference, unprofiled_ms=None)
    assert set(entry["nodes"]) == {n.name for n in reference.nodes}  # the same rows as fp32
    assert entry["unmapped_ms"] == 0.0
    raw = _raw_kernels(tmp_path / "prof", skip=3)
    # the precision a Conv ran in is its kernel's input type (ORT's CPU provider upcasts fp16 Convs)
    top = max((n for n in entry["nodes"] if entry["nodes"][n]["op_type"] == "Conv"),
              key=lambda n: entry["nodes"][n]["ms"])
    heaviest_conv = max((k for k, v in raw.items() if v["op"] == "Conv"), key=lambda k: raw[k]["dur"])
    dtype = next(iter(raw[heaviest_conv]["in"][0]))
    assert entry["nodes"][top]["precision"] == {"float": "fp32", "float16": "fp16"}[dtype]


class _Reader:
    def __init__(self, n: int = 8) -> None:
        rng = np.random.default_rng(1)
        self.data = iter([{"input": rng.standard_normal(SHAPE).astype(np.float32)} for _ in range(n)])

    def get_next(self):
        return next(self.data, None)


def _quantize(model: Path, out: Path, activation: str, per_channel: bool) -> Path:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Reader(_Reader, CalibrationDataReader):
        pass

    quantize_static(str(model), str(out), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=getattr(QuantType, activation), weight_type=QuantType.QInt8,
                    per_channel=per_channel)
    return out


def test_int8_qdq_convs_run_as_integer_kernels_on_the_fp32_nodes(tmp_path):
    """u8 activations, s8 weights: ONNX Runtime fuses DequantizeLinear -> Conv ->
    QuantizeLinear into QLinearConv (`<conv>_token_<n>`); each fp32 Conv row says int8,
    integer kernel, and carries the Q/DQ nodes the quantizer inserted."""
    model, _ = _export(tmp_path)
    q = _quantize(model, tmp_path / "int8.onnx", "QUInt8", per_channel=False)
    times, _ = _ort_profile(q, tmp_path / "prof")
    reference = NodeGraph.load(model)
    entry = graph_entry(times, reference, unprofiled_ms=None)
    cells = entry["nodes"]
    assert set(cells) == {n.name for n in reference.nodes}
    convs = [n.name for n in reference.nodes if n.op_type == "Conv"]
    integer = [c for c in convs if cells[c]["integer"]]
    assert integer, {c: cells[c]["kernels"] for c in convs}
    for c in integer:
        assert cells[c]["precision"] == "int8" and "QLinearConv" in cells[c]["kernels"]
    # the Relus the quantizer folded into the Q ranges are not in the int8 graph
    assert all(cells[n.name]["status"] == "absent" for n in reference.nodes if n.op_type == "Relu")
    assert any(inc.endswith(("QuantizeLinear", "DequantizeLinear")) for c in convs for inc in cells[c]["includes"])


def test_int8_conv_left_between_dequantize_and_quantize_is_float(tmp_path):
    """s8 activations with per-channel weights: ONNX Runtime 1.32 leaves some Convs as
    float Conv kernels between DequantizeLinear and QuantizeLinear (notes, measured): a QDQ
    file does not prove integer execution, the kernel decides."""
    model, _ = _export(tmp_path)
    q = _quantize(model, tmp_path / "int8.onnx", "QInt8", per_channel=True)
    times, _ = _ort_profile(q, tmp_path / "prof")
    entry = graph_entry(times, NodeGraph.load(model), unprofiled_ms=None)
    raw = _raw_kernels(tmp_path / "prof", skip=3)
    float_convs = {k for k, v in raw.items() if v["op"] in ("Conv", "FusedConv")}
    if not float_convs:
        pytest.skip("this onnxruntime fused every s8 Conv; the float case does not arise")
    cells = entry["nodes"]
    floats = [n for n, c in cells.items() if c["op_type"] == "Conv" and c["integer"] is False]
    assert floats and all(cells[n]["precision"] == "fp32" for n in floats)
    assert all("DequantizeLinear" in cells[n]["kernels"] or cells[n]["includes"] for n in floats)


def test_torch_replays_sum_to_the_forward_and_land_on_onnx_nodes(tmp_path):
    from awml_harness.profile.torch import graph_times

    model, net = _export(tmp_path)
    reference = NodeGraph.load(model)
    torch.set_num_threads(1)
    args = (torch.from_numpy(_feeds()["input"]),)
    times = graph_times("net", reference, net, args, rounds=9, warmup=2)
    entry = graph_entry(times, reference, unprofiled_ms=None)
    cells = entry["nodes"]
    assert entry["unmapped_ms"] == 0.0
    # self times add up to the whole forward (the root call), round by round
    for per, total in zip(times.rounds, times.totals, strict=True):
        assert sum(per.values()) == pytest.approx(total, rel=0.05)
    convs = [n.name for n in reference.nodes if n.op_type == "Conv"]
    assert all(cells[c]["status"] == "timed" for c in convs)
    # the BatchNorm the exporter folded into the stem Conv is timed with it
    assert cells["/stem/stem.0/Conv"]["kernels"] == ["Conv2d", "BatchNorm2d"]
    # the Add and Concat written in forward() belong to the root module, timed together
    owned = {n: c for n, c in cells.items() if c["op_type"] in ("Add", "Concat", "Sigmoid")}
    assert sum(c["status"] == "timed" for c in owned.values()) == 1
    assert all(c["status"] == "grouped" for c in owned.values() if c["status"] != "timed")
