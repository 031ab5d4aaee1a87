"""Chunked evaluation: predictions of many chunks, one evaluator, one gate.

A large evaluation is split into chunks (sample i goes to chunk i % N); each chunk test
runs every backend on its samples and ships the compact predictions and targets back on
its report (or, with `--awml-shard`, into a shard file). The controller (or `awml
merge`) sorts them by sample index and feeds one evaluator per backend in the same order
a serial run would, so the metrics are the same numbers, computed once, and judged by
the same function as a serial run's (`evaluation.results.judge_backends`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from awml_harness.evaluation.results import BackendResult, judge_backends
from awml_harness.evaluation.wire import decode

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.protocols import AdapterLike


def merge_chunks(adapter: AdapterLike, chunks: list[Mapping[str, Any]], reference: str,
                 tolerance: Callable[[str], Mapping[str, Any]]) -> dict[str, BackendResult]:
    """Chunk records of one config (each `{"backends": {name: entry}}`) -> every backend's
    judged result, as a serial run would have it. `tolerance(backend_name)` -> its rules."""
    rows: dict[str, list[tuple[int, str, Any, Any]]] = {}
    info: dict[str, dict[str, Any]] = {}
    for chunk in chunks:
        for name, entry in chunk["backends"].items():
            meta = info.setdefault(name, {"device": entry["device"], "precision": entry["precision"],
                                          "seconds": 0.0, "empty": 0, "memory": None})
            if entry.get("calibration"):
                meta["calibration"] = entry["calibration"]
            if "unavailable" in entry or "error" in entry:
                meta.update({k: entry[k] for k in ("unavailable", "error") if k in entry})
                continue
            rows.setdefault(name, []).extend(
                (s["index"], s["sample_id"], s["prediction"], s["target"]) for s in entry["samples"])
            meta["seconds"] += entry.get("seconds", 0.0)
            meta["empty"] += entry.get("empty", 0)
            if entry.get("memory"):
                from awml_harness.memory import merge

                meta["memory"] = merge([meta["memory"], entry["memory"]])
    results: dict[str, BackendResult] = {}
    for name, meta in info.items():
        if "unavailable" in meta or "error" in meta:
            results[name] = BackendResult.of_pass(name, meta["device"], meta["precision"], meta)
            continue
        evaluator = adapter.evaluator()
        base = BackendResult.of_pass(name, meta["device"], meta["precision"], meta, type(evaluator))
        ordered = sorted(rows.get(name, []), key=lambda r: r[0])
        for _, sample_id, prediction, target in ordered:
            evaluator.add(sample_id, decode(prediction), decode(target))
        results[name] = dataclasses.replace(base, metrics=evaluator.compute(), num_samples=len(ordered))
    return judge_backends(results, reference, tolerance)
