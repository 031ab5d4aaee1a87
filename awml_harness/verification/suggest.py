"""Tolerance suggestions: what verification actually needed, ready to paste.

For every scenario pair and output, the (atol, rtol) pair that passes every element seen
over all verified samples with the least looseness (the smallest mean allowed band,
`verification.tolerance.fit`, from each output's difference envelope), times a headroom
factor, rounded up. An output whose magnitude spans 1 to 40 gets most of its allowance
from rtol, so it is not held loosely at its small values. The largest absolute and
relative differences are noted beside it. A metrics JSON without envelopes (an older
run) gets the largest absolute difference as atol, rtol 0.

Every suggestion is printed twice, both forms pasteable as they stand: a deploy-config
fragment and `--cfg-options` items (which accept `dict(...)` of literals). Output names
are the comparison's leaf names (`heatmap`, `aux[0]`): tolerance patterns take brackets
literally, so the name printed is the name matched.
"""

from __future__ import annotations

import math
import shlex
import time
from pathlib import Path
from typing import Any

#: suggested atol = the least atol that passes x this (one sample seen: leave some room)
HINT_HEADROOM = 1.5


def round_up(value: float, digits: int = 2) -> float:
    """`value` to `digits` significant digits, never below it (a suggestion must still pass)."""
    if value <= 0 or not math.isfinite(value):
        return 0.0 if value <= 0 else value
    scale = 10.0 ** (math.floor(math.log10(value)) - digits + 1)
    return float(f"{math.ceil(value / scale - 1e-9) * scale:.{digits}g}")


def fitted(envelope: Any, mean_abs_ref: float, max_abs: float, headroom: float) -> tuple[float, float]:
    """(atol, rtol) with headroom from an envelope; atol = headroom x max |diff| without one."""
    from awml_harness.verification.tolerance import fit

    if not envelope:
        return round_up(max(max_abs * headroom, 1e-12)), 0.0
    atol, rtol = fit(envelope, mean_abs_ref)
    return round_up(atol * headroom), round_up(rtol * headroom)


def _rule(atol: float, rtol: float, share: float | None = None) -> str:
    tail = "" if share is None else f", max_mismatch_share={share!r}"
    return f"dict(atol={atol!r}, rtol={rtol!r}{tail})"


def cfg_option(pair: str, name: str, atol: float, rtol: float, scope: str = "", share: float | None = None) -> str:
    """One `--cfg-options` item that sets a pair+output tolerance, shell-quoted. A name
    with a dot cannot be a key path segment; the pair's whole table is set instead.
    `scope` (a config file stem) limits it to one config of a multi-config run."""
    rule = _rule(atol, rtol, share)
    head = f"{scope}:" if scope else ""
    if "." in name or "." in pair:
        return shlex.quote(f"{head}verification.pair_outputs.{pair}={{{name!r}: {rule}}}")
    return shlex.quote(f"{head}verification.pair_outputs.{pair}.{name}={rule}")


def hint_pair(ref_label: str, test_label: str, ref_precision: str = "fp32") -> str:
    """The `pair_outputs` key a suggestion uses: backend names (`pytorch->onnx-fp16`)
    unless the reference itself runs reduced precision, then the full labels."""
    if ref_precision != "fp32":
        return f"{ref_label}->{test_label}"
    return f"{ref_label.split(':')[0]}->{test_label.split(':')[0]}"


