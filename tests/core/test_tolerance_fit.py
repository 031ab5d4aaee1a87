"""Tolerance suggestions fit atol and rtol per output (issue 24 item 8): the pair passes
every observed element with the least mean allowed band, so an output whose magnitude
spans 1 to 40 m is not held 3x too loosely at its small values."""

from __future__ import annotations

import re
import shlex

import numpy as np
import pytest

from awml_harness.compare import compare, compare_arrays, upper_hull
from awml_harness.config.load import apply_overrides
from awml_harness.config.schema import Backend, DeployConfig, Scenario
from awml_harness.config.validation import from_mapping
from awml_harness.verification.suggest import round_up, suggest_tolerances, verification_hint
from awml_harness.verification.tolerance import fit, resolve

RNG = np.random.default_rng(0)
DEPTH = RNG.uniform(1.0, 40.0, 20_000)
RELATIVE = DEPTH * (1 + 0.003 * RNG.uniform(-1, 1, DEPTH.shape))  # a 0.3 % relative error
ABSOLUTE = DEPTH + 1e-3 * RNG.uniform(-1, 1, DEPTH.shape)  # noise independent of the magnitude


def test_a_relative_error_gets_rtol_and_stays_tight_at_small_values():
    leaf = compare_arrays("depth", DEPTH, RELATIVE, 0.0, 0.0)
    atol, rtol = fit(leaf.envelope, leaf.mean_abs_ref)
    assert compare_arrays("depth", DEPTH, RELATIVE, atol, rtol).passed  # every element
    assert rtol > 0 and atol < 0.01 * leaf.max_abs_diff
    assert rtol <= 0.003 * 1.032  # the bins (1/32 of an octave) cost at most 3.1 %
    # at |ref| = 1 the fitted band is far tighter than an atol-only suggestion (the max |diff|)
    assert atol + rtol * 1.0 < leaf.max_abs_diff / 10


def test_an_absolute_error_gets_atol():
    leaf = compare_arrays("depth", DEPTH, ABSOLUTE, 0.0, 0.0)
    atol, rtol = fit(leaf.envelope, leaf.mean_abs_ref)
    assert compare_arrays("depth", DEPTH, ABSOLUTE, atol, rtol).passed
    assert atol == pytest.approx(leaf.max_abs_diff, rel=0.05) and rtol * 40 < 0.1 * atol


@pytest.mark.parametrize("test", [RELATIVE, ABSOLUTE, DEPTH * 1.002 + 2e-3], ids=["relative", "absolute", "both"])
def test_the_fit_is_the_least_band_among_passing_pairs(test):
    """Least up to the envelope's bins: a bin's edge is at most 1/32 octave (3.1 %) below its elements."""
    leaf = compare_arrays("depth", DEPTH, test, 0.0, 0.0)
    atol, rtol = fit(leaf.envelope, leaf.mean_abs_ref)
    band = atol + rtol * leaf.mean_abs_ref
    tried = 0
    for a, r in [(leaf.max_abs_diff, 0.0), (0.0, leaf.max_rel_diff), (atol / 2, rtol * 1.2), (atol * 1.5, rtol * 0.95),
                 (atol * 0.9, rtol * 1.05), (2e-3, 2e-3)]:
        if compare_arrays("depth", DEPTH, test, a, r).passed:
            tried += 1
            assert a + r * leaf.mean_abs_ref >= band / 1.032
    assert tried >= 2


def test_the_envelope_is_a_few_hull_points_that_cover_every_element():
    leaf = compare_arrays("depth", DEPTH, RELATIVE, 0.0, 0.0)
    assert 1 <= len(leaf.envelope) <= 32
    assert list(leaf.envelope) == upper_hull(list(leaf.envelope))
    diff, ref = np.abs(RELATIVE - DEPTH), np.abs(DEPTH)
    for x, d in leaf.envelope:  # each point is an observed maximum at a bin edge below its elements
        assert d <= diff.max() and x <= ref.max()


def test_round_up_never_goes_below():
    for v in (0.001234, 0.0999, 1.0, 12.51, 3e-7):
        assert v <= round_up(v) <= v * 1.1
    assert round_up(0.0) == 0.0


def _doc(ref, test):
    result = compare({"depth": ref}, {"depth": test}, (0.0, 0.0))
    leaves = [leaf.as_dict() for leaf in result.leaves]
    return {"projects": {"Depth": {"config": "/x/deploy.py", "verification": {"results": [
        {"scenario": "pytorch:cpu-vs-onnx:cpu", "ref": "pytorch:cpu", "test": "onnx:cpu", "leaves": leaves}]}}}}


def _minimal():
    return {"project": "X", "task_type": "t"}


def test_the_pooled_suggestion_fits_both_and_pastes_as_printed():
    text = suggest_tolerances(_doc(DEPTH, RELATIVE), 1.5)
    rule = re.search(r"'depth': dict\(atol=([^,]+), rtol=([^)]+)\)", text)
    assert rule and float(rule.group(2)) > 0 and float(rule.group(1)) < 0.01
    words = shlex.split(text.split("--cfg-options", 1)[1])
    ver = from_mapping(DeployConfig, apply_overrides(_minimal(), words)).verification
    sc = Scenario(Backend.PYTORCH, Backend.ONNX)
    assert compare({"depth": DEPTH}, {"depth": RELATIVE}, lambda p: resolve(ver, sc, p).as_tuple()).passed
    assert not compare({"depth": DEPTH}, {"depth": DEPTH * 1.01}, lambda p: resolve(ver, sc, p).as_tuple()).passed


def test_the_failure_hint_fits_both_too():
    result = compare({"depth": DEPTH}, {"depth": RELATIVE}, (1e-4, 0.0))
    hint = verification_hint(result, "pytorch->onnx")
    rule = re.search(r"'depth': dict\(atol=([^,]+), rtol=([^)]+)\)", hint)
    assert rule and float(rule.group(2)) > 0
