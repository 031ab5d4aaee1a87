"""The metric gate: is a backend's task metric close enough to the reference's?

One judgement for every route: a serial run's evaluation test, the controller merging
xdist shards, and `awml merge` of `--awml-shard` files all call `judge_metrics`, and
`awml diff` reads the same directions to decide what "worse" means between two runs.

Every scalar metric has a direction, declared by its evaluator
(`Evaluator.directions`): "higher" or "lower" is better, or "none" for values that are
no quality at all (sample counts, pixel counts), which are reported but never gated. A
metric the evaluator does not declare is "undeclared": it is gated both ways, so a new
project never has a worse value pass because the harness guessed its direction.

A tolerance (`evaluation.metric_tolerance`, per backend in
`evaluation.backends.<name>.metric_tolerance`) allows `atol + rtol * |reference|` of
change; `one_sided=True` lets any improvement pass and fails only a worse value beyond
that. A plain number is `atol` (two-sided), as before.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from awml_harness.config.schema import MetricTolerance, as_metric_tolerance
from awml_harness.directions import HIGHER, LOWER, NONE, direction_of


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def metric_deltas(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float]:
    ref = scalar_metrics(reference)
    return {k: v - ref[k] for k, v in scalar_metrics(metrics).items() if k in ref}


def worsening(delta: float, direction: str) -> float:
    """How much worse a change is (negative: better); undeclared metrics count any change."""
    if direction == HIGHER:
        return -delta
    if direction == LOWER:
        return delta
    return abs(delta)


def change_word(delta: float, direction: str) -> str:
    if delta == 0:
        return "unchanged"
    if direction in (HIGHER, LOWER):
        return "worse" if worsening(delta, direction) > 0 else "better"
    return "changed"


@dataclass(frozen=True)
class MetricCheck:
    """One metric of one backend against the reference."""

    metric: str
    direction: str
    value: float | None
    reference: float | None
    gated: bool
    passed: bool
    allowed: float | None = None  # the allowed change in the metric's units (atol + rtol * |ref|)
    rule: str = ""  # the tolerance as written, e.g. "0.02" or "rtol=0.05, one-sided"
    one_sided: bool = False
    message: str = ""  # the failure line; empty when passed

    @property
    def delta(self) -> float | None:
        if self.value is None or self.reference is None:
            return None
        return self.value - self.reference

    def as_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "gated": self.gated, "passed": self.passed, "allowed": self.allowed,
                "rule": self.rule, "one_sided": self.one_sided}


@dataclass(frozen=True)
class GateVerdict:
    """Every scalar metric's check; the failures are the gated ones that did not pass."""

    checks: tuple[MetricCheck, ...]

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def deltas(self) -> dict[str, float]:
        return {c.metric: c.delta for c in self.checks if c.delta is not None}

    @property
    def failures(self) -> list[str]:
        return [c.message for c in self.checks if not c.passed]

    @property
    def directions(self) -> dict[str, str]:
        return {c.metric: c.direction for c in self.checks}

    def as_dict(self) -> dict[str, Any]:
        """What the metrics JSON keeps per backend: `gate.<metric>` (direction, allowed, passed)."""
        return {c.metric: c.as_dict() for c in self.checks}


def _pct(delta: float, ref: float) -> str:
    return f" = {100 * delta / abs(ref):+.1f} %" if ref else ""


def _check(metric: str, test: Mapping[str, float], ref: Mapping[str, float], tol: MetricTolerance | None,
           direction: str, gated: bool) -> MetricCheck:
    key = f"key evaluation.metric_tolerance.{metric}"
    value, reference = test.get(metric), ref.get(metric)
    base = dict(metric=metric, direction=direction, value=value, reference=reference, gated=gated,
                rule=tol.describe() if tol is not None else "", one_sided=bool(tol and tol.one_sided))
    if not gated:
        return MetricCheck(passed=True, **base)  # type: ignore[arg-type]

    def fail(text: str, allowed: float | None = None) -> MetricCheck:
        return MetricCheck(passed=False, allowed=allowed, message=f"  - {metric}: {text}", **base)  # type: ignore[arg-type]

    if value is None and reference is None:
        return fail(f"neither this backend nor the reference reports it ({key} names a metric that does not "
                    f"exist; metrics: {', '.join(sorted(ref)) or 'none'})")
    if value is None:
        return fail(f"missing on this backend (reference {reference:.6g}; {key})")
    if reference is None:
        return fail(f"{value:.6g} but the reference does not report it, so no delta can be checked ({key})")
    if not (math.isfinite(value) and math.isfinite(reference)):
        return fail(f"{value:.6g} vs reference {reference:.6g}: a non-finite metric never passes ({key})")
    assert tol is not None
    allowed = tol.allowed(reference)
    delta = value - reference
    if tol.one_sided and direction in (HIGHER, LOWER):
        beyond = worsening(delta, direction) > allowed + 1e-12
    else:  # two-sided, and a one-sided rule on a metric whose direction nobody declared
        beyond = abs(delta) > allowed + 1e-12
    if not beyond:
        return MetricCheck(passed=True, allowed=allowed, **base)  # type: ignore[arg-type]
    word = change_word(delta, direction)
    sided = ""
    if tol.one_sided and direction not in (HIGHER, LOWER):
        sided = "; one_sided needs a direction and the evaluator declares none, so both ways are gated"
    dirnote = {HIGHER: "higher is better", LOWER: "lower is better"}.get(direction, "direction undeclared")
    return fail(f"{value:.6g} vs reference {reference:.6g} ({word} by {abs(delta):.6g}: delta {delta:+.6g}"
                f"{_pct(delta, reference)}, {dirnote}; allowed {tol.describe()}{sided}; {key})", allowed)


def judge_metrics(metrics: Mapping[str, Any], reference: Mapping[str, Any],
                  tolerance: Mapping[str, float | MetricTolerance],
                  directions: Mapping[str, str] | None = None) -> GateVerdict:
    """Every scalar metric of either side, and whether the backend passes the gate.

    Gated: every metric `tolerance` names, and with "*" every scalar metric of the
    reference whose direction is not "none". A gated metric fails when it changed beyond
    its tolerance (only for the worse with `one_sided`), when either side is NaN/Inf, or
    when the backend (or the reference) does not report it: a metric that vanishes is a
    broken evaluation, never a pass. `directions` is the evaluator's declared table."""
    declared = directions or {}
    test, ref = scalar_metrics(metrics), scalar_metrics(reference)
    rules = {k: as_metric_tolerance(v) for k, v in tolerance.items()}
    wildcard = rules.get("*")
    named = [k for k in rules if k != "*"]
    checks = []
    for metric in sorted(dict.fromkeys([*ref, *test, *named])):
        direction = direction_of(metric, declared)
        explicit = metric in rules
        gated = explicit or (wildcard is not None and metric in ref and direction != NONE)
        checks.append(_check(metric, test, ref, rules.get(metric, wildcard), direction, gated))
    return GateVerdict(tuple(checks))
