"""The profiled run of one backend spec of a config: what suites/test_profile.py records.

Order, and why: first the latency runners (the sessions test_latency times, untouched)
run the pipeline `warmup + rounds` times on the latency sample to give each graph's
unprofiled median, the yardstick of the profile's coverage; then the backend's profiler
(its own sessions, contexts or replays) runs the same pipeline, warm-up forwards first
and dropped (their first run includes kernel selection), and its per-kernel times are
attributed to the fp32 ONNX graph's nodes. Profiling files go to a temporary folder
that is removed afterwards; the record carries the table and the trace events.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awml_harness.profile.nodes import NodeGraph
from awml_harness.profile.rows import graph_entry


@dataclass(frozen=True)
class ProfileSettings:
    rounds: int = 20
    warmup: int = 3


def unprofiled_ms(ctx: Any, spec: Any, prepared: Any, settings: ProfileSettings) -> dict[str, float]:
    """Median ms per graph and forward through the latency runners (a graph called twice
    in one forward counts both calls)."""
    from awml_harness.project import NullTimer

    runners = ctx.runners(spec)
    per_graph: dict[str, list[float]] = {}
    for i in range(settings.warmup + settings.rounds):
        spent: dict[str, float] = {}

        def run_graph(name: str, feeds: Mapping[str, Any], spent: dict[str, float] = spent) -> Mapping[str, Any]:
            out = runners[name].infer(feeds)
            spent[name] = spent.get(name, 0.0) + runners[name].last_inference_time * 1e3
            return out

        ctx.adapter.forward(prepared, run_graph, NullTimer())
        if i >= settings.warmup:
            for g, ms in spent.items():
                per_graph.setdefault(g, []).append(ms)
    return {g: float(statistics.median(v)) for g, v in per_graph.items()}


def _profiler(ctx: Any, spec: Any, settings: ProfileSettings, folder: Path, reference: Mapping[str, NodeGraph]) -> Any:
    kind = spec.backend.value
    if kind == "onnx":
        from awml_harness.profile.onnxruntime import OrtProfiler

        tp = ctx.thread_policy
        models = {g: a.path for g, a in ctx.onnx_artifacts(spec.precision).items()}
        return OrtProfiler(models, spec.device, folder, tp.intra_op, tp.inter_op, ctx.options.ort_spinning)
    if kind == "pytorch":
        from awml_harness.profile.torch import TorchProfiler

        return TorchProfiler(ctx.runners(spec), reference, settings.rounds, settings.warmup)
    if kind == "tensorrt":
        from awml_harness.backends.tensorrt import require_tensorrt
        from awml_harness.export.trt_settings import plan_builds, trt_major
        from awml_harness.profile.tensorrt import TrtProfiler

        trt = require_tensorrt(spec.device)
        plans = plan_builds(ctx.cfg.backend_config.common_config.precision_policy, trt_major(str(trt.__version__)),
                            ctx.cfg.backend_config, list(ctx.graphs.values()), precision=spec.precision)
        sources = {g: ctx.onnx_artifacts(p.onnx_precision)[g].path for g, p in plans.items()}
        engines = {g: a.path for g, a in ctx.engine_artifacts(spec).items()}
        return TrtProfiler(engines, sources, spec.device)
    raise ValueError(f"no profiler for backend {kind!r}")  # pragma: no cover


def profile_backend(ctx: Any, spec: Any, settings: ProfileSettings) -> dict[str, Any]:
    """The record body of one backend's profile (see the module docstring)."""
    from awml_harness.project import NullTimer

    reference = {g: NodeGraph.load(a.path) for g, a in ctx.onnx_artifacts("fp32").items()}
    index = min(ctx.cfg.runtime_io.sample_idx, len(ctx.dataset) - 1)
    prepared = ctx.prepared(index)
    baseline = unprofiled_ms(ctx, spec, prepared, settings)
    with tempfile.TemporaryDirectory(prefix="awml-profile-") as tmp:
        profiler = _profiler(ctx, spec, settings, Path(tmp), reference)
        with profiler:
            forwards = profiler.forwards or settings.warmup + settings.rounds
            for _ in range(forwards):
                profiler.begin_forward()
                ctx.adapter.forward(prepared, profiler.run_graph, NullTimer())
            times = profiler.finish(0 if profiler.forwards else settings.warmup)
    graphs = {g: graph_entry(t, reference[g], baseline.get(g)) for g, t in times.items()}
    return {"device": spec.device, "precision": spec.precision, "method": profiler.method,
            "rounds": settings.rounds, "warmup": settings.warmup, "sample_index": index, "graphs": graphs,
            "notes": list(profiler.notes),
            "trace_events": [[g, *e] for g, t in times.items() for e in t.events]}
