"""fp32 ONNX -> int8 Q/DQ ONNX in the form TensorRT builds (explicit quantization).

TensorRT 10.1 deprecated its implicit INT8 calibrators and 11 removed them with
BuilderFlag.INT8: int8 reaches an engine only as QuantizeLinear/DequantizeLinear nodes
in the ONNX graph. This module writes that graph with a maintained quantizer, ONNX
Runtime's `quantize_static` (QuantFormat.QDQ), in the settings TensorRT requires and
ModelOpt's ONNX path uses: symmetric int8 activations and weights (zero point 0),
per-channel weights (Conv axis 0, ConvTranspose axis 1), float bias, Q/DQ only on the
inputs of quantized operators (never on their outputs), fp32 weights behind a Q/DQ pair.
The same file is verified on CPU (ONNX Runtime runs Q/DQ graphs) and built by TensorRT,
so what ships is what was verified. ModelOpt is the optional second quantizer
(`export/int8_modelopt.py`).

Calibration is split from placement: `calibrate` runs ONNX Runtime's calibrators over
the graph's own inputs (recorded from the project's pipeline) one sample at a time, and
returns a range per tensor; `quantize` places Q/DQ with those ranges through ORT's JSON
calibration cache, so re-quantizing with other nodes left out (auto_int8) costs no
second calibration. Methods: minmax (= max: symmetric activations make them one),
entropy and percentile (ORT's histogram calibrators), mse (the amax that minimises the
int8 quantization error over ORT's |x| histogram: ORT has no MSE calibrator and
ModelOpt's ONNX path has none either, AWML's pytorch-quantization PTQ does).

A TensorRT calibration cache (text: `TRT-<version>-<algorithm>` then `tensor: <hex>` with
the big-endian float32 scale = amax / 127) is written beside every graph, and one can be
read (`read_trt_cache`) so that existing calibration tables can be checked here.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from awml_harness.export.onnx import ExportError
from awml_harness.io.onnx_file import QDQ_OPS, qdq_count

__all__ = ["QDQ_OPS", "TRT_OP_TYPES", "Placement", "QuantizationError", "calibrate", "qdq_count", "quantize"]

#: op types quantized by default: the TensorRT-guided list of ModelOpt's ONNX PTQ
#: (compute ops and the pooling/elementwise ops TensorRT fuses with them)
TRT_OP_TYPES = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Add", "Mul", "AveragePool", "GlobalAveragePool",
                "MaxPool", "Clip", "BatchNormalization")
METHODS = ("minmax", "max", "entropy", "percentile", "mse")
QMAX = 127.0  # symmetric int8: [-127, 127], scale = amax / 127 (TensorRT's convention)

#: tensor name -> (lowest, highest) seen in calibration
Ranges = dict[str, tuple[float, float]]


class QuantizationError(ExportError):
    """Calibration or Q/DQ placement failed; the message names the graph and the step."""


def quantizer_versions(quantizer: str = "onnxruntime") -> dict[str, str | None]:
    """What decides a Q/DQ file's bytes besides its inputs: for the artifact key."""

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    out = {"quantizer": quantizer, "onnx": version("onnx"), "onnxruntime": version("onnxruntime")}
    if quantizer == "modelopt":
        out["nvidia-modelopt"] = version("nvidia-modelopt")
    return out


# -- graphs ----------------------------------------------------------------------------------
def prepare(src: Path, dst: Path) -> Any:
    """ORT's quantization pre-processing (symbolic shape inference, graph optimisation,
    ONNX shape inference), falling back to plain shape inference when symbolic inference
    gives up; every node named (exclusion lists and TensorRT layers go by node name).
    Writes `dst` and returns the model."""
    import os
    import tempfile

    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    src, dst = Path(src).resolve(), Path(dst).resolve()
    here = os.getcwd()
    # a symbolic inference that gives up saves its partial model (with uuid-named external
    # data files) into the working directory: let it write them into a folder of its own
    with tempfile.TemporaryDirectory(prefix="awml-int8-") as scratch:
        os.chdir(scratch)
        try:
            try:
                quant_pre_process(str(src), str(dst))
            except Exception:  # symbolic shape inference fails on some graphs; the rest still helps
                quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
        finally:
            os.chdir(here)
    model = onnx.load(str(dst))
    taken = {n.name for n in model.graph.node if n.name}
    renamed = False
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"awml_node_{i}_{node.op_type}"
            while name in taken:
                name += "_"
            node.name, renamed = name, True
            taken.add(name)
    if renamed:
        onnx.save(model, str(dst))
    return model


