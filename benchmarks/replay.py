"""P1's denominator: every model inference `pytest suites/` performs for one deploy
config, replayed in a bare loop (bare torch module calls, bare ONNX Runtime
`session.run`) on the same prepared inputs.

What the suites run, counted from the config the same way the suites generate cases
(awml_harness/fixtures.py) and run them:

- verification: per sample, each distinct reference backend once (the reference is
  shared between scenarios) and each scenario's test backend once;
- evaluation: every enabled backend on every evaluation sample;
- latency (when `evaluation.latency`): per backend, warm-up + rounds of the model call,
  plus min(rounds, 10) stage-breakdown runs;
- shape sweep (dynamic graphs): min/opt/max on reference and test backend of the first
  scenario, and the batch-vs-rows check (1 batched + N single calls) on the test backend.

A "model call" of a multi-graph project is every graph in order (CenterPoint: voxel
encoder, then backbone/neck/head); each graph's feeds are captured once per sample
from the PyTorch pipeline, so the in-between work (voxelization, scatter) is the
harness's cost, not the model's. Preprocessing and postprocessing are not counted.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def load_context(config_path: str | Path, root: Path, overrides: tuple[str, ...] = ()) -> Any:
    from awml_harness.config.load import load_deploy_config
    from awml_harness.session import ProjectContext, RunOptions

    cfg = load_deploy_config(config_path, base_dir=root, overrides=list(overrides))
    return ProjectContext(cfg, RunOptions())


def ort_session(path: Path, threads: int = 0, spinning: bool = False) -> Any:
    """The session options the harness uses (backends/onnxruntime.py), nothing else."""
    import onnxruntime as ort

    from awml_harness.backends.onnxruntime import session_options

    return ort.InferenceSession(str(path), sess_options=session_options(threads, spinning),
                                providers=["CPUExecutionProvider"])


class BareBackend:
    """One backend's graphs as bare callables on pre-converted feeds."""

    def __init__(self, ctx: Any, spec: Any) -> None:
        from awml_harness.config.schema import Backend

        self.kind = spec.backend
        self.graphs = ctx.graphs
        if spec.backend is Backend.PYTORCH:
            import torch

            self._torch = torch
        elif spec.backend is Backend.ONNX:
            arts = ctx.onnx_artifacts(spec.precision)
            self.sessions = {n: ort_session(a.path, ctx.options.threads) for n, a in arts.items()}
            self.types = {n: {i.name: i.type for i in s.get_inputs()} for n, s in self.sessions.items()}
        else:  # pragma: no cover - CPU benchmark
            raise RuntimeError(f"bare replay of {spec.label} is not implemented")

    def convert(self, graph: str, feeds: Mapping[str, np.ndarray]) -> Any:
        g = self.graphs[graph]
        if self.kind.value == "pytorch":
            return [self._torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in g.input_names]
        types = self.types[graph]
        return {n: (feeds[n].astype(np.float16) if types[n] == "tensor(float16)" else feeds[n]) for n in g.input_names}

    def call(self, graph: str, converted: Any) -> None:
        if self.kind.value == "pytorch":
            with self._torch.inference_mode():
                self.graphs[graph].module(*converted)
        else:
            self.sessions[graph].run(None, converted)


def capture_feeds(ctx: Any, prepared: Any) -> list[tuple[str, dict[str, np.ndarray]]]:
    """[(graph, feeds)] of one model call, from the PyTorch pipeline."""
    from awml_harness.config.schema import Backend, BackendSpec
    from awml_harness.project import NullTimer

    runners = ctx.runners(BackendSpec(Backend.PYTORCH, "cpu"))
    calls: list[tuple[str, dict[str, np.ndarray]]] = []

    def run_graph(name: str, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        calls.append((name, {k: np.asarray(v) for k, v in feeds.items()}))
        return runners[name].infer(feeds)

    ctx.adapter.forward(prepared, run_graph, NullTimer())
    return calls


def plan(ctx: Any) -> tuple[Counter, list[tuple[Any, str, dict[str, np.ndarray], int]]]:
    """(model calls per (backend, sample), single-graph calls [(spec, graph, feeds, count)])."""
    from awml_harness.shapes import batch_axis_inputs, feeds_at, profile_shapes, resize_like

    cfg = ctx.cfg
    model_calls: Counter = Counter()
    for i in ctx.verification_indices():
        for ref in {sc.ref for sc in cfg.scenarios()}:
            model_calls[(ref, i)] += 1
        for sc in cfg.scenarios():
            model_calls[(sc.test, i)] += 1
    ev = cfg.evaluation
    if ev.enabled:
        for spec in ev.specs().values():
            for i in range(ctx.num_eval_samples()):
                model_calls[(spec, i)] += 1
    if ev.latency:
        index = min(cfg.runtime_io.sample_idx, len(ctx.dataset) - 1)
        for spec in ev.specs().values():
            model_calls[(spec, index)] += ev.latency_warmup + ev.latency_rounds + min(ev.latency_rounds, 10)
    graph_calls = []
    scenarios = cfg.scenarios()
    if scenarios and ctx.adapter.has_dynamic_shapes():
        sc = scenarios[0]
        for name, graph in ctx.graphs.items():
            ranges = profile_shapes(graph, cfg)
            if ranges:
                for which in ("min", "opt", "max"):
                    feeds = feeds_at(graph, ranges, which)
                    graph_calls += [(sc.ref, name, feeds, 1), (sc.test, name, feeds, 1)]
            axis_inputs = batch_axis_inputs(graph)
            if axis_inputs and len(axis_inputs) == len(graph.input_names):
                n = min(max([ranges[i].opt[0] for i in axis_inputs if i in ranges] + [2]), 4)
                feeds = {i: resize_like(graph.example_inputs[i], (n, *graph.example_inputs[i].shape[1:]))
                         for i in graph.input_names}
                graph_calls.append((sc.test, name, feeds, 1))
                graph_calls.append((sc.test, name, {i: v[:1] for i, v in feeds.items()}, n))
    return model_calls, graph_calls


def replay(ctx: Any) -> dict[str, Any]:
    """Seconds of the bare inference loop, and how many graph calls it made per backend."""
    model_calls, graph_calls = plan(ctx)
    specs = {spec for spec, _ in model_calls} | {spec for spec, *_ in graph_calls}
    backends = {spec: BareBackend(ctx, spec) for spec in specs}
    feeds_of = {i: capture_feeds(ctx, ctx.prepared(i)) for i in sorted({i for _, i in model_calls})}
    jobs = []  # (backend, graph, converted feeds, count)
    for (spec, i), count in model_calls.items():
        for graph, feeds in feeds_of[i]:
            jobs.append((spec, graph, backends[spec].convert(graph, feeds), count))
    for spec, graph, feeds, count in graph_calls:
        jobs.append((spec, graph, backends[spec].convert(graph, feeds), count))
    warmed = set()
    for spec, graph, conv, _ in jobs:  # one untimed call per backend and graph (lazy init)
        if (spec, graph) not in warmed:
            backends[spec].call(graph, conv)
            warmed.add((spec, graph))
    calls: Counter = Counter()
    start = time.perf_counter()
    for spec, graph, conv, count in jobs:
        b = backends[spec]
        for _ in range(count):
            b.call(graph, conv)
        calls[spec.label] += count
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "calls": dict(calls)}
