"""Task metrics per backend, and each metric's delta vs the reference backend held to
`evaluation.metric_tolerance` (a metric name, or "*" for every scalar metric)."""

from __future__ import annotations

import pytest


def test_evaluation(awml, awml_eval_case, awml_record, awml_unavailable):
    from awml_harness.session import metric_deltas

    case = awml_eval_case
    ctx = awml.context(case.config_id)
    ev = ctx.cfg.evaluation
    results = ctx.evaluate_all()
    mine = results[case.name]
    record = {"kind": "evaluation", "config": case.config_id, "backend": case.name,
              "device": case.spec.device, "precision": case.spec.precision, "artifacts": ctx.all_artifacts(),
              "headline": type(ctx.adapter.evaluator()).headline}
    if "unavailable" in mine:
        awml_record({**record, "status": "unavailable", "reason": mine["unavailable"]})
        awml_unavailable(mine["unavailable"])
    assert "error" not in mine, f"{case.id}: evaluation failed on {mine['error']}"
    reference = results.get(ev.reference, {})
    if "metrics" not in reference:
        why = reference.get("unavailable") or reference.get("error") or "not configured"
        awml_record({**record, "status": "no-reference", "metrics": mine["metrics"], "num_samples": mine["num_samples"]})
        awml_unavailable(f"reference backend {ev.reference!r} has no metrics ({why}); cannot compute deltas")
    deltas = metric_deltas(mine["metrics"], reference["metrics"])
    failures = []
    for metric, delta in sorted(deltas.items()):
        tol = ev.metric_tolerance.get(metric, ev.metric_tolerance.get("*"))
        if tol is not None and abs(delta) > tol + 1e-12:
            failures.append(f"  - {metric}: {mine['metrics'][metric]:.6g} vs reference {reference['metrics'][metric]:.6g} "
                            f"(delta {delta:+.6g}, allowed {tol:g}; key evaluation.metric_tolerance.{metric})")
    awml_record({**record, "status": "ok", "metrics": mine["metrics"], "deltas": deltas,
                 "num_samples": mine["num_samples"], "seconds": mine["seconds"], "passed": not failures})
    if failures:
        pytest.fail(f"{case.id}: metrics differ from {ev.reference}:\n" + "\n".join(failures), pytrace=False)
