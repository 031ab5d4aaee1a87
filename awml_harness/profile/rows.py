"""One backend's timings of one graph -> one cell per node of the fp32 ONNX graph.

Times are medians over the profiled rounds of each node's per-round sum (a node may run
several kernels per round: a Conv and the layout reorder after it). A graph's total is
the median of the per-round sums of everything the backend timed, unmapped kernels
included, so shares add up to about 1 and a kernel the attribution could not place
shows as `unmapped_ms` instead of vanishing.

Cell statuses: `timed` (its own time), `fused` (its work ran inside `into`'s kernel,
time counted there), `grouped` (PyTorch: timed with `into` in one module call),
`folded` (no kernel ran it: constant-folded, or removed by the optimizer), `absent`
(not in the graph this backend ran, e.g. a Relu the int8 quantizer removed).
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from awml_harness.profile.nodes import NodeGraph, onto_reference

UNMAPPED_LISTED = 5  # the largest unmapped kernels named in a graph's entry


@dataclass(frozen=True)
class GraphTimes:
    """What one backend timed in one graph, on the nodes of the ONNX file it ran."""

    graph: str
    variant: NodeGraph  # the ONNX graph the backend ran (fp32, fp16 or int8 file)
    rounds: tuple[Mapping[str, float], ...]  # per profiled round: variant node -> ms
    totals: tuple[float, ...]  # per round: ms of everything timed, unmapped included
    unmapped: tuple[Mapping[str, float], ...] = ()  # per round: kernel name -> ms (no node found)
    merged: Mapping[str, tuple[str, str]] = field(default_factory=dict)  # node -> (into, how)
    info: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # node -> precision, integer, kernels
    events: tuple[tuple[Any, ...], ...] = ()  # (round, name, op, node, ts_us, dur_us, precision)
    kernels_per_round: int = 0


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def graph_entry(times: GraphTimes, reference: NodeGraph, unprofiled_ms: float | None) -> dict[str, Any]:
    """The profile of one graph on one backend: totals and one cell per reference node."""
    to_ref = onto_reference(times.variant, reference) if times.variant is not reference else {
        n.name: n.name for n in reference.nodes}
    per_node: dict[str, list[float]] = {n.name: [0.0] * len(times.rounds) for n in reference.nodes}
    includes: dict[str, set[str]] = {}
    stray = [0.0] * len(times.rounds)
    for r, mapping in enumerate(times.rounds):
        for node, ms in mapping.items():
            ref = to_ref.get(node)
            if ref is None:
                stray[r] += ms
                continue
            per_node[ref][r] += ms
            if ref != node:
                includes.setdefault(ref, set()).add(node)
    unmapped = [sum(u.values()) for u in times.unmapped] or [0.0] * len(times.rounds)
    unmapped = [a + b for a, b in zip(unmapped, stray, strict=False)]
    total = _median(list(times.totals))
    cells: dict[str, dict[str, Any]] = {}
    for n in reference.nodes:
        ms = _median(per_node[n.name])
        cell: dict[str, Any] = {"op_type": n.op_type, "ms": ms, "share": ms / total if total > 0 else 0.0}
        info = times.info.get(n.name) or {}
        ran = bool(info.get("kernels")) or any(v > 0 for v in per_node[n.name]) or n.name in includes
        cell.update(_status(times, to_ref, n.name, ran))
        kernels = list(info.get("kernels") or ())
        for other in sorted(includes.get(n.name, ())):
            kernels += [k for k in (times.info.get(other) or {}).get("kernels") or () if k not in kernels]
        cell.update(precision=info.get("precision"), integer=info.get("integer"), kernels=kernels,
                    includes=sorted(includes.get(n.name, ())))
        cells[n.name] = cell
    named: dict[str, list[float]] = {}
    for u in times.unmapped:
        for k, ms in u.items():
            named.setdefault(k, []).append(ms)
    biggest = sorted(((k, _median(v)) for k, v in named.items()), key=lambda kv: -kv[1])[:UNMAPPED_LISTED]
    mapped = sum(c["ms"] for c in cells.values())
    return {"total_ms": total, "mapped_ms": mapped, "unmapped_ms": _median(unmapped),
            "unmapped": dict(biggest), "unprofiled_ms": unprofiled_ms,
            "coverage": total / unprofiled_ms if unprofiled_ms else None,
            "kernels_per_round": times.kernels_per_round, "rounds": len(times.rounds), "nodes": cells}


def _status(times: GraphTimes, to_ref: Mapping[str, str | None], name: str, ran: bool) -> dict[str, Any]:
    if name not in times.variant.index:
        return {"status": "absent", "into": None}
    if name in times.merged:
        into, how = times.merged[name]
        into_ref = to_ref.get(into, into)
        if how == "folded" or into_ref is None:
            return {"status": "folded", "into": None}
        if into_ref != name:
            return {"status": how, "into": into_ref}
    return {"status": "timed" if ran else "folded", "into": None}
