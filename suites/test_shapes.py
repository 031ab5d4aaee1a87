"""Shape sweep: dynamic graphs at their profile's min/opt/max shapes (reference vs test
backend), and batch-row consistency (one batch of N rows == N runs of one row)."""

from __future__ import annotations

import pytest


def test_shape_sweep(awml, awml_shape_case, awml_record, guard_backend):
    from awml_harness.shapes import batch_axis_inputs, feeds_at, profile_shapes, resize_like
    from awml_harness.verification.judge import judge

    case = awml_shape_case
    ctx = awml.context(case.config_id)
    sc = case.scenario
    ver = ctx.cfg.verification
    checked, messages = [], []
    with guard_backend():
        for name, graph in ctx.graphs.items():
            ranges = profile_shapes(graph, ctx.cfg)
            if case.which == "batch":
                axis_inputs = batch_axis_inputs(graph)
                if not axis_inputs or len(axis_inputs) != len(graph.input_names):
                    continue
                n = max([ranges[i].opt[0] for i in axis_inputs if i in ranges] + [2])
                n = min(n, 4)
                feeds = {i: resize_like(graph.example_inputs[i], (n, *graph.example_inputs[i].shape[1:]))
                         for i in graph.input_names}
                runner = ctx.runners(sc.test)[name]
                batched = runner.infer(feeds)
                rows = [runner.infer({i: v[r:r + 1] for i, v in feeds.items()}) for r in range(n)]
                ref = {o: [batched[o][r:r + 1] for r in range(n)] for o in batched}
                test = {o: [row[o] for row in rows] for o in batched}
                label = f"{name}[batch {n} vs {n} x batch 1 on {sc.test.label}]"
            else:
                if not ranges:
                    continue
                feeds = feeds_at(graph, ranges, case.which)
                ref = ctx.runners(sc.ref)[name].infer(feeds)
                test = ctx.runners(sc.test)[name].infer(feeds)
                shapes = {k: list(v.shape) for k, v in feeds.items() if k in ranges}
                label = f"{name}{shapes}"
            verdict = judge(ver, sc, ref, test)
            checked.append({"graph": name, "label": label, "passed": verdict.passed, "leaves": verdict.leaves()})
            messages += verdict.messages(f"{case.id}: {label}", hint=False)
    if not checked:
        pytest.skip(f"{case.config_id}: no graph with dynamic inputs and configured profile shapes for '{case.which}'")
    awml_record({"kind": "shapes", "config": case.config_id, "which": case.which, "scenario": sc.label,
                 "checked": checked})
    if messages:
        pytest.fail("\n".join(messages), pytrace=False)
