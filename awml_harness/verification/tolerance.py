"""Which tolerance holds an output of a scenario: one precedence, most specific first.

For output `path` of a scenario `ref -> test`, the first rule that matches decides:

1. `pair_outputs[pair][pattern]`, the pair keys tried most specific first: the labels
   (`pytorch:cpu->onnx-fp16:cpu`), the backends with the test side's precision
   (`pytorch->onnx-fp16`), the backends alone (`pytorch->onnx`);
2. `outputs[pattern]`;
3. `pairs[pair]`, pair keys in the same order;
4. `tolerance` (the seed's single number: an absolute bound, rtol 0);
5. `default`.

Reduced precision carries fewer digits, so an fp16 side has a floor (atol = rtol = 2e-2).
The floor is the least specific rule there is: it lifts the rules that name neither the
output nor the reduced-precision pair (a `pairs` entry of the plain backend pair,
`tolerance`, `default`), and never a rule that names the output (`outputs`,
`pair_outputs`) or the fp16 pair (`pairs['pytorch->onnx-fp16']`): those are taken as
written, so `outputs={"depth": dict(rtol=0.005)}` holds the fp16 graph to 0.5 % too.
Every leaf records the rule that decided it (`Resolved.rule`).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from awml_harness.config.schema import DetectionMatch, Scenario, Tolerance, VerificationConfig

#: the least a reduced-precision side is held to by a rule that names neither the output nor its pair.
#: int8: a 255-level grid per tensor, its error compounding over the layers (measured on the shipped
#: projects: up to ~6 % of an output's range); a project's own `pytorch->onnx-int8` rule is the real bound
PRECISION_FLOORS: Mapping[str, Tolerance] = {"fp16": Tolerance(atol=2e-2, rtol=2e-2),
                                             "int8": Tolerance(atol=1e-1, rtol=1e-1)}
FP16_TOLERANCE = PRECISION_FLOORS["fp16"]


@functools.lru_cache(maxsize=512)
def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """`*` any run of characters (`/` included), `?` one character, everything else
    literal: brackets name list items (`aux[0]`), they are no character class."""
    parts = (".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern)
    return re.compile("".join(parts), re.DOTALL)


def output_matches(pattern: str, path: str) -> bool:
    """Does a tolerance pattern name the output leaf at `path`? Paths are what the
    comparison reports: mapping keys joined by `/`, list items as `[i]` (`aux[0]/score`).
    The pattern is tried on the whole path and on every tail of it after a `/`, so
    `heatmap` names `graph/heatmap` and `aux[0]/score` names `head/aux[0]/score`."""
    regex = _pattern_regex(pattern)
    parts = path.split("/")
    return any(regex.fullmatch("/".join(parts[i:])) for i in range(len(parts)))


def pair_keys(scenario: Scenario) -> tuple[str, str, str]:
    """The keys a `pairs` / `pair_outputs` entry may use for `scenario`, most specific first."""
    return (f"{scenario.ref.label}->{scenario.test.label}",
            f"{scenario.ref_backend.value}->{scenario.test.label.split(':')[0]}",
            f"{scenario.ref_backend.value}->{scenario.test_backend.value}")


def detection_for(ver: VerificationConfig, scenario: Scenario) -> DetectionMatch:
    """The detection matching of a scenario: its most specific `pair_detection` entry (keys
    as `pair_keys`), else `verification.detection`."""
    return next((ver.pair_detection[k] for k in pair_keys(scenario) if k in ver.pair_detection), ver.detection)


def reduced_precision(scenario: Scenario) -> str | None:
    """The reduced precision a scenario involves (its floor applies), if any."""
    for precision in (scenario.test_precision, scenario.ref_precision):
        if precision in PRECISION_FLOORS:
            return precision
    return None


@dataclass(frozen=True)
class Resolved:
    """The tolerance in force for one output and the config rule it came from."""

    tolerance: Tolerance
    rule: str  # e.g. "verification.outputs['heatmap']", "verification.default + fp16 floor"
    lifted: bool = False  # a reduced-precision floor raised the rule's atol/rtol

    def as_tuple(self) -> tuple[float, float, float]:
        return self.tolerance.as_tuple()


def _lift(tol: Tolerance, floor: Tolerance | None) -> tuple[Tolerance, bool]:
    if floor is None:
        return tol, False
    lifted = Tolerance(atol=max(tol.atol, floor.atol), rtol=max(tol.rtol, floor.rtol),
                       max_mismatch_share=tol.max_mismatch_share)
    return lifted, lifted != tol


def resolve(ver: VerificationConfig, scenario: Scenario, path: str) -> Resolved:
    """The rule that holds output `path` of `scenario` (see the module docstring)."""
    keys = pair_keys(scenario)
    precision = reduced_precision(scenario)
    floor = PRECISION_FLOORS.get(precision) if precision else None
    # pair keys that name the reduced-precision side itself: their rules are taken as written
    naming = keys[:2] if precision else keys

    def by_glob(table: Mapping[str, Tolerance]) -> tuple[str, Tolerance] | None:
        for pattern, tol in table.items():
            if output_matches(pattern, path):
                return pattern, tol
        return None

    for key in keys:
        found = by_glob(ver.pair_outputs.get(key, {}))
        if found is not None:
            return Resolved(found[1], f"verification.pair_outputs[{key!r}][{found[0]!r}]")
    found = by_glob(ver.outputs)
    if found is not None:
        return Resolved(found[1], f"verification.outputs[{found[0]!r}]")
    for key in keys:
        if key in ver.pairs:
            if key in naming:
                return Resolved(ver.pairs[key], f"verification.pairs[{key!r}]")
            return _floored(ver.pairs[key], f"verification.pairs[{key!r}]", floor, precision)
    if ver.tolerance is not None:
        return _floored(Tolerance(atol=ver.tolerance, rtol=0.0), "verification.tolerance", floor, precision)
    return _floored(ver.default, "verification.default", floor, precision)


def _floored(tol: Tolerance, rule: str, floor: Tolerance | None, precision: str | None) -> Resolved:
    lifted, changed = _lift(tol, floor)
    return Resolved(lifted, f"{rule} + {precision} floor" if changed else rule, lifted=changed)


def tolerance_for(ver: VerificationConfig, scenario: Scenario, path: str) -> Tolerance:
    return resolve(ver, scenario, path).tolerance


def fit(envelope: Sequence[Sequence[float]], mean_abs_ref: float) -> tuple[float, float]:
    """The (atol, rtol) that passes every element the envelope covers with the least
    looseness, i.e. the smallest mean allowed band `atol + rtol * mean|ref|` over the
    observed elements, both >= 0.

    A linear program in two unknowns: the allowed band is a line above every point, so
    the optimum is pure atol, pure rtol, or one edge of the points' upper convex hull
    extended; each candidate is checked against every point."""
    from awml_harness.compare import upper_hull

    points = sorted((float(x), float(d)) for x, d in envelope if d > 0)
    if not points:
        return 0.0, 0.0
    hull = upper_hull(points)
    x = np.asarray([p[0] for p in points])
    d = np.asarray([p[1] for p in points])
    candidates = [(float(d.max()), 0.0)]
    if points[0][0] > 0:
        candidates.append((0.0, float((d / x).max())))
    for (x0, d0), (x1, d1) in zip(hull, hull[1:], strict=False):
        if x1 > x0:
            r = (d1 - d0) / (x1 - x0)
            if r >= 0 and d0 - r * x0 >= 0:
                candidates.append((d0 - r * x0, r))
    slack = 1e-12 * max(1.0, float(d.max()))
    feasible = [(a, r) for a, r in candidates if np.all(a + r * x >= d - slack)]
    return min(feasible, key=lambda c: c[0] + c[1] * mean_abs_ref)  # pure atol = max diff is always feasible
