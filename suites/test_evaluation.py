"""Task metrics per backend, each held to the reference backend's by the metric gate
(`evaluation.metric_tolerance`; awml_harness/evaluation/gate.py).

Small evaluations: one test per backend. Large ones: one test per chunk of samples,
every backend inside it; the controller merges the chunks, computes the metrics once and
applies the same gate (awml_harness/finish.py). With --awml-shard I/N: one test per
config on this job's slice; the run writes a shard file for `awml merge`
(awml_harness/split.py) and no metrics. The judgement is the package's; this module
records it and fails on it."""

from __future__ import annotations

import warnings

import pytest


def test_evaluation(awml, awml_eval_case, awml_record, awml_unavailable, guard_backend, pytestconfig):
    from awml_harness.cases import ChunkCase, SplitCase
    from awml_harness.evaluation.results import ERROR, NO_REFERENCE, UNAVAILABLE, gate_message

    case = awml_eval_case
    ctx = awml.context(case.config_id)
    if isinstance(case, (SplitCase, ChunkCase)):
        split = isinstance(case, SplitCase)
        with guard_backend():
            index, count = (case.index, case.count) if split else (case.chunk, case.of)
            backends = ctx.evaluate_chunk(index, count, "shard" if split else "chunk")
        record = {"kind": "evaluation-split" if split else "evaluation-chunk", "config": case.config_id,
                  "index": index, "count": count, "backends": backends, "artifacts": ctx.all_artifacts()}
        if split:
            from awml_harness.split import config_digest

            record.update(config_digest=config_digest(ctx, pytestconfig.rootpath), num_samples=ctx.num_eval_samples())
        awml_record(record)
        errors = [f"{name}: {b['error']}" for name, b in backends.items() if "error" in b]
        if errors:
            pytest.fail(f"{case.id}: evaluation failed:\n" + "\n".join(errors), pytrace=False)
        return
    with guard_backend():
        result = ctx.evaluate_all()[case.name]
    awml_record({"kind": "evaluation", "config": case.config_id, "backend": case.name,
                 "artifacts": ctx.all_artifacts(), **result.record()})
    if result.status in (UNAVAILABLE, NO_REFERENCE):
        awml_unavailable(result.reason)
    if result.status == ERROR:
        pytest.fail(f"{case.id}: evaluation failed on {result.reason}", pytrace=False)
    if result.note:
        warnings.warn(f"{case.id}: {result.note}", stacklevel=1)
    if not result.passed:
        pytest.fail(gate_message(case.id, ctx.cfg.evaluation.reference, result), pytrace=False)
