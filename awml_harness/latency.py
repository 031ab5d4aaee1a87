"""Latency statistics in milliseconds, their spread, budgets, and CUDA device time.

Percentiles use linear interpolation (numpy's default), the same rule for every
backend. Budgets are absolute ceilings per statistic (`p95_ms: 20`); their errors
name the config key so the fix is obvious from the CI log.

Spread: a median alone hides the failure mode of small shared machines, a forward
that stalls for hundreds of milliseconds now and then. Two figures catch it:
`p95_over_p50` (how far the slow tail is from the typical call) and `outlier_share`
(the share of rounds slower than OUTLIER_FACTOR x the median). Above WARN_SPREAD a
warning says the figures are not to be trusted; `latency_stability` gates on them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

OUTLIER_FACTOR = 2.0  # a round slower than this x the median is an outlier
WARN_SPREAD = {"p95_over_p50": 2.0, "outlier_share": 0.05}  # above either: warn


def summarize(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    if ms.size == 0:
        return {"rounds": 0}
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    return {
        "mean": float(ms.mean()), "std": float(ms.std(ddof=1)) if ms.size > 1 else 0.0,
        "min": float(ms.min()), "max": float(ms.max()), "median": float(np.median(ms)),
        "p50": float(p50), "p90": float(p90), "p95": float(p95), "p99": float(p99), "rounds": int(ms.size),
        **spread(ms),
    }


def spread(ms: Any) -> dict[str, float]:
    """p95/p50 and the share of rounds above OUTLIER_FACTOR x median, of times in ms."""
    ms = np.asarray(ms, dtype=np.float64)
    if ms.size == 0:
        return {}
    p50, p95 = np.percentile(ms, [50, 95])
    ratio = float(p95 / p50) if p50 > 0 else float("inf")
    return {"p95_over_p50": ratio, "outlier_share": float(np.mean(ms > OUTLIER_FACTOR * p50)),
            "outlier_factor": OUTLIER_FACTOR}


class LatencySpreadWarning(UserWarning):
    """A backend's latency rounds vary too much for its percentiles to mean much."""


def spread_warning(stats: Mapping[str, float]) -> str | None:
    """One line when the spread is above WARN_SPREAD, else None."""
    high = [f"{k} = {stats[k]:.3g} > {limit:g}" for k, limit in WARN_SPREAD.items()
            if stats.get(k) is not None and stats[k] > limit]
    if not high:
        return None
    return (f"latency is unstable ({', '.join(high)}; outlier = slower than {OUTLIER_FACTOR:g}x median): "
            "the machine is loaded or the backend's threads wait on each other; the percentiles "
            "are not representative (try --awml-threads 1, a quieter machine, more latency_rounds)")


def check_stability(stats: Mapping[str, float], limits: Mapping[str, float], key_prefix: str) -> list[str]:
    out = []
    for key, limit in sorted(limits.items()):
        value = stats.get(key)
        if value is not None and value > limit:
            unit = "" if key == "p95_over_p50" else f" ({100 * value:.1f} % of {int(stats.get('rounds', 0))} rounds)"
            out.append(f"  - {key} = {value:.3f}{unit} exceeds {key_prefix}.{key} = {limit:g}")
    return out


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


def baseline_stats(path: Any, test_name: str) -> dict[str, float] | None:
    """The statistics (ms) of `test_name` in a pytest-benchmark saved JSON: its own
    min/max/mean/median plus the percentiles the harness stores in extra_info."""
    import json
    from pathlib import Path

    data = json.loads(Path(path).read_text())
    for bench in data.get("benchmarks", []):
        if bench.get("name") == test_name or bench.get("fullname", "").endswith(test_name):
            st = bench.get("stats", {})
            out = {k: float(st[k]) * 1e3 for k in ("min", "max", "mean", "median") if k in st}
            out.update({k: float(v) for k, v in bench.get("extra_info", {}).items()
                        if k in ("p50", "p90", "p95", "p99") and isinstance(v, (int, float))})
            return out
    return None


def latest_baseline(storage: Any) -> Any:
    """Newest saved run under a pytest-benchmark storage folder (what --benchmark-compare uses)."""
    from pathlib import Path

    runs = sorted(Path(storage).glob("*/*.json"), key=lambda p: p.name)
    return runs[-1] if runs else None


def check_regression(stats: Mapping[str, float], baseline: Mapping[str, float], limits: Mapping[str, float],
                     key_prefix: str) -> list[str]:
    out = []
    for stat, limit in sorted(limits.items()):
        now, before = stats.get(stat), baseline.get(stat)
        if now is None or before is None or before <= 0:
            out.append(f"  - {stat}: not in the baseline, cannot check {key_prefix}.{stat}")
            continue
        change = now / before - 1.0
        if change > limit:
            out.append(f"  - {stat} = {now:.3f} ms vs baseline {before:.3f} ms (+{100 * change:.1f} %) "
                       f"exceeds {key_prefix}.{stat} = {100 * limit:g} %")
    return out


class BaselineError(ValueError):
    """The latency baseline a run names cannot be used (none saved, test not in it)."""


def judge_latency(stats: Mapping[str, float], name: str, backend: Any, baseline: Mapping[str, float] | None
                  ) -> list[str]:
    """Every latency gate of backend `name` (`evaluation.backends.<name>`: latency_budget,
    latency_stability, latency_regression against `baseline`): one line per violation."""
    key = f"evaluation.backends.{name}"
    violations = check_budget(stats, backend.latency_budget, key_prefix=f"{key}.latency_budget")
    violations += check_stability(stats, backend.latency_stability, key_prefix=f"{key}.latency_stability")
    if baseline is not None and backend.latency_regression:
        violations += check_regression(stats, baseline, backend.latency_regression,
                                       key_prefix=f"{key}.latency_regression")
    return violations


def find_baseline(where: str, storage: Any, test_name: str) -> tuple[Any, dict[str, float]]:
    """--awml-latency-baseline PATH|latest -> (the file, this test's statistics in it)."""
    path = where
    if where == "latest":
        path = latest_baseline(storage)
        if path is None:
            raise BaselineError(f"--awml-latency-baseline latest: no saved run under {storage} "
                                "(save one with --benchmark-autosave)")
    stats = baseline_stats(path, test_name)
    if stats is None:
        raise BaselineError(f"{test_name} is not in the latency baseline {path}")
    return path, stats
