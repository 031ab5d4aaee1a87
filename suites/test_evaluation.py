"""Task metrics per backend, and each metric's delta vs the reference backend held to
`evaluation.metric_tolerance` (a metric name, or "*" for every scalar metric).

Serial runs: one test per backend. Under pytest-xdist: one test per shard of samples,
every backend inside it; the controller merges the shards, computes the metrics once
and applies the same tolerance gate (see awml_harness.evaluation). With --awml-shard I/N:
one test per config on this job's slice; the run writes a shard file for `awml merge`
(awml_harness/split.py) and no metrics."""

from __future__ import annotations

import warnings

import pytest


def test_evaluation(awml, awml_eval_case, awml_record, awml_unavailable, guard_backend, pytestconfig):
    from awml_harness.cases import EvalShardCase, SplitCase
    from awml_harness.evaluation.gate import judge_metrics

    case = awml_eval_case
    ctx = awml.context(case.config_id)
    ev = ctx.cfg.evaluation
    if isinstance(case, SplitCase):
        from awml_harness.split import config_digest

        with guard_backend():
            backends = ctx.evaluate_shard(case.index, case.count)
            digest = config_digest(ctx, pytestconfig.rootpath)
        awml_record({"kind": "evaluation-split", "config": case.config_id, "index": case.index, "count": case.count,
                     "config_digest": digest, "num_samples": ctx.num_eval_samples(), "backends": backends,
                     "artifacts": ctx.all_artifacts()})
        errors = [f"{name}: {b['error']}" for name, b in backends.items() if "error" in b]
        if errors:
            pytest.fail(f"{case.id}: evaluation failed:\n" + "\n".join(errors), pytrace=False)
        return
    if isinstance(case, EvalShardCase):
        with guard_backend():
            backends = ctx.evaluate_shard(case.shard, case.of)
        awml_record({"kind": "evaluation-shard", "config": case.config_id, "shard": case.shard, "of": case.of,
                     "backends": backends, "artifacts": ctx.all_artifacts()})
        errors = [f"{name}: {b['error']}" for name, b in backends.items() if "error" in b]
        if errors:
            pytest.fail(f"{case.id}: evaluation failed:\n" + "\n".join(errors), pytrace=False)
        return
    with guard_backend():
        results = ctx.evaluate_all()
    mine = results[case.name]
    record = {"kind": "evaluation", "config": case.config_id, "backend": case.name,
              "device": case.spec.device, "precision": case.spec.precision, "artifacts": ctx.all_artifacts(),
              "headline": type(ctx.adapter.evaluator()).headline}
    declared = type(ctx.adapter.evaluator()).directions
    if "unavailable" in mine:
        awml_record({**record, "status": "unavailable", "reason": mine["unavailable"]})
        awml_unavailable(mine["unavailable"])
    if "error" in mine:
        pytest.fail(f"{case.id}: evaluation failed on {mine['error']}", pytrace=False)
    reference = results.get(ev.reference, {})
    if "metrics" not in reference:
        why = reference.get("unavailable") or reference.get("error") or "not configured"
        awml_record({**record, "status": "no-reference", "metrics": mine["metrics"], "num_samples": mine["num_samples"]})
        awml_unavailable(f"reference backend {ev.reference!r} has no metrics ({why}); cannot compute deltas")
    note = None
    if mine["num_samples"] and mine.get("empty", 0) == mine["num_samples"]:
        note = (f"{case.id}: no detections on any of the {mine['num_samples']} samples, so every metric is 0; "
                "check the score threshold and the backend's raw outputs (test_verification)")
        warnings.warn(note, stacklevel=1)
    verdict = judge_metrics(mine["metrics"], reference["metrics"], ev.tolerance_for(case.name), declared)
    awml_record({**record, "status": "ok", "metrics": mine["metrics"], "deltas": verdict.deltas, "note": note,
                 "gate": verdict.as_dict(), "directions": verdict.directions, "num_samples": mine["num_samples"], "seconds": mine["seconds"],
                 "memory": mine.get("memory"), "passed": verdict.passed})
    if not verdict.passed:
        pytest.fail(f"{case.id}: metrics differ from {ev.reference}:\n" + "\n".join(verdict.failures), pytrace=False)
