"""The metric gate (awml_harness.evaluation.delta_failures and the config's tolerance
lookup): delta sign, per-metric and per-backend tolerances, NaN and missing metrics."""

from __future__ import annotations

import math

import pytest

from awml_harness.config.schema import EvalBackend, EvaluationConfig, MetricTolerance
from awml_harness.evaluation.gate import judge_metrics


def delta_failures(metrics, reference, tolerance, directions=None):
    verdict = judge_metrics(metrics, reference, tolerance, directions)
    return verdict.deltas, verdict.failures


def test_delta_is_backend_minus_reference():
    deltas, failures = delta_failures({"mAP": 0.50}, {"mAP": 0.55}, {"*": 0.1})
    assert deltas["mAP"] == pytest.approx(-0.05) and failures == []
    deltas, _ = delta_failures({"mAP": 0.60}, {"mAP": 0.55}, {"*": 0.1})
    assert deltas["mAP"] == pytest.approx(0.05)


@pytest.mark.parametrize("test_value", [0.44, 0.66])
def test_a_drop_and_a_rise_beyond_tolerance_both_fail(test_value):
    deltas, failures = delta_failures({"mAP": test_value}, {"mAP": 0.55}, {"*": 0.1})
    assert len(failures) == 1 and failures[0].startswith("  - mAP: ")
    sign = "+" if test_value > 0.55 else "-"
    assert f"delta {sign}0.11" in failures[0] and "allowed 0.1; key evaluation.metric_tolerance.mAP" in failures[0]


def test_tolerance_boundary_is_inclusive():
    assert delta_failures({"a": 0.75}, {"a": 0.5}, {"a": 0.25})[1] == []
    assert len(delta_failures({"a": 0.7501}, {"a": 0.5}, {"a": 0.25})[1]) == 1


def test_a_metric_named_in_the_tolerance_beats_the_wildcard():
    metrics, ref = {"mAP": 0.50, "NDS": 0.50}, {"mAP": 0.55, "NDS": 0.55}
    _, failures = delta_failures(metrics, ref, {"*": 0.01, "mAP": 0.1})
    assert [f.split(":")[0] for f in failures] == ["  - NDS"]
    _, failures = delta_failures(metrics, ref, {"mAP": 0.01})  # no wildcard: NDS is not gated
    assert [f.split(":")[0] for f in failures] == ["  - mAP"]


def test_backend_tolerance_overrides_the_global_one():
    ev = EvaluationConfig(backends={"pytorch": EvalBackend(), "onnx-fp16": EvalBackend(metric_tolerance={"*": 0.05})},
                          metric_tolerance={"*": 0.02, "mAP": 0.03})
    assert ev.tolerance_for("onnx-fp16") == {"*": MetricTolerance(atol=0.05), "mAP": MetricTolerance(atol=0.03)}
    assert ev.tolerance_for("pytorch") == {"*": MetricTolerance(atol=0.02), "mAP": MetricTolerance(atol=0.03)}
    metrics, ref = {"NDS": 0.51, "mAP": 0.5}, {"NDS": 0.55, "mAP": 0.5}
    assert delta_failures(metrics, ref, ev.tolerance_for("onnx-fp16"))[1] == []  # 0.04 <= 0.05
    _, failures = delta_failures(metrics, ref, ev.tolerance_for("pytorch"))  # 0.04 > 0.02
    assert [f.split(":")[0] for f in failures] == ["  - NDS"]


@pytest.mark.parametrize(("test", "ref"), [(math.nan, 0.5), (0.5, math.nan), (math.nan, math.nan), (math.inf, 0.5)])
def test_a_non_finite_metric_never_passes(test, ref):
    deltas, failures = delta_failures({"mAP": test}, {"mAP": ref}, {"*": 1e9})
    assert len(failures) == 1 and "non-finite metric never passes" in failures[0]


def test_a_metric_missing_on_the_backend_fails():
    _, failures = delta_failures({"mAP": 0.5}, {"mAP": 0.5, "NDS": 0.4}, {"*": 0.1})
    assert failures == ["  - NDS: missing on this backend (reference 0.4; key evaluation.metric_tolerance.NDS)"]
    _, failures = delta_failures({"mAP": 0.5, "NDS": None}, {"mAP": 0.5, "NDS": 0.4}, {"*": 0.1})
    assert len(failures) == 1 and "NDS: missing on this backend" in failures[0]


def test_a_tolerance_for_a_metric_nobody_reports_fails():
    _, failures = delta_failures({"mAP": 0.5}, {"mAP": 0.5}, {"*": 0.1, "mAPP": 0.1})
    assert len(failures) == 1 and "mAPP: neither this backend nor the reference reports it" in failures[0]
    assert "metrics: mAP" in failures[0]


def test_a_named_metric_only_the_backend_reports_fails():
    _, failures = delta_failures({"mAP": 0.5, "x": 1.0}, {"mAP": 0.5}, {"x": 0.1})
    assert len(failures) == 1 and "x: 1 but the reference does not report it" in failures[0]
