from __future__ import annotations

import math

import numpy as np
import pytest

from awml_harness.compare import assert_outputs_close, compare, compare_arrays


def test_identical_nested_outputs_pass_and_every_leaf_is_reported():
    out = {"a": np.ones((2, 3), np.float32), "b": [np.zeros(4), (1.5, np.arange(3))], "c": 3}
    result = compare(out, out)
    assert result.passed
    assert [leaf.path for leaf in result.leaves] == ["a", "b[0]", "b[1][0]", "b[1][1]", "c"]


def test_element_rule_is_atol_plus_rtol_times_abs_ref():
    ref = np.array([100.0, 1.0])
    assert compare_arrays("x", ref, ref + np.array([1.0, 0.0]), atol=0.0, rtol=0.01).passed
    assert not compare_arrays("x", ref, ref + np.array([1.01, 0.0]), atol=0.0, rtol=0.01).passed
    assert compare_arrays("x", ref, ref + 0.5, atol=0.5, rtol=0.0).passed


def test_all_failing_leaves_are_reported_not_just_the_first():
    ref = {"a": np.zeros(3), "b": np.zeros(3), "c": np.zeros(3)}
    test = {"a": np.ones(3), "b": np.zeros(3), "c": np.full(3, 2.0)}
    result = compare(ref, test, (0.1, 0.0))
    assert [leaf.path for leaf in result.failures] == ["a", "c"]
    msg = result.message("ctx")
    assert "2 of 3 outputs differ" in msg and "- a:" in msg and "- c:" in msg


def test_statistics_and_minimum_atol():
    ref = np.array([[0.0, 1.0], [2.0, 4.0]])
    test = ref + np.array([[0.0, 0.1], [0.0, -0.5]])
    leaf = compare_arrays("y", ref, test, atol=0.01, rtol=0.0)
    assert leaf.mismatches == 2 and leaf.numel == 4 and leaf.mismatch_share == 0.5
    assert leaf.max_abs_diff == pytest.approx(0.5)
    assert leaf.worst_index == (1, 1) and leaf.worst_ref == 4.0 and leaf.worst_test == 3.5
    assert leaf.max_rel_diff == pytest.approx(0.125)
    assert leaf.mean_abs_diff == pytest.approx(0.15)
    assert leaf.min_atol == pytest.approx(0.5)
    # the reported minimum atol really is the boundary
    assert compare_arrays("y", ref, test, atol=leaf.min_atol, rtol=0.0).passed
    assert not compare_arrays("y", ref, test, atol=leaf.min_atol * 0.99, rtol=0.0).passed
    # with rtol the needed atol shrinks by rtol*|ref|
    assert compare_arrays("y", ref, test, atol=0.0, rtol=0.1).min_atol == pytest.approx(0.1)


@pytest.mark.parametrize("where", ["ref", "test", "both"])
def test_nan_never_passes(where):
    a = np.array([1.0, 2.0])
    b = np.array([1.0, 2.0])
    if where in ("ref", "both"):
        a[1] = np.nan
    if where in ("test", "both"):
        b[1] = np.nan
    leaf = compare_arrays("n", a, b, atol=1e9, rtol=1e9)
    assert not leaf.passed and leaf.mismatches == 1 and math.isinf(leaf.min_atol)


def test_infinities_pass_only_when_equal():
    a = np.array([np.inf, -np.inf, 1.0])
    assert compare_arrays("i", a, a.copy(), 0, 0).passed
    b = np.array([np.inf, np.inf, 1.0])
    leaf = compare_arrays("i", a, b, 1.0, 1.0)
    assert not leaf.passed and leaf.inf_count == 2


def test_shape_dtype_and_structure_are_checked_before_values():
    r = compare({"a": np.zeros((2, 3))}, {"a": np.zeros((3, 2))})
    assert "shape mismatch" in r.failures[0].problem
    r = compare(np.zeros(2, np.float32), np.zeros(2, np.int64))
    assert "dtype mismatch" in r.failures[0].problem
    r = compare(np.zeros(2, np.float32), np.zeros(2, np.float16))  # float widths compare by value
    assert r.passed
    r = compare({"a": 1, "b": 2}, {"a": 1, "z": 2})
    problems = {leaf.path: leaf.problem for leaf in r.failures}
    assert problems == {"b": "missing in test output", "z": "not in reference output"}
    r = compare([1, 2, 3], [1, 2])
    assert "length mismatch" in r.failures[0].problem
    r = compare({"a": [1]}, {"a": {"x": 1}})
    assert "type mismatch" in r.failures[0].problem


def test_per_path_tolerance_function():
    ref = {"heatmap": np.zeros(2), "reg": np.zeros(2)}
    test = {"heatmap": np.full(2, 0.05), "reg": np.full(2, 0.05)}

    def tol(path):
        return (0.1, 0.0) if path == "heatmap" else (0.01, 0.0)

    result = compare(ref, test, tol)
    assert [leaf.path for leaf in result.failures] == ["reg"]


def test_torch_tensors_are_leaves():
    torch = pytest.importorskip("torch")
    assert compare({"t": torch.ones(3)}, {"t": np.ones(3, np.float32)}).passed


def test_assertion_message_is_short_and_actionable():
    with pytest.raises(AssertionError) as info:
        assert_outputs_close({"output": np.zeros(10)}, {"output": np.full(10, 0.2)}, (0.1, 0.0), context="case")
    text = str(info.value)
    assert text.splitlines()[0] == "case: 1 of 1 outputs differ beyond tolerance"
    assert "mismatched elements 10 / 10 (100.00%)" in text
    assert "min atol to pass at rtol=0: 0.2" in text
