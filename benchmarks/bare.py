"""P1's denominator: a bare script doing what `pytest suites/ -k <project>` does, as a
whole process of its own (imports included), without pytest or the harness's
machinery (artifact store, cases, comparison reports, metrics JSON).

    python -m benchmarks.bare projects/CalibrationStatusClassification/configs/deploy_config.py

Same work, counted the way the suites generate it (benchmarks/replay.py `plan`):
- export: every graph with `torch.onnx.export` (the config's opset, constant folding,
  dynamic axes) into a fresh temporary folder, `onnx.checker`, and the fp16 copy when
  an onnx-fp16 backend is configured (the converter the harness uses);
- verification: per sample, each distinct reference once and each scenario's test
  backend once, outputs compared with `np.allclose` at the config's default tolerance;
- evaluation: every enabled backend on every sample, postprocessed into the project's
  evaluator, metrics computed;
- latency: warm-up + rounds model calls per backend, plus min(rounds, 10) runs with
  preprocessing and postprocessing;
- shapes: the min/opt/max and batch-vs-rows graph calls.
The project's own code (model, data, preprocess, forward glue between graphs,
postprocess, metric) is used as any script would; backends are bare
`module(*tensors)` under `torch.inference_mode` and bare `InferenceSession.run` with
the same thread policy as the harness (awml_harness/threads.py). Prints one JSON line:
seconds per phase and the peak RSS after each (VmHWM, MB) - where the memory goes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

T0 = time.perf_counter()

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def _hwm_mb() -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> int:
    config = Path(argv[0])
    overrides = argv[1:]
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from awml_harness.config.load import load_deploy_config
    from awml_harness.config.schema import Backend
    from awml_harness.project import NullTimer, load_project_class
    from awml_harness.threads import DEFAULT_THREADS

    phases: dict[str, dict[str, float]] = {"imports": {"seconds": time.perf_counter() - T0, "hwm_mb": _hwm_mb()}}
    mark = time.perf_counter()

    def phase(name: str) -> None:
        nonlocal mark
        now = time.perf_counter()
        phases[name] = {"seconds": now - mark, "hwm_mb": _hwm_mb()}
        mark = now

    torch.set_num_threads(DEFAULT_THREADS)
    cfg = load_deploy_config(config, base_dir=ROOT, overrides=list(overrides))
    adapter = load_project_class(cfg.project, [Path(cfg.source).parent])(cfg)
    model = adapter.build_model()
    graphs = {g.name: g for g in adapter.graphs(model)}
    dataset = adapter.dataset()
    phase("model+data")

    specs = {sc.ref for sc in cfg.scenarios()} | {sc.test for sc in cfg.scenarios()}
    if cfg.evaluation.enabled or cfg.evaluation.latency:
        specs |= set(cfg.evaluation.specs().values())
    precisions = sorted({s.precision for s in specs if s.backend is Backend.ONNX})
    tmp = Path(tempfile.mkdtemp(prefix="awml-bare-"))
    files: dict[str, dict[str, Path]] = {"fp32": {}}
    import onnx

    for name, g in graphs.items():
        path = tmp / f"{name}.onnx"
        args = tuple(torch.from_numpy(g.example_inputs[n].copy()) for n in g.input_names)
        g.module.eval()
        with torch.no_grad():
            torch.onnx.export(g.module, args, str(path), input_names=list(g.input_names),
                              output_names=list(g.output_names), dynamo=False,
                              dynamic_axes={k: dict(v) for k, v in g.dynamic_axes.items()} or None,
                              opset_version=cfg.onnx_config.opset_version,
                              do_constant_folding=cfg.onnx_config.do_constant_folding)
        onnx.checker.check_model(str(path))
        files["fp32"][name] = path
    if "fp16" in precisions:
        from awml_harness.export.fp16 import convert_to_fp16

        files["fp16"] = {}
        for name, path in files["fp32"].items():
            folder = tmp / f"{name}-fp16"
            folder.mkdir()
            files["fp16"][name] = folder / convert_to_fp16(path, folder)
    phase("export")

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.intra_op_num_threads = DEFAULT_THREADS
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sessions = {p: {n: ort.InferenceSession(str(f), sess_options=opts, providers=["CPUExecutionProvider"])
                    for n, f in files[p].items()} for p in precisions}
    half = {p: {n: {i.name for i in s.get_inputs() if i.type == "tensor(float16)"} for n, s in ss.items()}
            for p, ss in sessions.items()}

    def caller(spec):  # run_graph for one backend
        if spec.backend is Backend.PYTORCH:
            def run(name, feeds):
                g = graphs[name]
                with torch.inference_mode():
                    out = g.module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in g.input_names])
                out = out if isinstance(out, (tuple, list)) else (out,)
                return {n: o.numpy() for n, o in zip(g.output_names, out, strict=False)}
            return run
        ss, h = sessions[spec.precision], half[spec.precision]

        def run(name, feeds):
            g = graphs[name]
            inputs = {n: (feeds[n].astype(np.float16) if n in h[name] else feeds[n]) for n in g.input_names}
            return dict(zip(g.output_names, ss[name].run(None, inputs), strict=False))
        return run

    run_of = {s: caller(s) for s in specs}
    phase("sessions")

    prepared: dict[int, object] = {}

    def prep(i: int):
        if i not in prepared:
            prepared[i] = adapter.preprocess(dataset[i])
        return prepared[i]

    tol = cfg.verification.default
    mismatched = 0
    n_verify = min(cfg.verification.num_verify_samples, len(dataset))
    for i in range(n_verify):
        refs = {sc.ref: adapter.forward(prep(i), run_of[sc.ref], NullTimer()) for sc in cfg.scenarios()}
        for sc in cfg.scenarios():
            out = adapter.forward(prep(i), run_of[sc.test], NullTimer())
            for k, v in out.items():
                r = refs[sc.ref][k]
                if not np.allclose(np.asarray(v, np.float64), np.asarray(r, np.float64), atol=tol.atol, rtol=tol.rtol):
                    mismatched += 1
    phase("verification")

    metrics = {}
    ev = cfg.evaluation
    if ev.enabled:
        evaluators = {name: adapter.evaluator() for name in ev.specs()}
        n = len(dataset) if ev.num_samples == -1 else min(ev.num_samples, len(dataset))
        for i in range(n):
            sample = dataset[i]
            p = adapter.preprocess(sample)
            target = adapter.target(sample)
            for name, spec in ev.specs().items():
                outputs = adapter.forward(p, run_of[spec], NullTimer())
                evaluators[name].add(p.sample_id, adapter.postprocess(outputs, p), target)
        metrics = {name: e.compute() for name, e in evaluators.items()}
    phase("evaluation")

    if ev.latency:
        index = min(cfg.runtime_io.sample_idx, len(dataset) - 1)
        for spec in ev.specs().values():
            p = prep(index)
            for _ in range(ev.latency_warmup + ev.latency_rounds):
                adapter.forward(p, run_of[spec], NullTimer())
            for _ in range(min(ev.latency_rounds, 10)):
                q = adapter.preprocess(dataset[index])
                adapter.postprocess(adapter.forward(q, run_of[spec], NullTimer()), q)
    phase("latency")

    scenarios = cfg.scenarios()
    if scenarios and adapter.has_dynamic_shapes():
        from awml_harness.shapes import batch_axis_inputs, feeds_at, profile_shapes, resize_like

        sc = scenarios[0]
        for name, g in graphs.items():
            ranges = profile_shapes(g, cfg)
            for which in ("min", "opt", "max") if ranges else ():
                feeds = feeds_at(g, ranges, which)
                run_of[sc.ref](name, feeds)
                run_of[sc.test](name, feeds)
            axis_inputs = batch_axis_inputs(g)
            if axis_inputs and len(axis_inputs) == len(g.input_names):
                k = min(max([ranges[i].opt[0] for i in axis_inputs if i in ranges] + [2]), 4)
                feeds = {i: resize_like(g.example_inputs[i], (k, *g.example_inputs[i].shape[1:])) for i in g.input_names}
                run_of[sc.test](name, feeds)
                for _ in range(k):
                    run_of[sc.test](name, {i: v[:1] for i, v in feeds.items()})
    phase("shapes")

    import shutil

    shutil.rmtree(tmp, ignore_errors=True)
    headline = {n: {k: v for k, v in m.items() if isinstance(v, float)} for n, m in metrics.items()}
    print(json.dumps({"phases": phases, "peak_rss_mb": _hwm_mb(), "mismatched_outputs": mismatched,
                      "metrics": {n: dict(list(v.items())[:3]) for n, v in headline.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
