"""Latency statistics in milliseconds, budgets, and CUDA device time.

Percentiles use linear interpolation (numpy's default), the same rule for every
backend. Budgets are absolute ceilings per statistic (`p95_ms: 20`); their errors
name the config key so the fix is obvious from the CI log.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"rounds": 0}
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    return {
        "mean": float(ms.mean()), "std": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "min": float(ms.min()), "max": float(ms.max()), "median": float(np.median(ms)),
        "p50": float(p50), "p90": float(p90), "p95": float(p95), "p99": float(p99), "rounds": int(ms.size),
    }


def stage_medians(runs: Sequence[Mapping[str, Sequence[float]]]) -> dict[str, float]:
    """Median ms per stage over runs (a stage hit several times per run is summed), plus e2e."""
    per_stage: dict[str, list[float]] = {}
    totals = []
    for run in runs:
        total = 0.0
        for stage, times in run.items():
            s = float(sum(times))
            per_stage.setdefault(stage, []).append(s)
            total += s
        totals.append(total)
    out = {stage: float(np.median(v) * 1e3) for stage, v in per_stage.items()}
    if totals:
        out["end_to_end"] = float(np.median(totals) * 1e3)
    return out


def check_budget(stats: Mapping[str, float], budget: Mapping[str, float], key_prefix: str) -> list[str]:
    out = []
    for key, limit in sorted(budget.items()):
        stat = key[:-3] if key.endswith("_ms") else key
        value = stats.get(stat)
        if value is not None and value > limit:
            out.append(f"  - {stat} = {value:.3f} ms exceeds {key_prefix}.{key} = {limit:g} ms")
    return out


def cuda_event_times(fn: Callable[[], Any], rounds: int) -> dict[str, float] | None:
    """Device-side time of `fn` with CUDA events (None without CUDA torch)."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    times = []
    for _ in range(rounds):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    arr = np.asarray(times)
    return {"median": float(np.median(arr)), "p95": float(np.percentile(arr, 95)), "rounds": int(arr.size)}
