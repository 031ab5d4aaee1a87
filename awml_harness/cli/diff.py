"""`awml diff OLD.json NEW.json`: what changed between two runs, and whether it regressed.

Compared per project and backend: the gated task metrics (each backend's headline metric,
plus any `--metric NAME`), latency p50/p95 (plus every statistic a backend's
`latency_regression` names in NEW, with that limit), peak memory, and verification.
Exit 1 names every regression beyond the thresholds; exit 0 otherwise, so a CI step can
gate a pull request on the main branch's last metrics JSON.

Thresholds: a metric may drop by `--metric-drop` (absolute, metrics are higher-is-better
by the harness's headline convention: accuracy, mAP); latency and memory may grow by
`--latency-increase` / `--memory-increase` (relative). `evaluation.metric_tolerance` is
not used here: it bounds a backend against the reference backend within one run, not a
run against an earlier run.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from typing import Any

from awml_harness.cli.common import CliError, load_document

LATENCY_STATS = ("p50", "p95")
MEMORY_KEYS = (("peak_rss_bytes", "peak RSS MB"), ("cuda_peak_allocated_bytes", "CUDA peak MB"))


@dataclass(frozen=True)
class Thresholds:
    metric_drop: float = 0.01
    latency_increase: float = 0.10
    memory_increase: float = 0.20
    metrics: tuple[str, ...] = ()


@dataclass(frozen=True)
class Row:
    project: str
    backend: str
    quantity: str
    old: str
    new: str
    change: str
    limit: str
    regression: str | None = None  # the sentence naming it, when this row regressed


def _fraction(value: str) -> float:
    try:
        f = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}") from None
    if not math.isfinite(f) or f < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {value!r}")
    return f


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "diff", help="metric, latency, memory and verification changes between two runs; exit 1 on regression",
        description=__doc__.split("\n\n")[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", metavar="OLD.json", help="metrics JSON of the baseline run")
    p.add_argument("new", metavar="NEW.json", help="metrics JSON of the run to judge")
    p.add_argument("--metric-drop", type=_fraction, default=Thresholds.metric_drop, metavar="ABS",
                   help="allowed absolute drop of a gated metric (default %(default)s)")
    p.add_argument("--latency-increase", type=_fraction, default=Thresholds.latency_increase, metavar="FRAC",
                   help="allowed relative latency increase, 0.10 = 10%% slower (default %(default)s); a backend's "
                        "evaluation.backends.<name>.latency_regression recorded in NEW takes precedence")
    p.add_argument("--memory-increase", type=_fraction, default=Thresholds.memory_increase, metavar="FRAC",
                   help="allowed relative peak-memory increase (default %(default)s)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="also gate this scalar metric (higher is better); repeatable. Always gated: the headline")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    old, new = load_document(args.old), load_document(args.new)
    th = Thresholds(args.metric_drop, args.latency_increase, args.memory_increase, tuple(args.metric))
    rows, notes = compare_documents(old, new, th)
    for line in render(rows, notes, args.old, args.new):
        print(line)
    return 1 if any(r.regression for r in rows) else 0


# -- comparison ------------------------------------------------------------------------------
def _num(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _scalars(metrics: Any) -> dict[str, float | None]:
    """Scalar metrics; None stands for a metric the run recorded as NaN/Inf (null)."""
    if not isinstance(metrics, dict):
        return {}
    return {k: _num(v) for k, v in metrics.items() if v is None or (_num(v) is not None)}


def _f(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def compare_documents(old: dict[str, Any], new: dict[str, Any], th: Thresholds) -> tuple[list[Row], list[str]]:
    rows: list[Row] = []
    notes: list[str] = []
    for cid in dict.fromkeys([*old["projects"], *new["projects"]]):
        a, b = old["projects"].get(cid), new["projects"].get(cid)
        if b is None:
            rows.append(Row(cid, "-", "project", "present", "missing", "", "",
                            f"{cid}: in OLD but not in NEW (the config did not run, or was deselected)"))
            continue
        if a is None:
            notes.append(f"{cid}: new in NEW (no baseline to compare with)")
            continue
        rows += _verification(cid, a, b)
        rows += _evaluation(cid, a, b, th, notes)
        rows += _latency(cid, a, b, th)
    return rows, notes


def _verification(cid: str, a: dict[str, Any], b: dict[str, Any]) -> list[Row]:
    va, vb = a.get("verification", {}), b.get("verification", {})

    def count(v: dict[str, Any]) -> str:
        return f"{v.get('passed', 0)}/{v.get('passed', 0) + v.get('failed', 0)} {v.get('status', '')}".strip()

    regression = None
    if va.get("status") != "failed" and vb.get("status") == "failed":
        regression = f"{cid}: verification went from {va.get('status', 'passed')} to failed"
    elif va.get("status") == "verified" and vb.get("status") == "unverified":
        regression = f"{cid}: verification went from verified to unverified ({vb.get('reason', 'no reason recorded')})"
    rows = [Row(cid, "-", "verification", count(va), count(vb), "", "", regression)]
    before = {(r["scenario"], r["sample_index"]): r["passed"] for r in va.get("results", [])}
    for r in vb.get("results", []):
        if before.get((r["scenario"], r["sample_index"])) is True and not r["passed"]:
            failing = [leaf["path"] for leaf in r.get("leaves", []) if not leaf.get("passed", True)]
            what = f" (outputs {', '.join(failing[:4])})" if failing else ""
            rows.append(Row(cid, r["test"], f"verify {r['scenario']} s{r['sample_index']}", "passed", "FAILED", "", "",
                            f"{cid}: verification {r['scenario']} sample {r['sample_index']} "
                            f"({r.get('sample_id', '?')}) passed in OLD, fails in NEW{what}"))
    return rows


def _evaluation(cid: str, a: dict[str, Any], b: dict[str, Any], th: Thresholds, notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    ea, eb = a.get("evaluation", {}).get("backends", {}), b.get("evaluation", {}).get("backends", {})
    for name in dict.fromkeys([*ea, *eb]):
        x, y = ea.get(name), eb.get(name)
        if x is None:
            notes.append(f"{cid} {name}: evaluated in NEW only")
            continue
        if y is None or (x.get("status") == "ok" and y.get("status") != "ok"):
            now = "missing" if y is None else y.get("status", "?")
            why = "" if y is None else f": {y.get('reason') or y.get('error') or ''}".rstrip(": ")
            rows.append(Row(cid, name, "evaluation", x.get("status", "?"), now, "", "",
                            f"{cid} {name}: evaluated ({x.get('status')}) in OLD, {now} in NEW{why}"))
            continue
        ma, mb = _scalars(x.get("metrics")), _scalars(y.get("metrics"))
        gated = [m for m in dict.fromkeys([y.get("headline") or x.get("headline"), *th.metrics]) if m]
        for metric in dict.fromkeys([*gated, *ma]):
            old_v, new_v = ma.get(metric), mb.get(metric)
            if metric not in gated:
                if old_v is not None and new_v is not None and old_v != new_v:
                    rows.append(Row(cid, name, metric, _f(old_v, ".4f"), _f(new_v, ".4f"),
                                    _f(new_v - old_v, "+.4f"), "not gated"))
                continue
            if metric not in ma:
                notes.append(f"{cid} {name}: gated metric {metric!r} is not in OLD")
                continue
            regression = None
            if old_v is not None and new_v is None:
                got = "missing" if metric not in mb else "NaN/None"
                regression = f"{cid} {name}: {metric} is {got} in NEW (OLD {old_v:.4f})"
            elif old_v is not None and new_v is not None and old_v - new_v > th.metric_drop + 1e-12:
                regression = (f"{cid} {name}: {metric} dropped {old_v:.4f} -> {new_v:.4f} "
                              f"({new_v - old_v:+.4f}, allowed drop {th.metric_drop:g}; --metric-drop)")
            change = _f(None if old_v is None or new_v is None else new_v - old_v, "+.4f")
            rows.append(Row(cid, name, metric, _f(old_v, ".4f"), _f(new_v, ".4f"), change,
                            f"-{th.metric_drop:g}", regression))
        rows += _memory(cid, name, x.get("memory") or {}, y.get("memory") or {}, th)
    return rows


def _memory(cid: str, name: str, a: dict[str, Any], b: dict[str, Any], th: Thresholds) -> list[Row]:
    rows = []
    for key, label in MEMORY_KEYS:
        old_v, new_v = _num(a.get(key)), _num(b.get(key))
        if old_v is None or new_v is None or old_v <= 0:
            continue
        change = new_v / old_v - 1.0
        regression = None
        if change > th.memory_increase + 1e-12:
            regression = (f"{cid} {name}: {label.replace(' MB', '')} grew {old_v / 2**20:.1f} -> {new_v / 2**20:.1f} MB "
                          f"(+{100 * change:.1f} %, allowed +{100 * th.memory_increase:g} %; --memory-increase)")
        rows.append(Row(cid, name, label, f"{old_v / 2**20:.1f}", f"{new_v / 2**20:.1f}", f"{100 * change:+.1f} %",
                        f"+{100 * th.memory_increase:g} %", regression))
    return rows


def _latency(cid: str, a: dict[str, Any], b: dict[str, Any], th: Thresholds) -> list[Row]:
    rows = []
    la, lb = a.get("latency", {}), b.get("latency", {})
    for name, x in la.items():
        y = lb.get(name)
        if y is None:
            rows.append(Row(cid, name, "latency", "measured", "missing", "", "",
                            f"{cid} {name}: latency measured in OLD, not in NEW (skipped? under -n the "
                            "latency tests skip)"))
            continue
        limits = y.get("regression_limits") or {}
        for stat in dict.fromkeys([*LATENCY_STATS, *limits]):
            old_v, new_v = _num(x.get(stat)), _num(y.get(stat))
            if old_v is None or new_v is None or old_v <= 0:
                continue
            limit = float(limits.get(stat, th.latency_increase))
            source = (f"evaluation.backends.{name}.latency_regression.{stat}" if stat in limits
                      else "--latency-increase")
            change = new_v / old_v - 1.0
            regression = None
            if change > limit + 1e-12:
                regression = (f"{cid} {name}: latency {stat} {old_v:.3f} -> {new_v:.3f} ms "
                              f"(+{100 * change:.1f} %, allowed +{100 * limit:g} %; {source})")
            rows.append(Row(cid, name, f"latency {stat} ms", f"{old_v:.3f}", f"{new_v:.3f}",
                            f"{100 * change:+.1f} %", f"+{100 * limit:g} %", regression))
    return rows


# -- output ----------------------------------------------------------------------------------
def render(rows: list[Row], notes: list[str], old_name: str, new_name: str) -> list[str]:
    lines = [f"awml diff {old_name} -> {new_name}"]
    header = ["backend", "quantity", "old", "new", "change", "limit", "verdict"]
    for cid in dict.fromkeys(r.project for r in rows):
        project = [r for r in rows if r.project == cid]
        order = {b: i for i, b in enumerate(dict.fromkeys(r.backend for r in project))}
        project.sort(key=lambda r: order[r.backend])  # stable: each backend's rows together
        mine = [[r.backend, r.quantity, r.old, r.new, r.change, r.limit, "REGRESSION" if r.regression else "ok"]
                for r in project]
        widths = [max(len(h), *(len(c[i]) for c in mine)) for i, h in enumerate(header)]
        lines.append(cid)
        lines.append("  " + "  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)).rstrip())
        lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip() for cells in mine]
    lines += [f"note: {n}" for n in notes]
    regressions = [r.regression for r in rows if r.regression]
    if regressions:
        lines.append(f"{len(regressions)} regression{'s' if len(regressions) != 1 else ''} beyond the thresholds:")
        lines += [f"  - {r}" for r in regressions]
    else:
        lines.append("no regression beyond the thresholds")
    return lines


__all__ = ["CliError", "Row", "Thresholds", "add_parser", "compare_documents", "render", "run"]
