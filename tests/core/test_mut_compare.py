"""compare.py beyond the basics: leaf paths, statistics of every kind of leaf, the
JSON form of a leaf and the failure message, pinned so a deliberate bug shows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from awml_harness.compare import HIST_EDGES, assert_outputs_close, compare, compare_arrays


def test_paths_of_nested_leaves_and_the_tolerance_each_path_gets():
    asked = []

    def tol(path):
        asked.append(path)
        return (0.5, 0.0) if path.startswith("head/") else (0.0, 0.0)

    ref = {"head": {"cls": np.zeros(2), "reg": [np.zeros(1), np.zeros(1)]}, "x": 1}
    test = {"head": {"cls": np.full(2, 0.4), "reg": [np.full(1, 0.4), np.zeros(1)]}, "x": 1}
    result = compare(ref, test, tol)
    assert [leaf.path for leaf in result.leaves] == ["head/cls", "head/reg[0]", "head/reg[1]", "x"]
    assert asked == ["head/cls", "head/reg[0]", "head/reg[1]", "x"]
    assert result.passed
    assert [(leaf.atol, leaf.rtol) for leaf in result.leaves] == [(0.5, 0.0)] * 3 + [(0.0, 0.0)]
    assert [leaf.path for leaf in compare([np.zeros(1), [np.zeros(1)]], [np.zeros(1), [np.zeros(1)]]).leaves] == \
        ["[0]", "[1][0]"]


def test_a_bare_array_or_a_structural_problem_at_the_top_is_called_root():
    assert compare(np.zeros(2), np.ones(2)).leaves[0].path == "<root>"
    leaf = compare({"a": 1}, [1]).leaves[0]
    assert (leaf.path, leaf.passed) == ("<root>", False)
    assert leaf.problem == "type mismatch: ref mapping vs test list"
    leaf = compare((1, 2), {"a": 1}).leaves[0]
    assert leaf.problem == "type mismatch: ref tuple vs test dict"


def test_missing_and_extra_keys_get_their_own_path_and_tolerance():
    seen = []
    result = compare({"o": {"a": 1, "b": 2}}, {"o": {"a": 1, "c": 3}}, lambda p: seen.append(p) or (0.25, 0.5))
    by_path = {leaf.path: leaf for leaf in result.leaves}
    assert set(by_path) == {"o/a", "o/b", "o/c"}
    assert by_path["o/a"].passed
    assert (by_path["o/b"].problem, by_path["o/b"].atol, by_path["o/b"].rtol) == ("missing in test output", 0.25, 0.5)
    assert (by_path["o/c"].problem, by_path["o/c"].atol, by_path["o/c"].rtol) == ("not in reference output", 0.25, 0.5)
    assert "o/b" in seen and "o/c" in seen


def test_length_mismatch_reports_and_still_compares_the_common_items():
    result = compare({"l": [np.zeros(1), np.zeros(1)]}, {"l": [np.ones(1)]}, (0.0, 0.0))
    assert [(leaf.path, leaf.problem) for leaf in result.leaves] == [
        ("l", "length mismatch: ref 2 items vs test 1"), ("l[0]", "")]
    assert not result.leaves[1].passed


def test_non_numeric_leaves_compare_by_equality():
    assert compare({"name": "car", "n": None}, {"name": "car", "n": None}).passed
    leaf = compare({"name": "car"}, {"name": "bus"}).leaves[0]
    assert not leaf.passed
    assert leaf.problem == "unsupported or unequal leaf: ref str 'car' vs test str 'bus'"
    assert not compare("a", 1).passed  # one side numeric, the other not


@pytest.mark.parametrize("scalar", [np.float32(1.5), 1.5, 2, True])
def test_python_and_numpy_scalars_are_numeric_leaves(scalar):
    leaf = compare(scalar, scalar).leaves[0]
    assert leaf.passed and leaf.numel == 1 and leaf.problem == ""


def test_scalar_leaves_compare_with_tolerance():
    assert compare(1.0, 1.0005, (1e-3, 0.0)).passed
    assert not compare(1.0, 1.01, (1e-3, 0.0)).passed
    leaf = compare(np.float64(2.0), np.float64(3.0), (0.0, 0.0)).leaves[0]
    assert leaf.worst_index == () and leaf.worst_ref == 2.0 and leaf.worst_test == 3.0


def test_default_tolerance_is_1e_3_absolute_and_relative():
    ref = np.array([0.0, 100.0])
    assert compare(ref, ref + np.array([0.00099, 0.0])).passed
    assert not compare(ref, ref + np.array([0.0011, 0.0])).passed
    assert compare(ref, ref + np.array([0.0, 0.1])).passed  # 1e-3 + 1e-3 * 100
    assert not compare(ref, ref + np.array([0.0, 0.11])).passed
    leaf = compare(ref, ref).leaves[0]
    assert (leaf.atol, leaf.rtol) == (1e-3, 1e-3)
    assert assert_outputs_close(ref, ref + 0.0009).passed


def test_dtype_rule_float_widths_compare_by_value_others_must_match():
    f = np.zeros(2, np.float32)
    assert compare_arrays("x", f, np.zeros(2, np.float64), 0, 0).passed
    leaf = compare_arrays("x", np.zeros(2, np.int32), np.zeros(2, np.int64), 0, 0)
    assert leaf.problem == "dtype mismatch: ref int32 vs test int64" and not leaf.passed
    leaf = compare_arrays("x", np.zeros(2, np.int32), f, 0, 0)
    assert leaf.problem == "dtype mismatch: ref int32 vs test float32"
    leaf = compare_arrays("x", f, np.zeros(2, bool), 0, 0)
    assert leaf.problem == "dtype mismatch: ref float32 vs test bool"
    assert compare_arrays("x", np.array([1, 2]), np.array([1, 2]), 0, 0).passed
    leaf = compare_arrays("x", np.zeros((2, 1)), np.zeros(2), 0, 0)
    assert leaf.problem == "shape mismatch: ref (2, 1) vs test (2,)"
    assert leaf.numel == 0 and leaf.shape == ()


def test_empty_arrays_pass_with_their_shape():
    leaf = compare_arrays("e", np.zeros((0, 7)), np.zeros((0, 7)), 0, 0)
    assert leaf.passed and leaf.shape == (0, 7) and leaf.numel == 0 and leaf.mismatch_share == 0.0


def test_nan_and_inf_statistics():
    ref = np.array([1.0, 2.0, np.inf, 4.0, 5.0])
    test = np.array([1.0, np.nan, np.inf, -np.inf, 5.5])
    leaf = compare_arrays("v", ref, test, atol=1.0, rtol=0.0)
    assert leaf.nan_count == 1 and leaf.inf_count == 2  # counted in the test output
    assert leaf.mismatches == 2  # the NaN and the flipped infinity; +inf == +inf and 0.5 <= 1 pass
    assert math.isinf(leaf.max_abs_diff) and math.isinf(leaf.min_atol)
    assert leaf.worst_index == (1,) and leaf.worst_ref == 2.0 and math.isnan(leaf.worst_test)
    assert leaf.mean_abs_diff == pytest.approx(0.1)  # non-finite elements count as 0 diff
    assert sum(leaf.diff_hist) == 2  # elements finite on both sides only
    # a NaN only in the reference is counted nowhere but still fails
    leaf = compare_arrays("v", np.array([np.nan, 1.0]), np.array([0.0, 1.0]), 1e9, 0)
    assert not leaf.passed and leaf.nan_count == 0 and leaf.worst_index == (0,)
    # an infinity only in the reference fails too
    assert not compare_arrays("v", np.array([np.inf]), np.array([1e308]), 1e309, 0).passed


def test_relative_difference_and_its_zero_reference_cases():
    leaf = compare_arrays("r", np.array([0.0, 2.0]), np.array([0.0, 3.0]), 0, 0)
    assert leaf.max_rel_diff == pytest.approx(0.5)
    leaf = compare_arrays("r", np.array([0.0, 2.0]), np.array([0.1, 2.0]), 0, 0)
    assert math.isinf(leaf.max_rel_diff)  # any diff over a zero reference
    leaf = compare_arrays("r", np.array([0.0, 4.0]), np.array([0.0, 3.0]), 0, 0)
    assert leaf.max_rel_diff == pytest.approx(0.25)


def test_min_atol_is_the_boundary_with_rtol_and_never_negative():
    ref = np.array([10.0, 1.0])
    test = np.array([10.5, 1.0])
    leaf = compare_arrays("m", ref, test, atol=0.0, rtol=0.1)
    assert leaf.passed and leaf.min_atol == 0.0  # rtol alone covers it: clipped at 0
    leaf = compare_arrays("m", ref, test, atol=0.0, rtol=0.01)
    assert leaf.min_atol == pytest.approx(0.4)
    assert compare_arrays("m", ref, test, atol=0.4 + 1e-12, rtol=0.01).passed
    assert not compare_arrays("m", ref, test, atol=0.39, rtol=0.01).passed


def test_worst_index_points_at_the_largest_difference():
    ref = np.zeros((2, 3))
    test = ref.copy()
    test[0, 2] = 0.3
    test[1, 0] = -0.7
    leaf = compare_arrays("w", ref, test, 0.0, 0.0)
    assert leaf.worst_index == (1, 0) and leaf.worst_test == -0.7 and leaf.worst_ref == 0.0
    assert leaf.max_abs_diff == pytest.approx(0.7) and leaf.mismatches == 2


def test_diff_histogram_bins_by_decade():
    assert len(HIST_EDGES) == 16 and HIST_EDGES[0] == 0.0 and HIST_EDGES[1] == 1e-12 and math.isinf(HIST_EDGES[-1])
    ref = np.zeros(5)
    test = np.array([0.0, 5e-12, 0.05, 0.5, 50.0])
    hist = compare_arrays("h", ref, test, 1e9, 0).diff_hist
    assert len(hist) == 15 and sum(hist) == 5
    assert hist[0] == 1  # exact
    assert hist[1] == 1  # [1e-12, 1e-11)
    assert hist[HIST_EDGES.index(0.01)] == 1
    assert hist[HIST_EDGES.index(0.1)] == 1
    assert hist[-1] == 1  # [10, inf)


def test_describe_lines():
    leaf = compare_arrays("out", np.array([0.0, 1.0, 2.0, 4.0]), np.array([0.0, 1.0, 2.0, 4.5]), 0.1, 0.0)
    assert leaf.describe() == (
        "out: mismatched elements 1 / 4 (25.00%); greatest abs diff 0.5 at index (3,) (ref 4, test 4.5), "
        "greatest rel diff 0.125; allowed atol=0.1 rtol=0; min atol to pass at rtol=0: 0.5")
    leaf = compare_arrays("out", np.array([1.0, 1.0]), np.array([np.nan, np.inf]), 0.1, 0.0)
    text = leaf.describe()
    assert "non-finite: 1 NaN, 1 Inf" in text and text.endswith("no finite atol passes (NaN/Inf mismatch)")
    leaf = compare_arrays("out", np.array([1.0]), np.array([-np.inf]), 0.1, 0.0)
    assert "non-finite: 0 NaN, 1 Inf" in leaf.describe()
    assert compare({"a": 1}, {}).leaves[0].describe() == "a: missing in test output"


def test_as_dict_is_json_ready():
    leaf = compare_arrays("o", np.zeros((1, 2)), np.array([[0.0, 0.5]]), 0.1, 0.0)
    d = leaf.as_dict()
    assert d["path"] == "o" and d["passed"] is False and d["shape"] == [1, 2] and d["worst_index"] == [0, 1]
    assert d["diff_hist"] == list(leaf.diff_hist) and isinstance(d["diff_hist"], list)
    assert d["mismatch_share"] == 0.5 and d["min_atol"] == pytest.approx(0.5) and d["numel"] == 2
    bad = compare_arrays("o", np.array([1.0, 1.0]), np.array([np.nan, 1.0]), 0.1, 0.0).as_dict()
    assert bad["min_atol"] == "inf" and bad["max_abs_diff"] == "inf"
    assert bad["worst_test"] is None and bad["worst_ref"] == 1.0
    inf = compare_arrays("o", np.array([1.0]), np.array([np.inf]), 0.1, 0.0).as_dict()
    assert inf["worst_test"] == "inf" and inf["max_abs_diff"] == "inf" and inf["max_rel_diff"] == 0.0
    neg = compare_arrays("o", np.array([-np.inf]), np.array([1.0]), 0.1, 0.0).as_dict()
    assert neg["worst_ref"] == "-inf"
    assert set(d) >= {"atol", "rtol", "problem", "mismatches", "nan_count", "inf_count", "mean_abs_diff"}


def test_failure_message_context_count_and_hint():
    ref = {"a": np.zeros(2), "b": np.zeros(2)}
    result = compare(ref, {"a": np.zeros(2), "b": np.ones(2)}, (0.1, 0.0))
    lines = result.message().splitlines()
    assert lines[0] == "1 of 2 outputs differ beyond tolerance"
    assert lines[1].startswith("  - b: mismatched elements 2 / 2 (100.00%)")
    assert len(lines) == 2
    msg = result.message("Toy pytorch->onnx", hint="try --awml-suggest-tolerances")
    assert msg.splitlines()[0] == "Toy pytorch->onnx: 1 of 2 outputs differ beyond tolerance"
    assert msg.splitlines()[-1] == "try --awml-suggest-tolerances"
    with pytest.raises(AssertionError) as info:
        assert_outputs_close(ref, {"a": np.zeros(2), "b": np.ones(2)}, (0.1, 0.0), context="ctx", hint="HINT")
    assert str(info.value) == result.message("ctx", "HINT")
    ok = assert_outputs_close(ref, ref, (0.0, 0.0))
    assert ok.passed and ok.failures == [] and len(ok.leaves) == 2


def test_assertion_without_context_or_hint_is_just_the_summary():
    with pytest.raises(AssertionError) as info:
        assert_outputs_close({"o": np.zeros(1)}, {"o": np.ones(1)}, (0.1, 0.0))
    lines = str(info.value).splitlines()
    assert lines[0] == "1 of 1 outputs differ beyond tolerance"
    assert len(lines) == 2 and lines[1].startswith("  - o: mismatched elements 1 / 1")


def test_a_failing_check_hides_the_helpers_frame_from_pytests_traceback():
    with pytest.raises(AssertionError) as info:
        assert_outputs_close(np.zeros(1), np.ones(1), (0.1, 0.0))
    hidden = [entry.name for entry in info.traceback if entry.ishidden(info)]
    assert any("assert_outputs_close" in name for name in hidden)  # the report points at the caller's line


def test_structural_and_non_numeric_leaves_get_their_path_and_tolerance():
    seen = []

    def tol(path):
        seen.append(path)
        return (0.25, 0.5)

    result = compare({"name": "car", "a": [1], "gone": 1}, {"name": "car", "a": {"x": 1}, "new": 2}, tol)
    by_path = {leaf.path: leaf for leaf in result.leaves}
    assert set(by_path) == {"name", "a", "gone", "new"} and sorted(seen) == ["a", "gone", "name", "new"]
    assert by_path["name"].passed is True
    for p in ("a", "gone", "new"):
        assert by_path[p].passed is False and (by_path[p].atol, by_path[p].rtol) == (0.25, 0.5)
        assert by_path[p].as_dict()["passed"] is False


def test_only_torch_objects_are_converted_with_detach():
    class Handle:
        """Not a tensor, though it has a detach method."""

        def detach(self):
            raise AssertionError("detach must not be called on a non-torch object")

    h = Handle()
    leaf = compare({"h": h}, {"h": h}).leaves[0]
    assert leaf.passed and leaf.numel == 0


def test_problems_fail_explicitly_and_equal_leaves_carry_their_tolerance():
    shape = compare_arrays("s", np.zeros(2), np.zeros(3), 0.0, 0.0)
    dtype = compare_arrays("d", np.zeros(2, np.int8), np.zeros(2, np.int16), 0.0, 0.0)
    assert shape.passed is False and dtype.passed is False
    assert shape.as_dict()["passed"] is False
    leaf = compare({"name": "car"}, {"name": "car"}, (0.25, 0.5)).leaves[0]
    assert (leaf.atol, leaf.rtol) == (0.25, 0.5)
