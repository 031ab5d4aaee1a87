"""P9: onnx-int8 / onnx fp32 median latency on the full-size graphs, on this CPU.

    python -m benchmarks.run --only P9

Per full-size config (YOLOX 960, CenterPoint's 1020 x 1020 backbone): the fp32 ONNX and
the harness's own int8 artifact (the Q/DQ graph in TensorRT's form, calibrated as the
config says) are timed in ONNX Runtime with the harness's session options and thread
policy, interleaved round by round (fp32, int8, u8s8, fp32, ...), on one model call's
feeds captured from the project's pipeline. Beside each ratio: the op counts of ONNX
Runtime's optimized graph (Q/DQ left vs fused integer kernels), and how far int8's
outputs are from fp32's on that input.

The third graph ("u8s8") is not a harness artifact: the same fp32 graph quantized by ONNX
Runtime in the form its x86 CPU kernels fuse (asymmetric uint8 activations, int8
per-channel weights, Q/DQ on operator outputs too). It is timed to show what would fuse
the TensorRT-form graph's Q/DQ pairs, and why that graph is not what TensorRT builds
(nonzero zero points). The full-size configs carry seeded random weights, so no metric is
computed here; the int8 metric deltas come from the shipped int8 configs (README, INT8).
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

#: config -> (the graph timed (None: the config's only graph), rounds, --cfg-options overrides).
#: The full-size CenterPoint calibration holds ~7 GB per 1020 x 1020 frame in ORT's augmented
#: graph and takes minutes per frame on 2 shared cores with its fp32 feeds recorded first; the
#: config's 32 frames took over 20 minutes and 17 GB, so P9 calibrates 4 (latency does not depend on
#: the count; the weights are seeded random, so the ranges mean nothing for accuracy anyway).
P9_GRAPHS = {"YOLOX_opt_elan": ("projects/YOLOX_opt_elan/configs/deploy_config_960.py", None, 7, ()),
             "CenterPoint": ("projects/CenterPoint/configs/deploy_config_full.py", "pts_backbone_neck_head", 5,
                             ("quantization.num_samples=4",))}
GOAL = 0.6
#: ONNX Runtime kernels that compute in integers (what a fused DQ -> op -> Q becomes)
INTEGER_OPS = ("QLinearConv", "QLinearMatMul", "QLinearAdd", "QLinearMul", "QGemm", "QLinearConcat",
               "QLinearAveragePool", "QLinearGlobalAveragePool", "QLinearSigmoid", "QLinearLeakyRelu",
               "ConvInteger", "MatMulInteger", "MatMulIntegerToFloat")


def optimized_ops(path: Path, threads: int, inter_op: int) -> Counter[str]:
    """Op types of the graph ONNX Runtime actually runs (ORT_ENABLE_ALL, CPU), read back
    from `optimized_model_filepath`."""
    import onnx
    import onnxruntime as ort

    from awml_harness.backends.onnxruntime import session_options

    with tempfile.TemporaryDirectory() as tmp:
        opts = session_options(threads, False, inter_op, False)
        opts.optimized_model_filepath = str(Path(tmp) / "optimized.onnx")
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
        model = onnx.load(opts.optimized_model_filepath, load_external_data=False)
    return Counter(n.op_type for n in model.graph.node)


def describe_ops(ops: Counter[str]) -> str:
    fused = sum(ops[o] for o in INTEGER_OPS)
    floats = ops["Conv"] + ops["FusedConv"] + ops["ConvTranspose"] + ops["Gemm"] + ops["MatMul"]
    kinds = ", ".join(f"{o} {ops[o]}" for o in INTEGER_OPS if ops[o])
    return (f"Q {ops['QuantizeLinear']} / DQ {ops['DequantizeLinear']} left, {fused} integer kernels"
            f"{f' ({kinds})' if kinds else ''}, {floats} float Conv/FusedConv/ConvTranspose/Gemm/MatMul")


def u8s8(src: Path, dst: Path, feeds: dict[str, np.ndarray]) -> float:
    """`src` quantized in ONNX Runtime's CPU form (QUInt8 asymmetric activations, QInt8
    symmetric per-channel weights, default output quantization), calibrated (MinMax) on
    `feeds`; returns the seconds it took."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    from awml_harness.export import int8

    start = time.perf_counter()
    prepared = dst.with_name(f".{dst.stem}.prepared.onnx")
    int8.prepare(src, prepared)
    quantize_static(str(prepared), str(dst), int8._reader([feeds]), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax)
    prepared.unlink(missing_ok=True)
    return time.perf_counter() - start


def closeness(ref: list[np.ndarray], got: list[np.ndarray]) -> str:
    worst, cos = 0.0, 1.0
    for r, g in zip(ref, got, strict=True):
        r64, g64 = r.astype(np.float64).ravel(), g.astype(np.float64).ravel()
        worst = max(worst, float(np.max(np.abs(r64 - g64))) / max(float(np.max(np.abs(r64))), 1e-12))
        cos = min(cos, float(r64 @ g64 / max(np.linalg.norm(r64) * np.linalg.norm(g64), 1e-30)))
    return f"max|d|/max|ref| {worst:.3f}, min cosine {cos:.4f}"


