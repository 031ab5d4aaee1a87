"""A Chrome-trace / Perfetto JSON file per backend (chrome://tracing, ui.perfetto.dev).

The Trace Event Format's JSON object form: complete events (`"ph": "X"`, `ts` and `dur`
in microseconds) named after the ONNX node that carries their time (the kernel or layer
name in `args`), one process per graph and one thread per profiled round, each round from
0 so the rounds line up, and `"M"` metadata events naming them. ONNX Runtime's events
keep the profiler's own start times; PyTorch's and TensorRT's are synthesized (module
replays nested as called, layers end to end) and `otherData.synthesized` says so.
"""

from __future__ import annotations

import re
from typing import Any

SYNTHESIZED = {"torch-module-replay", "tensorrt-iprofiler"}


def trace_file_name(config_id: str, backend: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{config_id}-{backend}").strip("_")
    return f"profile-{safe}.trace.json"


def chrome_trace(record: dict[str, Any]) -> dict[str, Any]:
    """A profile record's `trace_events` ([graph, round, name, op, node, ts_us, dur_us,
    precision] each) as a trace document."""
    graphs = list(dict.fromkeys(e[0] for e in record.get("trace_events", [])))
    pid = {g: i + 1 for i, g in enumerate(graphs)}
    events: list[dict[str, Any]] = []
    label = f"{record.get('config', '')} {record.get('backend', '')}".strip()
    for g in graphs:
        events.append({"name": "process_name", "ph": "M", "pid": pid[g], "tid": 0, "args": {"name": f"{label} {g}"}})
        events.append({"name": "process_sort_index", "ph": "M", "pid": pid[g], "tid": 0, "args": {"sort_index": pid[g]}})
    rounds = sorted({(e[0], e[1]) for e in record.get("trace_events", [])})
    for g, r in rounds:
        events.append({"name": "thread_name", "ph": "M", "pid": pid[g], "tid": r + 1, "args": {"name": f"round {r + 1}"}})
    for g, r, name, op, node, ts, dur, precision in record.get("trace_events", []):
        events.append({"name": node or name, "cat": op or "kernel", "ph": "X", "ts": ts, "dur": dur, "pid": pid[g],
                       "tid": r + 1, "args": {"kernel": name, "node": node, "op": op, "precision": precision}})
    return {"traceEvents": events, "displayTimeUnit": "ms",
            "otherData": {"config": record.get("config"), "backend": record.get("backend"),
                          "method": record.get("method"), "synthesized": record.get("method") in SYNTHESIZED}}
