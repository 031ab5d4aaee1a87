"""Tolerance suggestions: what verification actually needed, ready to paste.

For every scenario pair and output, the largest absolute difference seen over all
verified samples, times a headroom factor, becomes an absolute tolerance (rtol 0, so
the number means what it says). The largest relative difference is noted beside it.
"""

from __future__ import annotations

import time
from typing import Any


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
    return "\n".join(lines) + "\n"