def measure(project: str, root: Path, log: Any) -> dict[str, Any]:
    """One config's P9 numbers (see the module docstring)."""
    from benchmarks.replay import capture_feeds, load_context, ort_session

    config, graph, rounds, overrides = P9_GRAPHS[project]
    ctx = load_context(root / config, root, overrides)
    tp = ctx.thread_policy
    fp32 = ctx.onnx_artifacts("fp32")
    graph = graph or next(iter(fp32))
    log(f"P9 {project}: int8 artifact (calibration as the config says)")
    start = time.perf_counter()
    q = ctx.onnx_artifacts("int8")
    int8_seconds = time.perf_counter() - start
    summary = ctx.artifacts.quantized.summary or {}
    index = min(ctx.cfg.runtime_io.sample_idx, len(ctx.dataset) - 1)
    feeds = dict(capture_feeds(ctx, ctx.prepared(index)))[graph]
    with tempfile.TemporaryDirectory() as tmp:
        cpu = Path(tmp) / f"{graph}_u8s8.onnx"
        log(f"P9 {project}: u8s8 comparison graph")
        u8_seconds = u8s8(fp32[graph].path, cpu, feeds)
        paths = {"fp32": fp32[graph].path, "int8": q[graph].path, "u8s8": cpu}
        ops = {k: optimized_ops(p, tp.intra_op, tp.inter_op) for k, p in paths.items()}
        sessions = {k: ort_session(p, tp.intra_op, inter_op=tp.inter_op) for k, p in paths.items()}
        outs = {k: s.run(None, feeds) for k, s in sessions.items()}  # warm-up, and the outputs compared
        times: dict[str, list[float]] = {k: [] for k in sessions}
        load = [os.getloadavg()[0]]
        log(f"P9 {project}: {rounds} interleaved rounds")
        for _ in range(rounds):
            for k, s in sessions.items():
                t = time.perf_counter()
                s.run(None, feeds)
                times[k].append(time.perf_counter() - t)
        load.append(os.getloadavg()[0])
        del sessions
    med = {k: statistics.median(v) * 1e3 for k, v in times.items()}
    graph_entry = (summary.get("graphs") or {}).get(graph, {})
    return {"graph": graph, "rounds": rounds, "median_ms": med,
            "range_ms": {k: (min(v) * 1e3, max(v) * 1e3) for k, v in times.items()},
            "ops": {k: describe_ops(v) for k, v in ops.items()}, "load": load,
            "close": {k: closeness(outs["fp32"], outs[k]) for k in ("int8", "u8s8")},
            "int8_build_s": int8_seconds, "reused": summary.get("reused"),
            "calibration_s": graph_entry.get("calibration_seconds"), "samples": graph_entry.get("samples"),
            "quantized": graph_entry.get("quantized_count"), "u8s8_s": u8_seconds}


def p9(root: Path, log: Any, row: Any) -> list[Any]:
    rows = []
    for project, (config, _, _, _) in P9_GRAPHS.items():
        if not (root / config).is_file():
            rows.append(row("P9", f"onnx-int8/onnx {project} (full size)", None, f"<= {GOAL}", None, f"{config} is missing"))
            continue
        m = measure(project, root, log)
        med = m["median_ms"]
        ratio = med["int8"] / med["fp32"]

        def cell(k: str, m: dict[str, Any] = m) -> str:
            return f"{k} {m['median_ms'][k]:.1f} ms ({m['range_ms'][k][0]:.1f}-{m['range_ms'][k][1]:.1f})"

        rows.append(row("P9", f"onnx-int8/onnx {project} {m['graph']} (full size)", ratio, f"<= {GOAL}", ratio <= GOAL,
                        f"medians of {m['rounds']} interleaved rounds: {cell('fp32')}, {cell('int8')}; "
                        f"ORT optimized int8 graph: {m['ops']['int8']}; fp32: {m['ops']['fp32']}; int8 vs fp32 outputs "
                        f"{m['close']['int8']}; calibration {m['samples']} sample(s) {m['calibration_s']} s "
                        f"({m['quantized']} nodes quantized; artifact {'reused' if m['reused'] else 'built'} in "
                        f"{m['int8_build_s']:.1f} s); load {m['load'][0]:.2f} -> {m['load'][1]:.2f}; {config}"))
        u8 = med["u8s8"] / med["fp32"]
        rows.append(row("P9", f"u8s8/onnx {project} {m['graph']} (what ORT's CPU kernels fuse; not TensorRT's form)",
                        u8, f"<= {GOAL} (informational)", None,
                        f"{cell('u8s8')}; ORT optimized: {m['ops']['u8s8']}; vs fp32 outputs {m['close']['u8s8']}; "
                        f"quantized (MinMax, the same sample) in {m['u8s8_s']:.1f} s"))
    return rows
