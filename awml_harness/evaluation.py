"""Metric deltas, tolerance gates, and sharded evaluation under pytest-xdist.

Serial runs evaluate every backend in one pass inside the test process. Under
`-n N` the samples are split into N shards (sample i goes to shard i % N); each shard
test runs every backend on its samples and ships the compact predictions and targets
back on its report. The controller sorts them by sample index and feeds one evaluator
per backend in the same order a serial run would, so the metrics are the same numbers,
computed once, and the tolerance gate runs there.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

import numpy as np


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def metric_deltas(metrics: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, float]:
    ref = scalar_metrics(reference)
    return {k: v - ref[k] for k, v in scalar_metrics(metrics).items() if k in ref}


def delta_failures(metrics: Mapping[str, Any], reference: Mapping[str, Any],
                   tolerance: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """Deltas (backend minus reference) and one line per gated metric that fails.

    Gated: every metric `tolerance` names, and with "*" every scalar metric of the
    reference. A gated metric fails when |delta| exceeds its tolerance, when either side is
    NaN/Inf (no comparison can pass it), or when the backend (or the reference) does not
    report it: a metric that vanishes is a broken evaluation, never a pass."""
    test, ref = scalar_metrics(metrics), scalar_metrics(reference)
    deltas = {k: v - ref[k] for k, v in test.items() if k in ref}
    gated = (set(ref) if "*" in tolerance else set()) | {k for k in tolerance if k != "*"}
    failures = []
    for metric in sorted(gated):
        tol = tolerance.get(metric, tolerance.get("*"))
        key = f"key evaluation.metric_tolerance.{metric}"
        if metric not in test and metric not in ref:
            failures.append(f"  - {metric}: neither this backend nor the reference reports it ({key} names a "
                            f"metric that does not exist; metrics: {', '.join(sorted(ref)) or 'none'})")
        elif metric not in test:
            failures.append(f"  - {metric}: missing on this backend (reference {ref[metric]:.6g}; {key})")
        elif metric not in ref:
            failures.append(f"  - {metric}: {test[metric]:.6g} but the reference does not report it, so no delta "
                            f"can be checked ({key})")
        elif not (math.isfinite(test[metric]) and math.isfinite(ref[metric])):
            failures.append(f"  - {metric}: {test[metric]:.6g} vs reference {ref[metric]:.6g}: a non-finite "
                            f"metric never passes ({key})")
        elif tol is not None and abs(deltas[metric]) > tol + 1e-12:
            failures.append(f"  - {metric}: {test[metric]:.6g} vs reference {ref[metric]:.6g} "
                            f"(delta {deltas[metric]:+.6g}, allowed {tol:g}; {key})")
    return deltas, failures


# -- wire format: predictions travel between xdist processes as builtins ----------------------
def encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__nd__": base64.b64encode(np.ascontiguousarray(obj).tobytes()).decode(), "dtype": obj.dtype.str,
                "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v) for v in obj]}
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__nd__" in obj:
            arr = np.frombuffer(base64.b64decode(obj["__nd__"]), dtype=np.dtype(obj["dtype"]))
            return arr.reshape(obj["shape"]).copy()
        if "__tuple__" in obj:
            return tuple(decode(v) for v in obj["__tuple__"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def merge_shards(adapter: Any, shards: list[Mapping[str, Any]], reference: str,
                 tolerance: Any) -> dict[str, dict[str, Any]]:
    """`tolerance(backend_name)` -> {metric: allowed |delta|}."""
    """Shard records of one config -> per-backend evaluation entries (as the serial test writes)."""
    per_backend: dict[str, list[tuple[int, str, Any, Any]]] = {}
    info: dict[str, dict[str, Any]] = {}
    for shard in shards:
        for name, entry in shard["backends"].items():
            info.setdefault(name, {k: entry[k] for k in ("device", "precision")})
            if "unavailable" in entry or "error" in entry:
                info[name].update({k: entry[k] for k in ("unavailable", "error") if k in entry})
                continue
            rows = per_backend.setdefault(name, [])
            rows += [(s["index"], s["sample_id"], s["prediction"], s["target"]) for s in entry["samples"]]
            info[name]["seconds"] = info[name].get("seconds", 0.0) + entry.get("seconds", 0.0)
            if entry.get("memory"):
                from awml_harness.memory import merge

                info[name]["memory"] = merge([info[name].get("memory"), entry["memory"]])
    results: dict[str, dict[str, Any]] = {}
    for name, meta in info.items():
        if "unavailable" in meta:
            reason = meta.pop("unavailable")  # as the serial record: the reason, not the raw key
            results[name] = {**meta, "status": "unavailable", "reason": reason}
            continue
        if "error" in meta:
            results[name] = {**meta, "status": "error"}
            continue
        evaluator = adapter.evaluator()
        rows = sorted(per_backend.get(name, []), key=lambda r: r[0])
        for _, sample_id, prediction, target in rows:
            evaluator.add(sample_id, decode(prediction), decode(target))
        results[name] = {**meta, "status": "ok", "metrics": evaluator.compute(), "num_samples": len(rows),
                         "headline": type(evaluator).headline}
    ref = results.get(reference, {})
    for name, entry in results.items():
        if entry["status"] != "ok":
            continue
        if "metrics" not in ref:
            entry["status"] = "no-reference"
            continue
        deltas, failures = delta_failures(scalar_metrics(entry["metrics"]), scalar_metrics(ref["metrics"]),
                                          tolerance(name))
        entry.update({"deltas": deltas, "passed": not failures, "failures": failures})
    return results
