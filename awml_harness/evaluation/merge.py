"""Sharded evaluation: predictions of many shards, one evaluator, one gate.

Serial runs evaluate every backend in one pass inside the test process. A large
evaluation is split into shards (sample i goes to shard i % N); each shard test runs
every backend on its samples and ships the compact predictions and targets back on its
report (or, with `--awml-shard`, into a shard file). The controller (or `awml merge`)
sorts them by sample index and feeds one evaluator per backend in the same order a
serial run would, so the metrics are the same numbers, computed once, and the gate
(`evaluation.gate`) runs there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from awml_harness.evaluation.gate import judge_metrics
from awml_harness.evaluation.wire import decode


def merge_shards(adapter: Any, shards: list[Mapping[str, Any]], reference: str,
                 tolerance: Any) -> dict[str, dict[str, Any]]:
    """Shard records of one config -> per-backend evaluation entries (as the serial test
    writes them). `tolerance(backend_name)` -> {metric: tolerance}."""
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
    directions: Mapping[str, str] = {}
    for name, meta in info.items():
        if "unavailable" in meta:
            reason = meta.pop("unavailable")  # as the serial record: the reason, not the raw key
            results[name] = {**meta, "status": "unavailable", "reason": reason}
            continue
        if "error" in meta:
            results[name] = {**meta, "status": "error"}
            continue
        evaluator = adapter.evaluator()
        directions = type(evaluator).directions
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
        verdict = judge_metrics(entry["metrics"], ref["metrics"], tolerance(name), directions)
        entry.update({"deltas": verdict.deltas, "gate": verdict.as_dict(), "directions": verdict.directions,
                      "passed": verdict.passed,
                      "failures": verdict.failures})
    return results
