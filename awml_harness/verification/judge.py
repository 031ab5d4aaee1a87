"""The verification verdict of one scenario x sample: raw outputs leaf by leaf under the
tolerance policy, and the postprocessed boxes matched box to box where the project has
them. One judgement for the verification suite, the shape sweep and the automatic
precision searches (which receive it as their criterion), so "passes verification"
means the same wherever it is asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from awml_harness.compare import CompareResult, compare
from awml_harness.config.schema import Scenario, VerificationConfig
from awml_harness.matching import Detections, MatchResult, match_detections, match_settings
from awml_harness.verification.tolerance import detection_for, resolve

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig


@dataclass(frozen=True)
class Verdict:
    """What one comparison found; `passed` is the whole verdict."""

    scenario: Scenario
    outputs: CompareResult
    rules: Mapping[str, str]  # leaf path -> the config rule whose tolerance held it
    detections: MatchResult | None = None

    @property
    def passed(self) -> bool:
        return self.outputs.passed and (self.detections is None or self.detections.passed)

    def messages(self, context: str, hint: bool = True) -> list[str]:
        """The failure lines for a CI log, each with what to change where that helps."""
        out = []
        if not self.outputs.passed:
            out.append(self.outputs.message(context, hint=self.hint() if hint else ""))
        if self.detections is not None and not self.detections.passed:
            out.append(f"{context}: " + self.detections.message()
                       + "\n  -> if the difference is acceptable, raise verification.detection.score_atol / box_atol "
                         "(or this pair's verification.pair_detection entry)")
        return out

    def summary(self) -> str:
        """One line for a search's log: the first failing part."""
        return self.messages("", hint=False)[0].lstrip(": ") if not self.passed else ""

    def hint(self) -> str:
        """The config line and --cfg-options that would have passed, ready to paste."""
        from awml_harness.verification.suggest import hint_pair, verification_hint

        sc = self.scenario
        return verification_hint(self.outputs, hint_pair(sc.ref.label, sc.test.label, sc.ref_precision))

    def leaves(self) -> list[dict[str, Any]]:
        return [{**leaf.as_dict(), "rule": self.rules.get(leaf.path, "")} for leaf in self.outputs.leaves]

    def detections_record(self) -> dict[str, Any] | None:
        m = self.detections
        if m is None:
            return None
        return {"passed": m.passed, "num_ref": m.num_ref, "num_test": m.num_test, "matched": m.matched,
                "lost": m.unmatched_ref, "extra": m.unmatched_test, "borderline": m.borderline,
                "max_score_delta": m.max_score_delta, "max_box_delta": m.max_box_delta}


def judge(ver: VerificationConfig, scenario: Scenario, ref: Any, test: Any,
          ref_detections: Detections | None = None, test_detections: Detections | None = None,
          match_defaults: Mapping[str, Any] | None = None) -> Verdict:
    """Judge `test` against `ref` (nested raw outputs) under `ver`'s tolerances for
    `scenario`; with both sides' detections (and the pair's detection matching enabled:
    `verification.pair_detection` for the pair, else `verification.detection`), the
    boxes are matched too, under the project's defaults (`match_defaults`) and the config's."""
    rules: dict[str, str] = {}

    def tolerance(path: str) -> tuple[float, float, float]:
        found = resolve(ver, scenario, path)
        rules[path or "<root>"] = found.rule
        return found.as_tuple()

    outputs = compare(ref, test, tolerance)
    match = None
    detection = detection_for(ver, scenario)
    if ref_detections is not None and test_detections is not None and detection.enabled:
        match = match_detections(ref_detections, test_detections, **match_settings(match_defaults or {}, detection))
    return Verdict(scenario, outputs, rules, match)


def run_status(cfg: DeployConfig, results: list[dict[str, Any]]) -> tuple[str, str | None]:
    """Whether this run compared a deployed backend (ONNX, fp16 ONNX, TensorRT) with a
    reference: "verified", "failed", "unverified" (with the reason), or "not-deployed"
    (export.mode "none" without an ONNX: only PyTorch ran)."""
    deployed = [r for r in results if not str(r.get("test", "")).startswith("pytorch")]
    if any(not r["passed"] for r in deployed):
        return "failed", None
    if deployed:
        return "verified", None
    mode, handed = cfg.export.mode, cfg.export.onnx_path is not None
    if mode == "none" and not handed:
        return "not-deployed", "export.mode='none' without export.onnx_path: only PyTorch ran"
    if not cfg.verification.enabled:
        return "unverified", "verification.enabled is False"
    if not any(s.test_backend.value != "pytorch" for s in cfg.scenarios()):
        reason = f"verification.scenarios has no scenario for export.mode={mode!r} that tests a deployed backend"
        if handed and cfg.checkpoint_path is None:
            reason += "; an export.onnx_path is compared with PyTorch only when checkpoint_path is set"
        return "unverified", reason
    return "unverified", "no verification test of a deployed backend ran (skipped, deselected, or failed before comparing)"