def verification_hint(result: Any, pair: str) -> str:
    """The rules that would have passed this comparison, as a config line and as
    `--cfg-options`, and where a value pooled over every sample comes from."""
    rules: dict[str, tuple[float, float, float | None]] = {}
    for leaf in result.failures:
        if leaf.problem or leaf.min_atol == float("inf"):
            continue
        name = leaf.path.rsplit("/", 1)[-1]
        if leaf.max_mismatch_share > 0:
            # a discrete output governed by a share: a wider atol means nothing there, the
            # share that would have passed does (capped at 1)
            share = min(1.0, float(f"{leaf.mismatch_share * HINT_HEADROOM:.3g}"))
            if name in rules and rules[name][2] is not None:
                share = max(share, rules[name][2])  # type: ignore[type-var]
            rules[name] = (float(leaf.atol), float(leaf.rtol), share)
            continue
        atol, rtol = fitted(leaf.envelope, leaf.mean_abs_ref, leaf.max_abs_diff, HINT_HEADROOM)
        if name in rules:
            atol, rtol = max(atol, rules[name][0]), max(rtol, rules[name][1])
        rules[name] = (atol, rtol, None)
    if not rules:
        return "  -> structure/shape/dtype or NaN/Inf differences: no tolerance fixes these"
    table = ", ".join(f"{name!r}: {_rule(*rule)}" for name, rule in rules.items())
    options = " ".join(cfg_option(pair, name, rule[0], rule[1], share=rule[2]) for name, rule in rules.items())
    return (f"  -> if this difference is acceptable, in the deploy config: "
            f"verification = dict(pair_outputs={{{pair!r}: {{{table}}}}})\n"
            f"     or on the command line: --cfg-options {options}\n"
            f"     (this sample only; --awml-suggest-tolerances gives values pooled over every sample and pair)")


def suggest_tolerances(doc: dict[str, Any], headroom: float) -> str:
    lines = [f"# tolerances suggested by awml-harness on {time.strftime('%Y-%m-%d %H:%M')} "
             f"(the least atol + rtol pair that passed every element seen, x {headroom:g}); paste into the deploy config"]
    for cid, entry in doc.get("projects", {}).items():
        pairs: dict[str, dict[str, dict[str, Any]]] = {}
        counts: dict[str, int] = {}
        for res in entry["verification"]["results"]:
            if res["scenario"].startswith("golden:"):
                continue
            pair = f"{res['ref'].split(':')[0]}->{res['test'].split(':')[0]}"
            counts[pair] = counts.get(pair, 0) + 1
            for leaf in res["leaves"]:
                if leaf["problem"] or not isinstance(leaf["max_abs_diff"], (int, float)):
                    continue
                name = leaf["path"].rsplit("/", 1)[-1]
                seen = pairs.setdefault(pair, {}).setdefault(
                    name, {"abs": 0.0, "rel": 0.0, "points": [], "ref_sum": 0.0, "numel": 0, "complete": True})
                seen["abs"] = max(seen["abs"], leaf["max_abs_diff"])
                rel = leaf["max_rel_diff"]
                if isinstance(rel, (int, float)):
                    seen["rel"] = max(seen["rel"], rel)
                if leaf.get("envelope") is None:
                    seen["complete"] = False  # a run before envelopes were recorded
                seen["points"] += leaf.get("envelope") or []
                seen["ref_sum"] += float(leaf.get("mean_abs_ref", 0.0)) * int(leaf.get("numel", 0))
                seen["numel"] += int(leaf.get("numel", 0))
        if not pairs:
            continue
        rules = {pair: {name: _pooled(seen, headroom) for name, seen in sorted(outputs.items())}
                 for pair, outputs in sorted(pairs.items())}
        lines.append(f"# {cid} ({entry['config']})")
        lines.append("verification = dict(")
        lines.append("    pair_outputs={")
        for pair, outputs in rules.items():
            lines.append(f"        {pair!r}: {{  # from {counts[pair]} sample(s)")
            for name, (atol, rtol) in outputs.items():
                seen = pairs[pair][name]
                lines.append(f"            {name!r}: {_rule(atol, rtol)},  "
                             f"# max abs {seen['abs']:.3g}, max rel {seen['rel']:.3g}")
            lines.append("        },")
        lines.append("    },")
        lines.append(")")
        scope = Path(entry["config"]).stem if len(doc["projects"]) > 1 else ""
        options = [cfg_option(pair, name, atol, rtol, scope)
                   for pair, outputs in rules.items() for name, (atol, rtol) in outputs.items()]
        lines.append(f"# the same on the command line: --cfg-options {' '.join(options)}")
    return "\n".join(lines) + "\n"


def _pooled(seen: dict[str, Any], headroom: float) -> tuple[float, float]:
    """One output of one pair over every sample: the union of the samples' envelopes."""
    mean = seen["ref_sum"] / seen["numel"] if seen["numel"] else 0.0
    points = seen["points"] if seen["complete"] else []
    return fitted(points, mean, seen["abs"], headroom)
