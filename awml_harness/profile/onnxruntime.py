"""ONNX Runtime per-node profiles from its own profiler's file.

A profiled session is a session of its own (`SessionOptions.enable_profiling`, and the
optimized graph saved next to the profile through `optimized_model_filepath`), never the
latency tests' session: the profiler records every run from session creation on and
costs about 10 us per kernel. The profile file is a Chrome-trace JSON array: one
`model_run` event per run and one `<node>_kernel_time` event per kernel with its
`op_name`, provider and input/output types (older versions also wrote `_fence_before` /
`_fence_after` events and `graph_index` args; only the `_kernel_time` suffix is read).
The first runs include kernel selection and are dropped (the warm-up forwards).

The profiler's own cost inside each kernel event: measured here (onnxruntime 1.32, one
thread), a 0.4 us Relu shows as 2-3 us, a constant of about 2.5 us per kernel; on the
small YOLOX's 115 kernels that is 13-30 % of the graph. So each process measures it
once (`kernel_overhead_us`: a chain of CALIBRATION_KERNELS one-element Relus, profiled
kernel sum minus unprofiled wall, per kernel) and subtracts it from every kernel event
(floored at 0); the record keeps the figure (`kernel_overhead_us`).

The profiled session keeps ONNX Runtime's CPU memory arena on, whatever the latency
session does (backends/onnxruntime.py turns it off for large or dynamic inputs):
profiling runs without memory patterns, and without an arena every kernel then pays for
allocating its output inside its event (measured: the small YOLOX's first Conv 0.69 ms
instead of 0.11 ms, the fp16 graph's total 3.7 ms instead of 2.9 ms). A large model's
profile therefore needs more memory than its latency test.
"""

from __future__ import annotations

import functools
import json
import statistics
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from awml_harness.profile.nodes import CONVERSIONS, NodeGraph, attribute, is_integer_kernel, precision_of
from awml_harness.profile.rows import GraphTimes

KERNEL_SUFFIX = "_kernel_time"
METHOD = "onnxruntime-profiler"
CALIBRATION_KERNELS = 200


