"""`--cfg-options` that would silently do nothing: overrides a more specific rule shadows.

An override is only worth typing if it changes what the run does. Tolerances resolve
most-specific-first (pair+output, output glob, pair, `tolerance`, `default`; see
`awml_harness/verification/tolerance.py`), a backend's own `metric_tolerance` beats the global
one, and the command-line `--work-dir` / `--device` beat the keys they set. Where an
override lands on a level that such a rule overrules, the user is told which rule wins,
so `verification.default.atol=1e-6` never passes quietly because `outputs` decided.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from awml_harness.config.schema import DeployConfig
from awml_harness.verification.tolerance import FP16_TOLERANCE, output_matches


@dataclass(frozen=True)
class Shadowed:
    """One override (`item`, as typed) and the rules that decide instead of it."""

    item: str
    key: str
    rules: tuple[str, ...]
    where: str  # what the rules decide: "every output", "the outputs they match", ...

    def message(self, config_id: str) -> str:
        shown = ", ".join(self.rules[:4]) + (f" and {len(self.rules) - 4} more" if len(self.rules) > 4 else "")
        return (f"--cfg-options {self.item!r} does not apply to {config_id} for {self.where}: "
                f"{shown} {'decides' if len(self.rules) == 1 else 'decide'} there instead "
                f"(change that rule, or remove it, for the override to take effect)")


def _globs_overlap(a: str, b: str) -> bool:
    return a == b or output_matches(a, b) or output_matches(b, a)


def _tolerance_rules(cfg: DeployConfig, parts: list[str]) -> tuple[list[str], str]:
    """The rules more specific than the verification level `parts` names."""
    ver = cfg.verification
    pair_outputs = [f"verification.pair_outputs[{p!r}][{o!r}]" for p, table in ver.pair_outputs.items() for o in table]
    outputs = [f"verification.outputs[{o!r}]" for o in ver.outputs]
    pairs = [f"verification.pairs[{p!r}]" for p in ver.pairs]
    head = parts[1] if len(parts) > 1 else ""
    if head == "default":
        rules = pair_outputs + outputs + pairs
        if ver.tolerance is not None:
            return ["verification.tolerance", *rules], "every output and pair (verification.tolerance is set)"
        return rules, "the outputs and pairs those rules match"
    if head == "tolerance":
        return pair_outputs + outputs + pairs, "the outputs and pairs those rules match"
    if head == "pairs" and len(parts) > 2:
        pair = parts[2]
        same_pair = [f"verification.pair_outputs[{pair!r}][{o!r}]" for o in ver.pair_outputs.get(pair, {})]
        return same_pair + outputs, f"the outputs those rules match in pair {pair!r}"
    if head == "outputs" and len(parts) > 2:
        pattern = parts[2]
        rules = [f"verification.pair_outputs[{p!r}][{o!r}]" for p, table in ver.pair_outputs.items()
                 for o in table if _globs_overlap(o, pattern)]
        return rules, f"output {pattern!r} in those pairs"
    return [], ""


def _override_key(item: str) -> tuple[str, list[str]]:
    from awml_harness.config.load import scoped

    _, body = scoped(item)
    key = body.partition("=")[0].strip()
    return key, key.split(".")


def shadowed_overrides(cfg: DeployConfig, overrides: Sequence[str], *, work_dir: str | None = None,
                       device: str | None = None) -> list[Shadowed]:
    """Every override in `overrides` that a more specific rule of `cfg` overrules somewhere."""
    from awml_harness.config.load import scoped

    names = {cfg.project, cfg.id, Path(cfg.source).stem if cfg.source else cfg.project}
    out: list[Shadowed] = []
    for item in overrides:
        scope, _ = scoped(item)
        if scope is not None and scope not in names:
            continue
        key, parts = _override_key(item)
        rules: list[str] = []
        where = ""
        if parts[0] == "verification":
            rules, where = _tolerance_rules(cfg, parts)
        elif parts[:2] == ["evaluation", "metric_tolerance"] and len(parts) > 2:
            metric = parts[2]
            rules = [f"evaluation.backends[{name!r}].metric_tolerance[{metric!r}]"
                     for name, be in cfg.evaluation.backends.items() if metric in be.metric_tolerance]
            where = f"metric {metric!r} on those backends"
        elif key == "export.work_dir" and work_dir:
            rules, where = [f"--work-dir {work_dir}"], "the artifact folder"
        elif (device and parts[:2] == ["evaluation", "backends"] and len(parts) == 4 and parts[3] == "device"
              and not parts[2].startswith("tensorrt")):
            rules, where = [f"--device {device}"], f"backend {parts[2]!r}"
        if rules:
            out.append(Shadowed(item=item, key=key, rules=tuple(rules), where=where))
        elif parts[0] == "verification" and _below_fp16_floor(cfg, item, parts):
            out.append(Shadowed(item=item, key=key, where="its fp16 scenarios", rules=(
                f"the fp16 floor (atol = rtol = {FP16_TOLERANCE.atol:g}; a rule naming the output, or a "
                "pairs key naming the fp16 side such as 'pytorch->onnx-fp16', is taken as written)",)))
    return out


def _below_fp16_floor(cfg: DeployConfig, item: str, parts: list[str]) -> bool:
    """A tolerance override below the fp16 floor, in a config that verifies an fp16 side,
    on a rule the floor lifts there: `default`, `tolerance`, or a `pairs` entry of the plain
    backend pair (verification/tolerance.py). Rules that name an output, or the fp16 pair,
    are taken as written."""
    from awml_harness.config.load import parse_override, scoped

    fp16 = [sc for sc in cfg.scenarios() if "fp16" in (sc.ref_precision, sc.test_precision)]
    if not fp16 or len(parts) < 2 or parts[1] not in ("default", "tolerance", "pairs"):
        return False
    if parts[1] == "pairs" and len(parts) > 2 and "fp16" in parts[2]:
        return False  # names the fp16 side: taken as written
    _, value = parse_override(scoped(item)[1])
    numbers = [value.get("atol"), value.get("rtol")] if isinstance(value, dict) else [value]
    return any(isinstance(n, (int, float)) and not isinstance(n, bool) and n < FP16_TOLERANCE.atol for n in numbers)
