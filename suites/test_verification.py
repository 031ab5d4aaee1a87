"""Every scenario x sample: test backend outputs against the reference backend's.

Raw graph outputs are compared leaf by leaf with the configured tolerances; for
detection projects the postprocessed boxes are matched as well, so a reordering of
near-equal boxes passes while a lost or extra box fails. With --awml-golden the
reference side comes from stored golden outputs instead of a live backend.
"""

from __future__ import annotations

import pytest


def test_verification(awml, awml_verify_case, awml_record, guard_backend):
    from awml_harness import golden
    from awml_harness.verification.judge import judge

    case = awml_verify_case
    ctx = awml.context(case.config_id)
    sc = case.scenario
    index = case.sample_index
    with guard_backend():
        size = len(ctx.dataset)  # an empty dataset fails here, naming its file
    if index >= size:
        pytest.skip(f"num_verify_samples asks for sample {index}, the dataset has {size}")
    opts = awml.options
    with guard_backend():
        test = ctx.run(sc.test, ctx.prepared(index))
        sample_id = ctx.prepared(index).sample_id
        changed = None  # golden runs: what differs from when the golden file was saved
        if case.golden:
            try:
                ref_outputs, _ = golden.load(opts.golden, case.config_id, sc.ref.label, index)
            except FileNotFoundError as exc:
                pytest.fail(str(exc), pytrace=False)
            ref, test_outputs = None, golden.flatten(test.outputs)
            changed = golden.what_changed(golden.load_provenance(opts.golden, case.config_id, sc.ref.label, index),
                                          golden.provenance(ctx.cfg, ctx.checkpoint_digest, sample_id, sc.ref.label))
        else:
            ref = ctx.reference_result(sc.ref, index)
            ref_outputs, test_outputs = ref.outputs, test.outputs
            if opts.save_golden is not None:
                golden.save(opts.save_golden, case.config_id, sc.ref.label, index, ref.outputs, sample_id,
                            golden.provenance(ctx.cfg, ctx.checkpoint_digest, sample_id, sc.ref.label))
    adapter = ctx.adapter
    verdict = judge(ctx.cfg.verification, sc, ref_outputs, test_outputs,
                    adapter.detections(ref.prediction) if ref is not None else None,
                    adapter.detections(test.prediction), adapter.match_settings())
    messages = verdict.messages(case.id)
    if changed is not None and not verdict.outputs.passed:
        where = golden.golden_path(opts.golden, case.config_id, sc.ref.label, index)
        messages.append((f"  golden {where} was saved with a different setup: " + "; ".join(changed)) if changed
                        else (f"  golden {where} was saved with the same config digest, checkpoint, sample and "
                              "tool versions: the difference comes from the backend under test"))
    record = {
        "kind": "verification", "config": case.config_id,
        "scenario": ("golden:" if case.golden else "") + sc.label,
        "ref": ("golden:" if case.golden else "") + sc.ref.label, "test": sc.test.label,
        "sample_index": index, "sample_id": sample_id, "leaves": verdict.leaves(), "artifacts": ctx.all_artifacts(),
    }
    if changed:
        record["golden_changed"] = changed
    if verdict.detections is not None:
        record["detections"] = verdict.detections_record()
    if messages and opts.localize and not case.golden:
        from awml_harness.localize import localize_failure

        found = localize_failure(ctx, sc, ctx.prepared(index))
        record["localization"] = found.as_dict()
        messages.append(found.message())
    record["passed"] = not messages
    awml_record(record)
    if messages:
        pytest.fail("\n".join(messages), pytrace=False)