@functools.cache
def kernel_overhead_us(threads: int = 1, inter_op: int = 1, spinning: bool = False) -> float:
    """Microseconds ORT's profiler adds to each kernel event on the CPU provider (see the
    module docstring): median over 3 calibrations."""
    import numpy as np
    import onnxruntime as ort
    from onnx import TensorProto, helper

    from awml_harness.backends.onnxruntime import session_options

    n = CALIBRATION_KERNELS
    nodes = [helper.make_node("Relu", [f"t{i}"], [f"t{i + 1}"], name=f"relu{i}") for i in range(n)]
    graph = helper.make_graph(nodes, "calibration", [helper.make_tensor_value_info("t0", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info(f"t{n}", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()
    x = {"t0": np.ones(1, np.float32)}
    found = []
    for _ in range(3):
        plain = session_options(threads, spinning, inter_op)
        plain.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        sess = ort.InferenceSession(model, sess_options=plain, providers=["CPUExecutionProvider"])
        walls = []
        for _ in range(30):
            start = time.perf_counter()
            sess.run(None, x)
            walls.append((time.perf_counter() - start) * 1e6)
        with tempfile.TemporaryDirectory(prefix="awml-calibrate-") as tmp:
            opts = session_options(threads, spinning, inter_op)
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
            opts.enable_profiling = True
            opts.profile_file_prefix = f"{tmp}/calibration"
            prof = ort.InferenceSession(model, sess_options=opts, providers=["CPUExecutionProvider"])
            for _ in range(30):
                prof.run(None, x)
            runs = kernel_runs(read_events(Path(prof.end_profiling())))
        sums = [sum(e["dur"] for e in run) for run in runs[10:]]
        found.append((statistics.median(sums) - statistics.median(walls[10:])) / n)
    return max(0.0, float(statistics.median(found)))


def read_events(path: Path) -> list[dict[str, Any]]:
    """The events of a profile file: ORT's bare array, or a `{"traceEvents": [...]}` object."""
    data = json.loads(Path(path).read_text())
    return list(data["traceEvents"] if isinstance(data, dict) else data)


def kernel_runs(events: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """The kernel events of each `model_run`, runs in time order."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    kernels = sorted((e for e in events if e.get("cat") == "Node" and str(e.get("name", "")).endswith(KERNEL_SUFFIX)),
                     key=lambda e: e["ts"])
    out: list[list[dict[str, Any]]] = [[] for _ in runs]
    i = 0
    for k in kernels:
        while i < len(runs) and k["ts"] > runs[i]["ts"] + runs[i]["dur"]:
            i += 1
        if i < len(runs) and k["ts"] >= runs[i]["ts"]:
            out[i].append(k)
    return out


def _input_dtype(event: dict[str, Any]) -> str | None:
    shapes = (event.get("args") or {}).get("input_type_shape") or []
    for entry in shapes:
        if isinstance(entry, dict) and entry:
            return str(next(iter(entry)))
    return None


def graph_times(graph: str, variant: NodeGraph, runs: list[list[dict[str, Any]]], optimized: NodeGraph | None,
                overhead_us: float = 0.0) -> GraphTimes:
    """The profiled rounds of one graph (each round: the kernel events of that round's
    runs) attributed to the nodes of `variant`, the file the session loaded; each event
    less the profiler's `overhead_us`."""
    ops: dict[str, str] = {}
    dtypes: dict[str, str | None] = {}
    for run in runs:
        for e in run:
            name = e["name"][: -len(KERNEL_SUFFIX)]
            ops.setdefault(name, str((e.get("args") or {}).get("op_name", "")))
            dtypes.setdefault(name, _input_dtype(e))
    visible = None
    if optimized is not None:
        visible = {t for n in optimized.nodes for t in (*n.inputs, *n.outputs)} | set(optimized.inputs)
    att = attribute(variant, ops, visible, optimized)
    rounds, totals, unmapped, events = [], [], [], []
    spent: dict[str, dict[str, float]] = {}  # node -> kernel -> ms over all rounds
    for r, run in enumerate(runs):
        per: dict[str, float] = {}
        lost: dict[str, float] = {}
        start = run[0]["ts"] if run else 0
        for e in run:
            name = e["name"][: -len(KERNEL_SUFFIX)]
            ms = max(0.0, float(e["dur"]) - overhead_us) / 1e3
            node = att.target.get(name)
            if node is None:
                lost[name] = lost.get(name, 0.0) + ms
            else:
                per[node] = per.get(node, 0.0) + ms
                spent.setdefault(node, {})[name] = spent.get(node, {}).get(name, 0.0) + ms
            events.append((r, name, ops[name], node, float(e["ts"] - start), ms * 1e3,
                           _precision(ops[name], dtypes[name])))
        rounds.append(per)
        unmapped.append(lost)
        totals.append(sum(per.values()) + sum(lost.values()))
    info = {node: _node_info(by_kernel, ops, dtypes) for node, by_kernel in spent.items()}
    per_round = len(runs[-1]) if runs else 0
    return GraphTimes(graph, variant, tuple(rounds), tuple(totals), tuple(unmapped), att.merged, info, tuple(events),
                      per_round)


def _precision(op: str, dtype: str | None) -> str | None:
    return "int8" if is_integer_kernel(op, dtype) else precision_of(dtype)


def _node_info(by_kernel: Mapping[str, float], ops: Mapping[str, str], dtypes: Mapping[str, str | None]) -> dict[str, Any]:
    """A node's kernels (op names, most time first) and the precision its main kernel (the
    costliest that is not a cast or layout reorder) computed in."""
    ranked = sorted(by_kernel, key=lambda k: -by_kernel[k])
    main = next((k for k in ranked if ops[k] not in CONVERSIONS), ranked[0])
    return {"kernels": list(dict.fromkeys(ops[k] for k in ranked)), "precision": _precision(ops[main], dtypes[main]),
            "integer": is_integer_kernel(ops[main], dtypes[main])}


class OrtProfiler:
    """One profiled session per graph of a backend spec; `run_graph` is handed to the
    project's pipeline, `finish` ends profiling and reads the files."""

    method = METHOD
    forwards = None  # as many forwards as the run asks for (warm-up + rounds)

    def __init__(self, models: Mapping[str, Path], device: str, folder: Path, threads: int = 0, inter_op: int = 0,
                 spinning: bool = False) -> None:
        from awml_harness.backends.onnxruntime import OnnxRuntimeRunner

        self.models, self.device, self.folder = dict(models), device, Path(folder)
        self._opts = (threads, spinning, inter_op)
        self.runners = {g: OnnxRuntimeRunner(self._loader(g), device, name=f"onnx-profile-{g}") for g in self.models}
        self.calls: dict[str, list[int]] = {g: [] for g in self.models}  # session runs per forward
        self.notes: list[str] = []
        self.overhead_us = 0.0
        if device == "cpu":
            self.overhead_us = kernel_overhead_us(max(1, threads), max(1, inter_op), spinning)
            self.notes.append(f"ONNX Runtime's profiler adds {self.overhead_us:.2f} us to each kernel event here "
                              "(measured on a chain of one-element Relus); subtracted from every kernel")
        else:
            self.notes.append("CUDA execution provider: ONNX Runtime's kernel events time the host side unless it "
                              "was built with CUDA profiling; read the shares with care")

    def _loader(self, graph: str) -> Any:
        def make() -> Any:
            import onnxruntime as ort

            from awml_harness.backends.onnxruntime import providers_for, session_options

            threads, spinning, inter_op = self._opts
            opts = session_options(threads, spinning, inter_op, mem_arena=True)  # see the module docstring
            opts.enable_profiling = True
            opts.profile_file_prefix = str(self.folder / f"{graph}-ort")
            opts.optimized_model_filepath = str(self.folder / f"{graph}-optimized.onnx")
            return ort.InferenceSession(str(self.models[graph]), sess_options=opts, providers=providers_for(self.device))

        return make

    def __enter__(self) -> OrtProfiler:
        for r in self.runners.values():
            r.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        for r in self.runners.values():
            r.deactivate()

    def begin_forward(self) -> None:
        for calls in self.calls.values():
            calls.append(0)

    def run_graph(self, name: str, feeds: Mapping[str, Any]) -> Mapping[str, Any]:
        self.calls[name][-1] += 1
        return self.runners[name].infer(feeds)

    def finish(self, skip: int) -> dict[str, GraphTimes]:
        """End profiling; per graph, the forwards after the first `skip` as rounds."""
        out = {}
        for g, runner in self.runners.items():
            assert runner.session is not None  # active inside `with`
            path = Path(runner.session.end_profiling())
            runs = kernel_runs(read_events(path if path.is_absolute() else Path.cwd() / path))
            rounds, at = [], 0
            for i, n in enumerate(self.calls[g]):
                if i >= skip:
                    rounds.append([e for run in runs[at:at + n] for e in run])
                at += n
            opt_path = self.folder / f"{g}-optimized.onnx"
            optimized = NodeGraph.load(opt_path) if opt_path.is_file() else None
            out[g] = graph_times(g, NodeGraph.load(self.models[g]), rounds, optimized, self.overhead_us)
        return out
