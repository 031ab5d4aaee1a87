"""Per-node profiles (`--awml-profile`, or `evaluation.profile.enabled`): a profiled run of
each backend after its warm-up, in sessions, contexts or replays of its own (never
test_latency's timed rounds), attributed to the fp32 ONNX graph's nodes
(awml_harness/profile/). Recorded, not judged: the table is joined across backends in
the metrics JSON, and `awml diff` compares two runs' profiles node by node. Fails only
when the profile itself cannot be taken."""

from __future__ import annotations


def test_profile(awml, awml_profile_case, awml_record, guard_backend):
    from awml_harness.profile.run import ProfileSettings, profile_backend

    case = awml_profile_case
    ctx = awml.context(case.config_id)
    cfg = ctx.cfg.evaluation.profile
    with guard_backend():
        result = profile_backend(ctx, case.spec, ProfileSettings(rounds=cfg.rounds, warmup=cfg.warmup))
    awml_record({"kind": "profile", "config": case.config_id, "backend": case.name,
                 "artifacts": ctx.all_artifacts(), **result})