def matching_nodes(model: Any, patterns: Sequence[str], op_types: Sequence[str] = ()) -> list[str]:
    """Names of the nodes whose name `re.search`es one of `patterns` or whose op type is listed."""
    regexes = [re.compile(p) for p in patterns]
    wanted = set(op_types)
    return [n.name for n in model.graph.node
            if n.op_type in wanted or any(r.search(n.name) for r in regexes)]


def quantized_nodes(model: Any) -> list[str]:
    """Nodes (not Q/DQ themselves) that read a DequantizeLinear output, in graph order:
    what runs in int8 once TensorRT fuses the Q/DQ pairs into them."""
    dq_out = {o for n in model.graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return [n.name for n in model.graph.node if n.op_type not in QDQ_OPS and any(i in dq_out for i in n.input)]


# -- calibration -----------------------------------------------------------------------------
def _reader(feeds: Sequence[Mapping[str, np.ndarray]]) -> Any:
    from onnxruntime.quantization import CalibrationDataReader

    class ListReader(CalibrationDataReader):  # type: ignore[misc]
        def __init__(self) -> None:
            self.items = iter(feeds)

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            return None if item is None else {k: np.ascontiguousarray(v) for k, v in item.items()}

        def __len__(self) -> int:
            return len(feeds)

    return ListReader()


def mse_amax(hist: np.ndarray, edges: np.ndarray, start_bin: int = 128) -> float:
    """The clipping amax that minimises the mean squared int8 error over a histogram of
    |x| (`hist` counts, `edges` their bin edges from 0): every candidate amax at a bin
    centre from `start_bin` on, values rounded to the 255-level symmetric grid of that
    amax and clipped to it. As pytorch-quantization's MSE calibrator chooses (AWML's PTQ)."""
    counts = np.asarray(hist, np.float64)
    centres = (np.asarray(edges[:-1], np.float64) + np.asarray(edges[1:], np.float64)) / 2
    total = counts.sum()
    if total == 0 or centres[-1] <= 0:
        return float(edges[-1])
    best, best_err = float(centres[-1]), np.inf
    for i in range(min(start_bin, len(centres) - 1), len(centres)):
        amax = centres[i]
        if amax <= 0:
            continue
        scale = amax / QMAX
        quant = np.clip(np.round(centres / scale), -QMAX, QMAX) * scale
        err = float((counts * (centres - quant) ** 2).sum() / total)
        if err < best_err:
            best, best_err = float(amax), err
    return best


@dataclass(frozen=True)
class Calibration:
    """One graph's calibration result."""

    ranges: Ranges
    seconds: float
    samples: int

    def digest(self) -> str:
        return ranges_digest(self.ranges)


def ranges_digest(ranges: Mapping[str, tuple[float, float]]) -> str:
    """sha256 of the ranges, rounded to float32 (what ends up in the scales)."""
    canon = {k: [float(np.float32(lo)), float(np.float32(hi))] for k, (lo, hi) in sorted(ranges.items())}
    return hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()


def calibrate(model_path: Path, feeds: Sequence[Mapping[str, np.ndarray]], folder: Path, *, method: str = "minmax",
              op_types: Sequence[str] = TRT_OP_TYPES, percentile: float = 99.999, bins: int = 2048) -> Calibration:
    """Ranges of the tensors the quantizer may place Q/DQ on, from `feeds` (one dict of
    graph inputs per sample). Samples go through the calibrator one at a time, so a
    varying input shape (a voxel count) is fine and only one sample's activations are
    held at once."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    if method not in METHODS:
        raise QuantizationError(f"calibration method {method!r}: one of {list(METHODS)}")
    if not feeds:
        raise QuantizationError(f"calibrating {Path(model_path).name}: no calibration samples")
    ort_method, options = {
        "minmax": (CalibrationMethod.MinMax, {}), "max": (CalibrationMethod.MinMax, {}),
        "entropy": (CalibrationMethod.Entropy, {"num_bins": bins, "num_quantized_bins": 128, "symmetric": True}),
        "percentile": (CalibrationMethod.Percentile, {"num_bins": bins, "percentile": percentile, "symmetric": True}),
        "mse": (CalibrationMethod.Percentile, {"num_bins": bins, "percentile": 100.0, "symmetric": True}),
    }[method]
    start = time.perf_counter()
    calibrator = create_calibrator(Path(model_path), list(op_types), augmented_model_path=str(folder / ".augmented.onnx"),
                                   calibrate_method=ort_method, providers=["CPUExecutionProvider"], extra_options=options)
    try:
        for item in feeds:  # one at a time: histograms merge, min/max merge, memory stays one sample
            calibrator.collect_data(_reader([item]))
        if method == "mse":
            ranges = {name: (-(amax := mse_amax(h[0], h[1])), amax)
                      for name, h in calibrator.collector.histogram_dict.items()}
        else:
            data = calibrator.compute_data()
            ranges = {name: (float(np.asarray(d.range_value[0]).min()), float(np.asarray(d.range_value[1]).max()))
                      for name, d in data.items()}
    finally:
        (folder / ".augmented.onnx").unlink(missing_ok=True)
        del calibrator
    return Calibration(ranges, time.perf_counter() - start, len(feeds))


# -- placement -------------------------------------------------------------------------------
def trt_extra_options(model: Any) -> dict[str, Any]:
    """quantize_static's extra_options for the TensorRT form (see the module docstring)."""
    return {"ActivationSymmetric": True, "WeightSymmetric": True, "QuantizeBias": False,
            "AddQDQPairToWeight": True, "DedicatedQDQPair": False, "ForceQuantizeNoInputCheck": True,
            "OpTypesToExcludeOutputQuantization": sorted({n.op_type for n in model.graph.node}),
            "QDQOpTypePerChannelSupportToAxis": {"Conv": 0, "ConvTranspose": 1}}


@dataclass(frozen=True)
class Placement:
    """What one quantize call wrote."""

    file: str
    qdq_nodes: int
    quantized: tuple[str, ...]  # nodes running in int8, graph order
    excluded: tuple[str, ...]  # nodes left out on purpose (config, search)
    seconds: float
    extra: dict[str, Any] = field(default_factory=dict)


def quantize(prepared: Path, dst: Path, ranges: Mapping[str, tuple[float, float]], *,
             exclude: Iterable[str] = (), op_types: Sequence[str] = TRT_OP_TYPES) -> Placement:
    """Q/DQ ONNX at `dst` from the prepared fp32 model and calibrated `ranges`, nodes in
    `exclude` left in float. Runs no calibration (the ranges go in as ORT's JSON cache)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData, save_tensors_data

    start = time.perf_counter()
    model = onnx.load(str(prepared))
    excluded = tuple(sorted(set(exclude)))
    cache = dst.with_name(f".{dst.stem}.ranges.json")
    data = {k: (np.array(lo, np.float32), np.array(hi, np.float32)) for k, (lo, hi) in ranges.items()}
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, data), cache)
    try:
        quantize_static(str(prepared), str(dst), None, quant_format=QuantFormat.QDQ, op_types_to_quantize=list(op_types),
                        per_channel=True, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=list(excluded), calibrate_method=CalibrationMethod.MinMax,
                        extra_options=trt_extra_options(model), calibration_cache_path=str(cache))
    except Exception as exc:
        raise QuantizationError(f"int8 quantization (onnxruntime quantize_static) of {prepared.name} failed: "
                                f"{type(exc).__name__}: {str(exc)[:600]}") from None
    finally:
        cache.unlink(missing_ok=True)
    out = onnx.load(str(dst))
    if release_inputs(out, excluded):
        onnx.save(out, str(dst))
    return Placement(dst.name, qdq_count(out), tuple(quantized_nodes(out)), excluded, time.perf_counter() - start)


def release_inputs(model: Any, nodes: Iterable[str]) -> int:
    """Give the `nodes` left out of quantization their float inputs back, in place; returns
    how many inputs were rewired. A tensor's Q/DQ pair is shared by all its readers (one
    QuantizeLinear per tensor, as TensorRT wants it), so an excluded node that reads a
    tensor a quantized node also reads would still get the dequantized copy: excluded
    would not mean float. Q/DQ nodes nobody reads any more are dropped."""
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    wanted, rewired = set(nodes), 0
    for node in graph.node:
        if node.name not in wanted:
            continue
        for k, name in enumerate(node.input):
            dq = producers.get(name)
            q = producers.get(dq.input[0]) if dq is not None and dq.op_type == "DequantizeLinear" else None
            if q is not None and q.op_type == "QuantizeLinear" and q.input[0] not in inits:
                node.input[k] = q.input[0]
                rewired += 1
    if rewired:
        outputs = {o.name for o in graph.output}
        while True:
            read = {i for n in graph.node for i in n.input} | outputs
            dead = [n for n in graph.node if n.op_type in QDQ_OPS and not any(o in read for o in n.output)]
            if not dead:
                break
            for n in dead:
                graph.node.remove(n)
    return rewired


def check_trt_form(model: Any) -> list[str]:
    """What in a Q/DQ model TensorRT would refuse: nonzero or non-int8 zero points."""
    from onnx import TensorProto, numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    problems = []
    for node in model.graph.node:
        if node.op_type in QDQ_OPS and len(node.input) > 2 and node.input[2] in inits:
            zp = inits[node.input[2]]
            if zp.data_type != TensorProto.INT8 or np.any(numpy_helper.to_array(zp) != 0):
                problems.append(f"{node.name}: zero point {node.input[2]} is not int8 0")
    return problems


def scales_of(model: Any) -> dict[str, float]:
    """Activation tensor -> the scale of its (per-tensor) QuantizeLinear, read from a graph."""
    from onnx import numpy_helper

    inits = {i.name: i for i in model.graph.initializer}
    out = {}
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in inits and node.input[1] in inits:
            scale = numpy_helper.to_array(inits[node.input[1]])
            if scale.size == 1:
                out[node.input[0]] = float(scale.reshape(()))
    return out


# -- TensorRT calibration caches -------------------------------------------------------------
def trt_cache_text(ranges: Mapping[str, tuple[float, float]], algorithm: str = "MinMaxCalibration") -> str:
    """A TensorRT calibration cache for `ranges`: scale = max(|lo|, |hi|) / 127 per tensor."""
    lines = [f"TRT-100000-{algorithm}"]
    for name, (lo, hi) in sorted(ranges.items()):
        scale = max(abs(float(lo)), abs(float(hi))) / QMAX
        lines.append(f"{name}: {struct.pack('!f', scale).hex()}")
    return "\n".join(lines) + "\n"


def read_trt_cache(path: Path) -> dict[str, float]:
    """tensor name -> scale from a TensorRT calibration cache (the first line is its header)."""
    text = Path(path).read_text().splitlines()
    if not text or not text[0].startswith("TRT-"):
        raise QuantizationError(f"{path}: not a TensorRT calibration cache (first line {text[:1]!r}, "
                                "expected 'TRT-<version>-<algorithm>')")
    out = {}
    for i, line in enumerate(text[1:], 2):
        if not line.strip():
            continue
        name, sep, value = line.rpartition(":")
        value = value.strip()
        if not sep or not re.fullmatch(r"[0-9a-fA-F]{8}", value):
            raise QuantizationError(f"{path}:{i}: expected '<tensor>: <8 hex digits>', got {line!r}")
        out[name.strip()] = struct.unpack("!f", bytes.fromhex(value))[0]
    return out


def apply_trt_cache(ranges: Mapping[str, tuple[float, float]], scales: Mapping[str, float]) -> tuple[Ranges, dict[str, int]]:
    """Calibrated `ranges` with every tensor a cache names replaced by +-127 * its scale;
    the counts say how much of the cache matched this graph."""
    out = dict(ranges)
    hit = [n for n in scales if n in out]
    for name in hit:
        amax = QMAX * scales[name]
        out[name] = (-amax, amax)
    return out, {"cache_entries": len(scales), "applied": len(hit), "calibrated": len(out) - len(hit)}
