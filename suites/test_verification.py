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
    from awml_harness.compare import compare
    from awml_harness.matching import match_detections, match_settings
    from awml_harness.verification.tolerance import resolve

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
    ver = ctx.cfg.verification

    def tolerance(path: str) -> tuple[float, float, float]:
        return resolve(ver, sc, path).as_tuple()

    result = compare(ref_outputs, test_outputs, tolerance)
    messages = []
    if not result.passed:
        messages.append(result.message(f"{case.id}", hint=_hint(result, sc)))
        if changed is not None:
            where = golden.golden_path(opts.golden, case.config_id, sc.ref.label, index)
            messages.append((f"  golden {where} was saved with a different setup: " + "; ".join(changed)) if changed
                            else (f"  golden {where} was saved with the same config digest, checkpoint, sample and "
                                  "tool versions: the difference comes from the backend under test"))
    record = {
        "kind": "verification", "config": case.config_id,
        "scenario": ("golden:" if case.golden else "") + sc.label,
        "ref": ("golden:" if case.golden else "") + sc.ref.label, "test": sc.test.label,
        "sample_index": index, "sample_id": ctx.prepared(index).sample_id,
        "leaves": [{**leaf.as_dict(), "rule": resolve(ver, sc, leaf.path).rule} for leaf in result.leaves],
        "artifacts": ctx.all_artifacts(),
    }
    if changed:
        record["golden_changed"] = changed
    ref_det = ctx.adapter.detections(ref.prediction) if ref is not None else None
    if ref_det is not None and ver.detection.enabled:
        settings = match_settings(ctx.adapter.match_settings(), ver.detection)
        match = match_detections(ref_det, ctx.adapter.detections(test.prediction), **settings)
        record["detections"] = {
            "passed": match.passed, "num_ref": match.num_ref, "num_test": match.num_test, "matched": match.matched,
            "lost": match.unmatched_ref, "extra": match.unmatched_test, "borderline": match.borderline,
            "max_score_delta": match.max_score_delta, "max_box_delta": match.max_box_delta,
        }
        if not match.passed:
            messages.append(f"{case.id}: " + match.message()
                            + "\n  -> if the difference is acceptable, raise verification.detection.score_atol / box_atol")
    if messages and opts.localize and not case.golden:
        found = _localize(ctx, sc, ctx.prepared(index), tolerance)
        record["localization"] = found.as_dict()
        messages.append(found.message())
    record["passed"] = not messages
    awml_record(record)
    if messages:
        pytest.fail("\n".join(messages), pytrace=False)


def _localize(ctx, sc, prepared, tolerance):
    """--awml-localize: the first diverging nodes between the two sides (awml_harness/localize.py)."""
    from awml_harness.localize import Localization, localize

    try:
        return localize(ctx, sc, prepared, tolerance)
    except Exception as exc:  # the verification failure stays the verdict; say why there is no more
        return Localization(sc.ref.label, sc.test.label, "none", 0, 0,
                            notes=(f"localisation could not run: {type(exc).__name__}: {exc}",))


def _hint(result, sc) -> str:
    """The config line and --cfg-options that would have passed, ready to paste (if right)."""
    from awml_harness.report.suggest import hint_pair, verification_hint

    return verification_hint(result, hint_pair(sc.ref.label, sc.test.label, sc.ref_precision))
