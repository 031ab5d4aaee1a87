"""Model latency per backend through pytest-benchmark (so --benchmark-autosave,
--benchmark-compare and --benchmark-compare-fail work unchanged), plus percentiles,
their spread (warned about when high, gated by latency_stability), a per-stage
breakdown, the thread policy in effect and the configured latency budgets."""

from __future__ import annotations

import pytest


def test_latency(awml, awml_latency_case, awml_record, guard_backend, benchmark, pytestconfig):
    import warnings

    from awml_harness.latency import (
        BaselineError,
        LatencySpreadWarning,
        find_baseline,
        judge_latency,
        spread_warning,
        stage_medians,
        summarize,
    )
    from awml_harness.project import NullTimer
    from awml_harness.threads import thread_record

    case = awml_latency_case
    if benchmark.disabled:
        pytest.skip("latency is not measured here: pytest-benchmark is disabled "
                    "(--benchmark-disable, or pytest-xdist where workers compete for cores; run latency without -n)")
    ctx = awml.context(case.config_id)
    ev = ctx.cfg.evaluation
    with guard_backend():
        index = min(ctx.cfg.runtime_io.sample_idx, len(ctx.dataset) - 1)
        runners = ctx.runners(case.spec)
        prepared = ctx.prepared(index)
    timer = NullTimer()

    def run_graph(name, feeds):
        return runners[name].infer(feeds)

    def model_call():
        return ctx.adapter.forward(prepared, run_graph, timer)

    benchmark.group = f"{case.config_id}-model"
    benchmark.pedantic(model_call, rounds=ev.latency_rounds, warmup_rounds=ev.latency_warmup, iterations=1)
    stats = summarize(benchmark.stats.stats.data)
    sample = ctx.dataset[index]
    stage_runs = [ctx.timed_run(case.spec, sample).stages for _ in range(min(ev.latency_rounds, 10))]
    stages = stage_medians(stage_runs)
    benchmark.extra_info.update({f"{k}": v for k, v in stats.items() if k.startswith("p") or k == "outlier_share"})
    threads = thread_record(ctx.thread_policy.as_dict())
    benchmark.extra_info["threads"] = threads
    benchmark.extra_info["stages_median_ms"] = stages
    benchmark.extra_info["device"] = case.spec.device
    benchmark.extra_info["precision"] = case.spec.precision
    device_ms = None
    if case.spec.device.startswith("cuda"):
        from awml_harness.latency import cuda_event_times

        device_ms = cuda_event_times(model_call, rounds=ev.latency_rounds)
        if device_ms is not None:
            benchmark.extra_info["device_time_ms"] = device_ms
    backend = ev.backends[case.name]
    warning = spread_warning(stats)
    if warning:
        warnings.warn(LatencySpreadWarning(f"{case.id}: {warning}"), stacklevel=1)
    baseline = None
    where = pytestconfig.option.awml_latency_baseline
    if backend.latency_regression and where:
        storage = str(pytestconfig.getoption("benchmark_storage", ".benchmarks")).removeprefix("file://")
        try:
            _, baseline = find_baseline(where, pytestconfig.rootpath / storage, f"test_latency[{case.id}]")
        except BaselineError as exc:
            pytest.fail(str(exc), pytrace=False)
    violations = judge_latency(stats, case.name, backend, baseline)
    awml_record({"kind": "latency", "config": case.config_id, "backend": case.name,
                 "device": case.spec.device, "precision": case.spec.precision, "unit": "ms",
                 **stats, "samples_ms": [t * 1e3 for t in benchmark.stats.stats.data], "stages_median_ms": stages, "device_time_ms": device_ms,
                 "threads": threads, "stability_limits": dict(backend.latency_stability),
                 "spread_warning": warning, "budget": dict(backend.latency_budget),
                 "regression_limits": dict(backend.latency_regression), "baseline_ms": baseline,
                 "budget_violations": violations, "artifacts": ctx.all_artifacts()})
    if violations:
        pytest.fail(f"{case.id}: latency over budget, unstable or regressed:\n" + "\n".join(violations), pytrace=False)
