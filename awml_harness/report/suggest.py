"""Tolerance suggestions: what verification actually needed, ready to paste.

For every scenario pair and output, the largest absolute difference seen over all
verified samples, times a headroom factor, becomes an absolute tolerance (rtol 0, so
the number means what it says). The largest relative difference is noted beside it.

Every suggestion is printed twice, both forms pasteable as they stand: a deploy-config
fragment and `--cfg-options` items (which accept `dict(...)` of literals). Output names
are the comparison's leaf names (`heatmap`, `aux[0]`): tolerance patterns take brackets
literally, so the name printed is the name matched.
"""

from __future__ import annotations

import shlex
import time
from pathlib import Path
from typing import Any

#: suggested atol = the least atol that passes x this (one sample seen: leave some room)
HINT_HEADROOM = 1.5


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
        atol = float(f"{leaf.min_atol * HINT_HEADROOM:.3g}")
        if name in rules:
            atol = max(atol, rules[name][0])
        rules[name] = (atol, float(leaf.rtol), None)
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
             f"(observed max |diff| x {headroom:g}); paste into the deploy config"]
    for cid, entry in doc.get("projects", {}).items():
        pairs: dict[str, dict[str, dict[str, float]]] = {}
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
                seen = pairs.setdefault(pair, {}).setdefault(name, {"abs": 0.0, "rel": 0.0})
                seen["abs"] = max(seen["abs"], leaf["max_abs_diff"])
                rel = leaf["max_rel_diff"]
                if isinstance(rel, (int, float)):
                    seen["rel"] = max(seen["rel"], rel)
        if not pairs:
            continue
        lines.append(f"# {cid} ({entry['config']})")
        lines.append("verification = dict(")
        lines.append("    pair_outputs={")
        for pair, outputs in sorted(pairs.items()):
            lines.append(f"        {pair!r}: {{  # from {counts[pair]} sample(s)")
            for name, seen in sorted(outputs.items()):
                atol = float(f"{max(seen['abs'] * headroom, 1e-12):.2g}")
                lines.append(f"            {name!r}: dict(atol={atol!r}, rtol=0.0),  "
                             f"# max abs {seen['abs']:.3g}, max rel {seen['rel']:.3g}")
            lines.append("        },")
        lines.append("    },")
        lines.append(")")
        scope = Path(entry["config"]).stem if len(doc["projects"]) > 1 else ""
        options = [cfg_option(pair, name, float(f"{max(seen['abs'] * headroom, 1e-12):.2g}"), 0.0, scope)
                   for pair, outputs in sorted(pairs.items()) for name, seen in sorted(outputs.items())]
        lines.append(f"# the same on the command line: --cfg-options {' '.join(options)}")
    return "\n".join(lines) + "\n"
