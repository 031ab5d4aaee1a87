"""Metric directions and tolerance forms (issue 24 items 1-3): a lower-is-better metric
made worse fails, made better passes; counts are never gated by "*"; tolerances can be
absolute, relative, both, and one-sided; the config refuses malformed ones."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from awml_harness.cli.diff import Thresholds, compare_documents
from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import EvaluationConfig, MetricTolerance
from awml_harness.config.validation import from_mapping
from awml_harness.directions import direction_of
from awml_harness.evaluation.gate import judge_metrics
from awml_harness.project import Evaluator


class DepthEvaluator(Evaluator):
    """What a monocular depth project would declare (AbsRel and RMSE fall when it gets better)."""

    headline = "AbsRel"
    directions: ClassVar[dict[str, str]] = {"AbsRel": "lower", "RMSE": "lower", "delta*": "higher",
                                            "valid_pixels": "none"}

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:  # pragma: no cover - not called
        pass

    def compute(self) -> dict[str, Any]:  # pragma: no cover - not called
        return {}


REF = {"AbsRel": 0.037, "RMSE": 1.07, "delta1": 0.97, "valid_pixels": 125_319, "num_samples": 16}


def test_a_depth_model_that_got_much_worse_fails_the_gate_and_names_worse():
    broken = {**REF, "AbsRel": 2.02, "RMSE": 10.4, "delta1": 0.1}
    verdict = judge_metrics(broken, REF, {"*": 0.02}, DepthEvaluator.directions)
    assert not verdict.passed
    text = "\n".join(verdict.failures)
    assert "AbsRel: 2.02 vs reference 0.037 (worse by 1.983" in text and "lower is better" in text
    assert "RMSE: 10.4 vs reference 1.07 (worse by 9.33" in text
    assert "delta1: 0.1 vs reference 0.97 (worse by 0.87" in text and "higher is better" in text


def test_counts_are_reported_but_never_gated_by_the_wildcard():
    more_pixels = {**REF, "valid_pixels": 130_000, "num_samples": 17}
    verdict = judge_metrics(more_pixels, REF, {"*": 0.02}, DepthEvaluator.directions)
    assert verdict.passed, verdict.failures
    checks = {c.metric: c for c in verdict.checks}
    assert not checks["valid_pixels"].gated and not checks["num_samples"].gated  # num_* by the harness default
    assert checks["AbsRel"].gated and verdict.deltas["valid_pixels"] == pytest.approx(4681)
    # a count the tolerance names explicitly is gated: an explicit rule is never ignored
    assert not judge_metrics(more_pixels, REF, {"valid_pixels": 10}, DepthEvaluator.directions).passed


def test_relative_tolerance_is_a_share_of_the_reference_and_adds_to_atol():
    worse = {**REF, "AbsRel": 0.057}  # 54 % worse: the shipped absolute 0.02 lets it pass
    assert judge_metrics(worse, REF, {"*": 0.02}, DepthEvaluator.directions).passed
    rel = {"AbsRel": MetricTolerance(rtol=0.1)}  # 0.0037 allowed
    verdict = judge_metrics(worse, REF, rel, DepthEvaluator.directions)
    assert not verdict.passed and "allowed rtol=0.1;" in verdict.failures[0]
    just = {**REF, "AbsRel": 0.037 * 1.1}
    assert judge_metrics(just, REF, rel, DepthEvaluator.directions).passed
    both = {"AbsRel": MetricTolerance(atol=0.001, rtol=0.1)}  # 0.0047 allowed
    assert judge_metrics({**REF, "AbsRel": 0.0416}, REF, both, DepthEvaluator.directions).passed
    assert not judge_metrics({**REF, "AbsRel": 0.0418}, REF, both, DepthEvaluator.directions).passed


def test_one_sided_tolerance_fails_only_the_worse_side():
    one = {"*": MetricTolerance(atol=0.01, one_sided=True)}
    better = {**REF, "AbsRel": 0.01, "RMSE": 0.5, "delta1": 0.99}
    assert judge_metrics(better, REF, one, DepthEvaluator.directions).passed
    assert not judge_metrics(better, REF, {"*": 0.01}, DepthEvaluator.directions).passed  # two-sided: a change
    worse = {**REF, "AbsRel": 0.05}
    verdict = judge_metrics(worse, REF, one, DepthEvaluator.directions)
    assert not verdict.passed and "allowed 0.01, one-sided;" in verdict.failures[0]


def test_one_sided_on_an_undeclared_metric_gates_both_ways_and_says_why():
    verdict = judge_metrics({"score": 0.5}, {"score": 0.9}, {"score": MetricTolerance(atol=0.1, one_sided=True)})
    assert not verdict.passed
    assert "one_sided needs a direction and the evaluator declares none" in verdict.failures[0]
    assert not judge_metrics({"score": 1.3}, {"score": 0.9}, {"score": MetricTolerance(atol=0.1, one_sided=True)}).passed


def test_directions_resolve_exact_names_then_patterns_then_the_count_default():
    table = {"mAP_small": "none", "mAP*": "higher"}
    assert direction_of("mAP_small", table) == "none"
    assert direction_of("mAP50", table) == "higher"
    assert direction_of("num_boxes", table) == "none"
    assert direction_of("num_boxes", {"num_boxes": "higher"}) == "higher"  # the evaluator's own word wins
    assert direction_of("logit_mean", table) == "undeclared"


def test_an_evaluator_with_a_misspelt_direction_is_refused_when_defined():
    with pytest.raises(ValueError, match=r"directions\['AbsRel'\] = 'lower-is-better': expected one of"):
        class _Bad(Evaluator):  # noqa: F841 - defining it is the test
            headline = "AbsRel"
            directions: ClassVar[dict[str, str]] = {"AbsRel": "lower-is-better"}

            def add(self, sample_id: str, prediction: Any, target: Any) -> None: ...

            def compute(self) -> dict[str, Any]: ...


@pytest.mark.parametrize("value, expected", [
    (0.02, MetricTolerance(atol=0.02)),
    ({"atol": 0.01}, MetricTolerance(atol=0.01)),
    ({"rtol": 0.05}, MetricTolerance(rtol=0.05)),
    ({"atol": 0.01, "rtol": 0.05, "one_sided": True}, MetricTolerance(atol=0.01, rtol=0.05, one_sided=True)),
])
def test_each_documented_tolerance_form_loads(value, expected):
    ev = from_mapping(EvaluationConfig, {"metric_tolerance": {"AbsRel": value}}, "evaluation")
    assert ev.tolerance_for("pytorch")["AbsRel"] == expected


@pytest.mark.parametrize("value, needle", [
    ({}, "atol and/or rtol"),
    ({"one_sided": True}, "atol and/or rtol"),
    ({"atol": -0.1}, "evaluation.metric_tolerance.AbsRel"),
    ({"rtol": 0.1, "rel": 0.2}, "no such key"),
    (-1.0, "evaluation.metric_tolerance.AbsRel"),
])
def test_malformed_tolerances_are_config_errors_naming_the_key(value, needle):
    with pytest.raises(ConfigError) as info:
        from_mapping(EvaluationConfig, {"metric_tolerance": {"AbsRel": value}}, "evaluation")
    assert needle in str(info.value)
    assert "evaluation.metric_tolerance.AbsRel" in str(info.value)


def test_backend_rule_beats_global_rule_per_metric_then_wildcards():
    ev = from_mapping(EvaluationConfig, {
        "backends": {"pytorch": {}, "onnx": {"metric_tolerance": {"*": 0.5}}},
        "metric_tolerance": {"*": 0.01, "AbsRel": {"rtol": 0.1}}}, "evaluation")
    rules = ev.tolerance_for("onnx")
    assert rules["AbsRel"] == MetricTolerance(rtol=0.1)  # the global rule naming the metric beats the backend's "*"
    assert rules["*"] == MetricTolerance(atol=0.5)


# -- awml diff on documents shaped like the metrics JSON -------------------------------------
def _doc(metrics: dict[str, float], directions: dict[str, str] | None, passed: bool = True) -> dict[str, Any]:
    evaluation: dict[str, Any] = {"reference": "pytorch", "backends": {
        "onnx": {"device": "cpu", "precision": "fp32", "status": "ok", "headline": "AbsRel", "metrics": metrics,
                 "passed": passed}}}
    if directions is not None:
        evaluation["directions"] = directions
    return {"schema_version": 2 if directions is not None else 1, "projects": {"Depth": {
        "verification": {"passed": 1, "failed": 0, "status": "verified", "results": []},
        "evaluation": evaluation, "latency": {}}}}


def test_diff_calls_a_lower_is_better_metric_that_rose_worse_and_one_that_fell_fine():
    old = _doc(REF, DepthEvaluator.directions)
    rows, _ = compare_documents(old, _doc({**REF, "AbsRel": 2.02, "RMSE": 10.4}, DepthEvaluator.directions),
                                Thresholds())
    found = [r.regression for r in rows if r.regression]
    assert any(f.startswith("Depth onnx: AbsRel worse 0.0370 -> 2.0200") for f in found), found
    assert any("RMSE worse 1.0700 -> 10.4000 (+9.3300, lower is better" in f for f in found), found
    rows, _ = compare_documents(old, _doc({**REF, "AbsRel": 0.02, "RMSE": 0.5}, DepthEvaluator.directions),
                                Thresholds())
    assert not [r for r in rows if r.regression]


def test_diff_relative_threshold_is_a_share_of_old():
    old = _doc(REF, DepthEvaluator.directions)
    new = _doc({**REF, "RMSE": 1.2}, DepthEvaluator.directions)  # +0.13 = +12 %
    assert [r for r in compare_documents(old, new, Thresholds(metric_worse=0.0))[0] if r.regression]
    assert not [r for r in compare_documents(old, new, Thresholds(metric_worse=0.0, metric_worse_rel=0.15))[0]
                if r.regression]


def test_diff_holds_an_undeclared_headline_both_ways():
    old, new = _doc({"AbsRel": 0.5}, {}), _doc({"AbsRel": 0.3}, {})
    rows, _ = compare_documents(old, new, Thresholds())
    found = [r.regression for r in rows if r.regression]
    assert found and "changed 0.5000 -> 0.3000" in found[0] and "declares no direction" in found[0]


def test_diff_reports_a_gate_that_went_from_passed_to_failed_even_with_equal_numbers():
    rows, _ = compare_documents(_doc(REF, DepthEvaluator.directions),
                                _doc(REF, DepthEvaluator.directions, passed=False), Thresholds())
    assert [r.regression for r in rows if r.regression] == ["Depth onnx: the metric gate passed in OLD and fails in NEW"]


def test_diff_of_documents_without_directions_warns_once_and_keeps_the_old_convention():
    old, new = _doc(REF, None), _doc({**REF, "AbsRel": 0.0}, None)  # the headline fell: "worse" by the old rule
    rows, notes = compare_documents(old, new, Thresholds())
    assert [n for n in notes if n.startswith("warning:")] == [
        "warning: neither file records metric directions (metrics JSON schema 1): the headline is taken as "
        "higher-is-better and the other metrics are shown, not gated"]
    assert any(r.regression and "AbsRel worse" in r.regression for r in rows)
    _, notes = compare_documents(old, _doc(REF, DepthEvaluator.directions), Thresholds())
    assert [n for n in notes if n.startswith("warning:")] == [
        "warning: OLD records no metric directions (metrics JSON schema 1): NEW's are used"]
