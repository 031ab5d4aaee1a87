"""`awml diff OLD.json NEW.json`: what changed between two runs, and whether it regressed.

Compared per project and backend: the task metrics in the direction their evaluator
declares (higher or lower is better), the metric and latency gates' outcomes, latency
p50/p95 (plus every statistic a backend's `latency_regression` names in NEW, with that
limit), peak memory, verification, and the per-node profiles of runs made with `--awml-profile`
(a node slower by more than `--node-increase`, among the nodes holding at least
`--node-min-share` of their graph and `--node-min-ms`; a node that ran as an integer
kernel and no longer does). Exit 1 names every regression beyond the thresholds; exit 0 otherwise, so a CI step can gate a pull request on the main branch's
last metrics JSON.

Gated metrics: every metric with a declared direction, the headline, and any `--metric
NAME`; a headline or named metric whose direction nobody declared is held both ways.
Counts (direction "none") are shown, never gated. A metric may get worse by
`--metric-worse` (absolute) plus `--metric-worse-rel` times its OLD value; latency and
memory may grow by `--latency-increase` / `--memory-increase` (relative). A metric or
latency gate that passed in OLD and fails in NEW is a regression whatever the numbers.
`evaluation.metric_tolerance` is not used here: it bounds a backend against the
reference backend within one run, not a run against an earlier run.
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
    metric_worse: float = 0.01  # absolute, in the metric's units
    latency_increase: float = 0.10
    memory_increase: float = 0.20
    metrics: tuple[str, ...] = ()
    metric_worse_rel: float = 0.0  # times |OLD value|, added to metric_worse
    node_increase: float = 0.5  # a profiled node's time, relative
    node_min_share: float = 0.02  # ... among nodes with at least this share of their graph in NEW
    node_min_ms: float = 0.01  # ... and at least this many ms more

    def allowed(self, old: float) -> float:
        return self.metric_worse + self.metric_worse_rel * abs(old)

    def describe(self) -> str:
        text = f"{self.metric_worse:g}"
        if self.metric_worse_rel:
            text += f" + {100 * self.metric_worse_rel:g} % of OLD"
        return text


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
    p.add_argument("--metric-worse", "--metric-drop", dest="metric_worse", type=_fraction,
                   default=Thresholds.metric_worse, metavar="ABS",
                   help="allowed absolute worsening of a gated metric, in its direction (default %(default)s; "
                        "--metric-drop is the old name)")
    p.add_argument("--metric-worse-rel", type=_fraction, default=Thresholds.metric_worse_rel, metavar="FRAC",
                   help="allowed worsening relative to OLD's value, added to --metric-worse: 0.05 = 5 %% "
                        "(default %(default)s)")
    p.add_argument("--latency-increase", type=_fraction, default=Thresholds.latency_increase, metavar="FRAC",
                   help="allowed relative latency increase, 0.10 = 10%% slower (default %(default)s); a backend's "
                        "evaluation.backends.<name>.latency_regression recorded in NEW takes precedence")
    p.add_argument("--memory-increase", type=_fraction, default=Thresholds.memory_increase, metavar="FRAC",
                   help="allowed relative peak-memory increase (default %(default)s)")
    p.add_argument("--node-increase", type=_fraction, default=Thresholds.node_increase, metavar="FRAC",
                   help="allowed relative slowdown of one node in the per-node profiles (--awml-profile runs), "
                        "0.5 = 50%% slower (default %(default)s)")
    p.add_argument("--node-min-share", type=_fraction, default=Thresholds.node_min_share, metavar="FRAC",
                   help="only nodes holding at least this share of their graph's time in NEW can regress, so noise "
                        "in tiny nodes does not flag (default %(default)s)")
    p.add_argument("--node-min-ms", type=_fraction, default=Thresholds.node_min_ms, metavar="MS",
                   help="... and only by at least this many milliseconds (default %(default)s)")
    p.add_argument("--metric", action="append", default=[], metavar="NAME",
                   help="also gate this scalar metric (in its declared direction, both ways if it has none); "
                        "repeatable. Always gated: the headline and every metric with a declared direction")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    old, new = load_document(args.old), load_document(args.new)
    th = Thresholds(args.metric_worse, args.latency_increase, args.memory_increase, tuple(args.metric),
                    args.metric_worse_rel, args.node_increase, args.node_min_share, args.node_min_ms)
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
    lacks = [label for label, doc in (("OLD", old), ("NEW", new)) if not _has_directions(doc)]
    if len(lacks) == 2:
        notes.append("warning: neither file records metric directions (metrics JSON schema 1): the headline is "
                     "taken as higher-is-better and the other metrics are shown, not gated")
    elif lacks:
        other = "NEW" if lacks[0] == "OLD" else "OLD"
        notes.append(f"warning: {lacks[0]} records no metric directions (metrics JSON schema 1): {other}'s are used")
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
        rows += _profile(cid, a.get("profile"), b.get("profile"), th, notes)
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


def _has_directions(doc: dict[str, Any]) -> bool:
    return any("directions" in (p.get("evaluation") or {}) for p in doc["projects"].values())


def _directions(a: dict[str, Any], b: dict[str, Any]) -> dict[str, str] | None:
    """NEW's declared directions, completed from OLD's; None when neither run recorded any."""
    da, db = (a.get("evaluation") or {}).get("directions"), (b.get("evaluation") or {}).get("directions")
    if da is None and db is None:
        return None
    return {**(da or {}), **(db or {})}


_WORDS = {"higher": "higher is better", "lower": "lower is better"}
_MARK = {"higher": " ↑", "lower": " ↓"}


def _metric_row(cid: str, name: str, metric: str, old_v: float | None, new_v: float | None, direction: str,
                th: Thresholds, in_new: bool) -> Row:
    label = metric + _MARK.get(direction, "")
    change = _f(None if old_v is None or new_v is None else new_v - old_v, "+.4f")
    limit = f"{'+' if direction == 'lower' else '-' if direction == 'higher' else '±'}{th.describe()}"
    regression = None
    if old_v is not None and new_v is None:
        regression = f"{cid} {name}: {metric} is {'NaN/None' if in_new else 'missing'} in NEW (OLD {old_v:.4f})"
    elif old_v is not None and new_v is not None:
        delta = new_v - old_v
        worse = -delta if direction == "higher" else delta if direction == "lower" else abs(delta)
        if worse > th.allowed(old_v) + 1e-12:
            if direction in _WORDS:
                regression = (f"{cid} {name}: {metric} worse {old_v:.4f} -> {new_v:.4f} ({delta:+.4f}, "
                              f"{_WORDS[direction]}; allowed {th.describe()}; --metric-worse)")
            else:
                regression = (f"{cid} {name}: {metric} changed {old_v:.4f} -> {new_v:.4f} ({delta:+.4f}; its "
                              "evaluator declares no direction, so a change either way beyond "
                              f"{th.describe()} counts; --metric-worse)")
    return Row(cid, name, label, _f(old_v, ".4f"), _f(new_v, ".4f"), change, limit, regression)


def _gate_row(cid: str, name: str, x: dict[str, Any], y: dict[str, Any]) -> Row | None:
    """The metric gate vs the reference within each run: passed in OLD, failed in NEW."""
    if "passed" not in x and "passed" not in y:
        return None
    before, after = x.get("passed"), y.get("passed")
    regression = None
    if before is True and after is False:
        failed = [m for m, c in (y.get("gate") or {}).items() if c.get("gated") and not c.get("passed")]
        what = f" ({', '.join(failed)} beyond evaluation.metric_tolerance)" if failed else ""
        regression = f"{cid} {name}: the metric gate passed in OLD and fails in NEW{what}"
    return Row(cid, name, "metric gate", _outcome(before), _outcome(after), "", "", regression)


def _outcome(value: Any) -> str:
    return "-" if value is None else "passed" if value else "FAILED"


def _evaluation(cid: str, a: dict[str, Any], b: dict[str, Any], th: Thresholds, notes: list[str]) -> list[Row]:
    rows: list[Row] = []
    ea, eb = a.get("evaluation", {}).get("backends", {}), b.get("evaluation", {}).get("backends", {})
    directions = _directions(a, b)
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
        headline = y.get("headline") or x.get("headline")
        named = [m for m in dict.fromkeys([headline, *th.metrics]) if m]
        for metric in dict.fromkeys([*named, *ma, *mb]):
            if directions is None:  # schema-1 files: the old convention, the headline up
                direction = "higher" if metric == headline else "unknown"
            else:
                direction = directions.get(metric, "undeclared")
            gated = direction != "none" and (metric in named or direction in ("higher", "lower"))
            old_v, new_v = ma.get(metric), mb.get(metric)
            if not gated:
                if old_v is not None and new_v is not None and old_v != new_v:
                    why = {"none": "a count, not gated"}.get(direction, "direction undeclared, not gated")
                    rows.append(Row(cid, name, metric, _f(old_v, ".4f"), _f(new_v, ".4f"),
                                    _f(new_v - old_v, "+.4f"), why))
                continue
            if metric not in ma:
                if metric in named:
                    notes.append(f"{cid} {name}: gated metric {metric!r} is not in OLD")
                continue
            rows.append(_metric_row(cid, name, metric, old_v, new_v, direction, th, metric in mb))
        gate = _gate_row(cid, name, x, y)
        if gate is not None:
            rows.append(gate)
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
        before, after = x.get("budget_violations"), y.get("budget_violations")
        if before is not None or after is not None:  # the latency test's own gates (budget, stability, baseline)
            regression = None
            if before == [] and after:
                regression = (f"{cid} {name}: the latency gate passed in OLD and fails in NEW: "
                              + "; ".join(str(v) for v in after))
            rows.append(Row(cid, name, "latency gate", _outcome(None if before is None else not before),
                            _outcome(None if after is None else not after), "", "", regression))
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


def _profile(cid: str, a: dict[str, Any] | None, b: dict[str, Any] | None, th: Thresholds,
             notes: list[str]) -> list[Row]:
    """Per-node profiles: rows only for the nodes beyond --node-increase (regressions, or
    noted as too small to count) and for integer kernels lost."""
    if a is None or b is None:
        if a is not None:
            notes.append(f"{cid}: OLD has a per-node profile, NEW none (run with --awml-profile to compare)")
        return []
    old = {(r["graph"], r["node"]): r for r in a.get("nodes", [])}
    rows = []
    for r in b.get("nodes", []):
        before = old.get((r["graph"], r["node"]))
        if before is None:
            continue
        for name, y in r["backends"].items():
            x = before["backends"].get(name)
            if x is None:
                continue
            rows += _node_rows(cid, name, r, x, y, th)
    return rows


def _node_rows(cid: str, name: str, r: dict[str, Any], x: dict[str, Any], y: dict[str, Any], th: Thresholds
               ) -> list[Row]:
    label = f"node {r['graph']}:{r['node']} ({r['op_type']})"
    rows = []
    old_v, new_v = _num(x.get("ms")) or 0.0, _num(y.get("ms")) or 0.0
    share = _num(y.get("share")) or 0.0
    big = share >= th.node_min_share and new_v - old_v >= th.node_min_ms
    if old_v > 0 and new_v / old_v - 1.0 > th.node_increase + 1e-12:
        change = new_v / old_v - 1.0
        regression = (f"{cid} {name}: {label} {old_v:.3f} -> {new_v:.3f} ms (+{100 * change:.0f} %, "
                      f"{100 * share:.1f} % of its graph; allowed +{100 * th.node_increase:g} %; --node-increase)"
                      if big else None)
        limit = f"+{100 * th.node_increase:g} %" + ("" if big else " (under --node-min-share/--node-min-ms: not counted)")
        rows.append(Row(cid, name, label + " ms", f"{old_v:.3f}", f"{new_v:.3f}", f"{100 * change:+.0f} %", limit,
                        regression))
    elif old_v == 0 and y.get("status") == "timed" and x.get("status") in ("fused", "folded") and big:
        rows.append(Row(cid, name, label + " ms", x.get("status", "-"), f"{new_v:.3f}", "", "", (
            f"{cid} {name}: {label} was {x.get('status')}{' into ' + x['into'] if x.get('into') else ''} in OLD and "
            f"takes {new_v:.3f} ms of its own in NEW ({100 * share:.1f} % of its graph)")))
    if x.get("integer") is True and y.get("integer") is False:
        rows.append(Row(cid, name, label + " kernel", "integer", y.get("precision") or "float", "", "", (
            f"{cid} {name}: {label} ran as an integer kernel in OLD, as {y.get('precision') or 'float'} "
            f"({', '.join(y.get('kernels') or [])}) in NEW")))
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
    lines += [n if n.startswith("warning:") else f"note: {n}" for n in notes]
    regressions = [r.regression for r in rows if r.regression]
    if regressions:
        lines.append(f"{len(regressions)} regression{'s' if len(regressions) != 1 else ''} beyond the thresholds:")
        lines += [f"  - {r}" for r in regressions]
    else:
        lines.append("no regression beyond the thresholds")
    return lines


__all__ = ["CliError", "Row", "Thresholds", "add_parser", "compare_documents", "render", "run"]
