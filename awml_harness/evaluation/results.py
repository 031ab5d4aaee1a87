"""Typed results of an evaluation, and the one place a backend's result is judged.

A pass (serial), the merge of xdist chunks on the controller and `awml merge` of
`--awml-shard` files all end with `judge_backends`: the metric gate against the
reference, the "no detections at all" note, the reference's absence, each said once.
The suites record what it returns and fail on it; the report renders the record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from awml_harness.evaluation.gate import GateVerdict, judge_metrics

OK, UNAVAILABLE, ERROR, NO_REFERENCE = "ok", "unavailable", "error", "no-reference"


@dataclass(frozen=True)
class BackendResult:
    """One backend over the evaluated samples, and (once judged) its gate verdict."""

    name: str
    device: str
    precision: str
    status: str = OK  # ok | unavailable | error | no-reference
    metrics: Mapping[str, Any] | None = None
    num_samples: int = 0
    seconds: float = 0.0
    memory: Mapping[str, Any] | None = None
    reason: str | None = None  # why unavailable / what failed (error) / why no reference
    empty: int = 0  # samples on which a detection project found no box at all
    headline: str | None = None
    directions: Mapping[str, str] | None = None  # the evaluator's declared table
    gate: GateVerdict | None = None
    note: str | None = None  # a warning the suite raises (every sample empty)
    calibration: str | None = None  # an int8 backend: what its graphs were calibrated on

    @classmethod
    def of_pass(cls, name: str, device: str, precision: str, entry: Mapping[str, Any],
                evaluator: type | None = None) -> BackendResult:
        """A backend as an evaluation pass left it (seconds, memory, empty samples, and
        "unavailable"/"error" when it could not run), before its metrics are computed."""
        base = cls(name, device, precision, seconds=entry.get("seconds", 0.0), memory=entry.get("memory"),
                   empty=entry.get("empty", 0), headline=getattr(evaluator, "headline", None),
                   directions=getattr(evaluator, "directions", None), calibration=entry.get("calibration"))
        if "unavailable" in entry:
            return replace(base, status=UNAVAILABLE, reason=entry["unavailable"])
        if "error" in entry:
            return replace(base, status=ERROR, reason=entry["error"])
        return base

    @property
    def passed(self) -> bool:
        return self.status == OK and (self.gate is None or self.gate.passed)

    @property
    def failures(self) -> list[str]:
        return self.gate.failures if self.gate is not None else []

    def record(self) -> dict[str, Any]:
        """The backend as the metrics JSON keeps it (`projects.<id>.evaluation.backends.<name>`)."""
        out: dict[str, Any] = {"device": self.device, "precision": self.precision, "status": self.status}
        if self.headline is not None:
            out["headline"] = self.headline
        if self.status in (UNAVAILABLE, NO_REFERENCE) and self.reason:
            out["reason"] = self.reason
        if self.status == ERROR:
            out["error"] = self.reason
        if self.metrics is not None:
            out.update(metrics=dict(self.metrics), num_samples=self.num_samples)
        if self.status in (OK, NO_REFERENCE, ERROR):
            out["seconds"] = self.seconds
            out["memory"] = dict(self.memory) if self.memory else None
        if self.gate is not None:
            out.update(deltas=self.gate.deltas, gate=self.gate.as_dict(), passed=self.gate.passed,
                       directions=self.gate.directions)
        if self.note is not None:
            out["note"] = self.note
        if self.calibration is not None:
            out["calibration"] = self.calibration
        return out


def judge_backends(results: Mapping[str, BackendResult], reference: str,
                   tolerance: Callable[[str], Mapping[str, Any]]) -> dict[str, BackendResult]:
    """Every backend's result with the gate applied against `reference`'s metrics
    (`tolerance(name)`: that backend's metric tolerances)."""
    ref = results.get(reference)
    out: dict[str, BackendResult] = {}
    for name, res in results.items():
        if res.status != OK:
            out[name] = res
            continue
        note = None
        if res.num_samples and res.empty == res.num_samples:
            note = (f"no detections on any of the {res.num_samples} samples, so every metric is 0; check the score "
                    "threshold and the backend's raw outputs (test_verification)")
        if ref is None or ref.status != OK or ref.metrics is None:
            why = "not configured" if ref is None else (ref.reason or ref.status)
            out[name] = replace(res, status=NO_REFERENCE, note=note,
                                reason=f"reference backend {reference!r} has no metrics ({why}); cannot compute deltas")
            continue
        verdict = judge_metrics(res.metrics or {}, ref.metrics, tolerance(name), res.directions)
        out[name] = replace(res, gate=verdict, note=note)
    return out


def gate_message(label: str, reference: str, result: BackendResult) -> str:
    """The failure block of a backend the gate failed: a headline and a line per metric,
    and for an int8 backend what it was calibrated on (the first suspect of an int8 miss)."""
    lines = [f"{label}: metrics differ from {reference}:", *result.failures]
    if result.calibration:
        lines.append(f"  {result.calibration}\n  -> check the calibration (quantization.inputs, num_samples, "
                     "method) before the tolerance")
    return "\n".join(lines)
