"""The profiles of every backend of a config joined by ONNX node (assembled, nothing judged).

Every backend's record has a cell for each node of the fp32 ONNX graph (rows.py), so the
joined table lists the same nodes for every backend. Rows are ordered by their largest
time on any backend: a node that is heavy anywhere comes first. This is
`projects.<id>.profile` in the metrics JSON; the summary shows the first `top` rows.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

_RECORD_ONLY = ("kind", "config", "backend", "graphs", "trace_events", "artifacts")


def profile_entry(records: Iterable[dict[str, Any]], top: int) -> dict[str, Any]:
    backends: dict[str, dict[str, Any]] = {}
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        name = rec["backend"]
        meta = {k: v for k, v in rec.items() if k not in _RECORD_ONLY}
        meta["graphs"] = {g: {k: v for k, v in entry.items() if k != "nodes"} for g, entry in rec["graphs"].items()}
        backends[name] = meta
        for g, entry in rec["graphs"].items():
            for node, cell in entry["nodes"].items():
                row = rows.setdefault((g, node), {"graph": g, "node": node, "op_type": cell["op_type"], "backends": {}})
                row["backends"][name] = {k: v for k, v in cell.items() if k != "op_type"}
    ordered = sorted(rows.values(), key=lambda r: -max((c.get("ms") or 0.0 for c in r["backends"].values()), default=0.0))
    return {"top": top, "backends": backends, "nodes": ordered}


def top_rows(entry: dict[str, Any], n: int | None = None) -> list[dict[str, Any]]:
    """The first `n` rows (default: the entry's own `top`) that took any time."""
    n = entry.get("top", 10) if n is None else n
    return [r for r in entry.get("nodes", []) if any((c.get("ms") or 0) > 0 for c in r["backends"].values())][:n]


def short_node(name: str, width: int = 48) -> str:
    """A node name cut from the left to `width` characters (scopes are long, the end says most)."""
    return name if len(name) <= width else "…" + name[-(width - 1):]
