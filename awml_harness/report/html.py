"""Self-contained HTML report from the metrics JSON: one static file (inline CSS, plots as
PNG data URIs) that a CI run can attach and anyone can open.

What a deployment engineer asks first comes first: did the run pass, and if not, which
tests failed and why (every failure, one line each). Then, per project: the summary per
backend, metrics with their delta beside the allowed tolerance, latency and its
per-stage breakdown, verification grouped by scenario and output, the shape sweep,
artifacts, the resolved config. Every number shown comes from the document, so
`awml report RUN.json` renders a saved run exactly; a key an older document lacks is
shown as "not recorded". matplotlib is imported only while rendering.
"""

from __future__ import annotations

import base64
import html
import io
import json
from typing import Any

from awml_harness.report import format as fmt
from awml_harness.report.verdict import verdict

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#1b1f24;font-size:14px}
main{padding:0 24px 24px}
.verdict{padding:12px 24px;color:#fff;font-size:20px;font-weight:600}
.verdict .sub{font-size:13px;font-weight:400;opacity:.95;margin-left:12px}
.pass{background:#1a7f37}.fail{background:#cf222e}
.ok{color:#1a7f37;font-weight:600}.bad{color:#cf222e;font-weight:600}.warn{color:#9a6700;font-weight:600}
.failures{margin:10px 0 6px;padding:0;list-style:none}
.failures li{border-left:4px solid #cf222e;background:#fff5f5;margin:4px 0;padding:4px 8px}
.failures code{font-size:12px;color:#57606a}
.failures .msg{display:block;font-family:ui-monospace,monospace;font-size:12.5px;white-space:pre-wrap;word-break:break-word}
details{margin:2px 0}summary{cursor:pointer;color:#57606a;font-size:12px}
pre{background:#f6f8fa;padding:6px 8px;overflow-x:auto;font-size:12px;white-space:pre-wrap;word-break:break-word}
table{border-collapse:collapse;margin:6px 0 10px}
td,th{border:1px solid #d0d7de;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f8fa;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
h2{border-bottom:1px solid #d0d7de;padding-bottom:4px;margin-top:28px}h3{margin:18px 0 4px}
.meta{color:#57606a}.note{background:#fff8c5;border-left:4px solid #9a6700;padding:4px 8px;margin:6px 0}
img{max-width:100%}
"""

_KNOWN_PROJECT_KEYS = {"project", "task_type", "config", "export_mode", "artifacts", "verification", "evaluation",
                       "latency", "shapes", "tolerances", "resolved_config", "profile"}


def _e(value: Any) -> str:
    return html.escape(str(value))


class _Cell:
    """A table cell: text plus an optional CSS class (numbers right-aligned, status colour)."""

    def __init__(self, text: Any, cls: str = "", raw: bool = False, title: str = "") -> None:
        self.text, self.cls, self.raw, self.title = text, cls, raw, title

    def render(self) -> str:
        body = str(self.text) if self.raw else _e(self.text)
        attrs = (f' class="{self.cls}"' if self.cls else "") + (f' title="{_e(self.title)}"' if self.title else "")
        return f"<td{attrs}>{body}</td>"


def _n(text: str) -> _Cell:
    return _Cell(text, "n")


def _status(ok: bool | None, yes: str = "pass", no: str = "FAIL") -> _Cell:
    if ok is None:
        return _Cell("-")
    return _Cell(yes, "ok") if ok else _Cell(no, "bad")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header) if any(header) else ""
    body = "".join(
        "<tr>" + "".join(c.render() if isinstance(c, _Cell) else f"<td>{_e(c)}</td>" for c in r) + "</tr>"
        for r in rows)
    thead = f"<thead><tr>{head}</tr></thead>" if head else ""
    return f"<table>{thead}<tbody>{body}</tbody></table>"


def _png(fig: Any, alt: str) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


# ---------------------------------------------------------------- verdict and failures
def _verdict_section(doc: dict[str, Any]) -> str:
    v = verdict(doc)
    run = doc.get("run", {})
    parts = [f'<div class="verdict {"pass" if v["passed"] else "fail"}" id="verdict">{v["label"]}'
             f'<span class="sub">{_e(v["summary"])} · {_e(fmt.seconds(run.get("duration_s")))} · '
             f'{_e(run.get("finished", ""))}</span></div><main>']
    if v["failures"]:
        items = []
        for f in v["failures"]:
            where = f["nodeid"] or f"end of run ({f.get('when', 'sessionfinish')})"
            detail = f.get("detail") or ""
            more = (f"<details><summary>full message</summary><pre>{_e(detail)}</pre></details>"
                    if detail and detail.strip() != f["message"].strip() else "")
            items.append(f'<li><code>{_e(where)}</code><span class="msg">{_e(f["message"])}</span>{more}</li>')
        parts.append(f'<h2 id="failures">Failures ({len(v["failures"])})</h2><ul class="failures">'
                     + "".join(items) + "</ul>")
    elif v["unexplained"]:
        parts.append(f'<p class="note">The run failed (exit status {_e(run.get("exitstatus"))}) but no failing '
                     "test was recorded: it was interrupted, pytest hit an internal error, or a plugin failed "
                     "the run after the tests. See the CI log.</p>")
    for cid in v["unverified"]:
        why = doc.get("projects", {}).get(cid, {}).get("verification", {}).get("reason", "")
        parts.append(f'<p class="note">UNVERIFIED {_e(cid)}: no deployed artifact was compared with a '
                     f"reference ({_e(why)})</p>")
    return "".join(parts)


def _run_section(doc: dict[str, Any]) -> str:
    run = doc.get("run", {})
    command = run.get("command") or (("pytest " + " ".join(run["argv"])) if run.get("argv") else fmt.MISSING)
    rows: list[list[Any]] = [
        ["command line", _Cell(f"<code>{_e(command)}</code>", raw=True)],
        ["git commit", fmt.short_commit(run.get("git")) if "git" in run else fmt.MISSING],
        ["started", run.get("started", fmt.MISSING)],
        ["duration", fmt.seconds(run.get("duration_s"))],
        ["pytest-xdist workers", run.get("xdist_workers", fmt.MISSING) or "none (serial)"],
    ]
    policy = (run.get("threads") or {}).get("policy") or {}
    for cid, p in policy.items():
        rows.append([f"threads {cid}", f"intra-op {p.get('intra_op') or 'library default'}, "
                                       f"inter-op {p.get('inter_op') or 'library default'} ({p.get('source')})"])
    skipped = [p for p in run.get("problems", []) if p.get("outcome") == "skipped"]
    out = "<h2>Run</h2>" + _table(["", ""], rows)
    if skipped:
        out += (f"<details><summary>{len(skipped)} skipped</summary>"
                + _table(["test", "reason"], [[p["nodeid"], str(p["message"]).removeprefix("Skipped: ")]
                                              for p in skipped]) + "</details>")
    return out


# ---------------------------------------------------------------- per project
def _summary_table(entry: dict[str, Any]) -> str:
    headline, backends = fmt.backend_rows(entry)
    rows = []
    for b in backends:
        lt, mine = b.latency, b.verification
        budget_ok = None if not lt else not lt.get("budget_violations")
        rows.append([
            b.name, b.device, b.precision, _n(b.value), _n(b.delta_text()),
            _n(fmt.ms(lt.get("p50")) if lt else "-"), _n(fmt.ms(lt.get("p95")) if lt else "-"),
            _status(budget_ok, "within", "OVER") if lt and (lt.get("budget") or lt.get("budget_violations")) else _Cell("-"),
            _Cell(f"{sum(r['passed'] for r in mine)}/{len(mine)} passed",
                  "ok" if all(r["passed"] for r in mine) else "bad") if mine else _Cell("-"),
        ])
    if not rows:
        return ""
    label = fmt.metric_label(headline, entry["evaluation"].get("directions"))
    return _table(["backend", "device", "precision", label, "delta vs reference", "p50", "p95",
                   "latency gate", "verification"], rows)


def _metrics_section(entry: dict[str, Any]) -> str:
    """One row per scalar metric, one column per backend; a non-reference cell holds the
    value, its delta vs the reference and the allowed |delta| side by side."""
    ev = entry["evaluation"]
    backends = ev.get("backends", {})
    reference = ev.get("reference")
    tols = entry.get("tolerances")
    names = list(backends)
    metrics = list(dict.fromkeys(k for e in backends.values() for k, v in (e.get("metrics") or {}).items()
                                 if isinstance(v, (int, float)) and not isinstance(v, bool)))
    if not metrics:
        return ""
    rows = []
    directions = ev.get("directions")
    for k in metrics:
        word = fmt.DIRECTION_WORDS.get((directions or {}).get(k, ""), "")
        row: list[Any] = [_Cell(fmt.metric_label(k, directions), "", title=word) if word else k]
        for name in names:
            e = backends[name]
            value = (e.get("metrics") or {}).get(k)
            if e.get("status") not in (None, "ok", "no-reference"):
                row.append(_Cell(e.get("status"), "warn"))
                continue
            if name == reference or value is None:
                row.append(_n(fmt.metric(value) if value is not None else "-"))
                continue
            d = (e.get("deltas") or {}).get(k)
            tol = (tols or {}).get("metrics", {}).get(name, {}).get(k)
            allowed, ok = fmt.gate_text(e, k, tol) if tols is not None or e.get("gate") else (f"allowed {fmt.MISSING}", None)
            mark = "" if ok is None else (" ✓" if ok else " ✗ OVER")
            row.append(_Cell(f"{fmt.metric(value)}  Δ {fmt.delta(d)} ({allowed}){mark}",
                             "n" + ("" if ok is None else (" ok" if ok else " bad"))))
        rows.append(row)
    header = ["metric", *(f"{n} (reference)" if n == reference else n for n in names)]
    notes = "".join(f'<p class="note">{_e(n)}: {_e(e.get("status"))}: {_e(e.get("reason") or e.get("error", ""))}</p>'
                    for n, e in backends.items() if e.get("status") not in (None, "ok", "no-reference"))
    legend = ""
    if directions:
        legend = ("<p class=meta>" + ", ".join(f"{_e(fmt.DIRECTION_MARKS[d])} {_e(fmt.DIRECTION_WORDS[d])}"
                                               for d in fmt.DIRECTION_MARKS if d in directions.values()) + "</p>")
    return "<h3>Metrics (value, delta vs reference, allowed change)</h3>" + legend + _table(header, rows) + notes


def _per_class(backends: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """per_class_* metric -> backend -> class -> value."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name, entry in backends.items():
        for k, v in (entry.get("metrics") or {}).items():
            if k.startswith("per_class") and isinstance(v, dict) and v and all(
                    isinstance(x, (int, float)) for x in v.values()):
                out.setdefault(k, {})[name] = v
    return out


def _per_class_section(backends: dict[str, Any]) -> str:
    series = _per_class(backends)
    if not series:
        return ""
    import matplotlib.pyplot as plt
    import numpy as np

    keys = list(series)
    classes = list(dict.fromkeys(c for per in series.values() for vals in per.values() for c in vals))
    names = list(dict.fromkeys(n for per in series.values() for n in per))
    panel = max(3.2, 0.35 * len(classes) * max(1.0, len(names) / 2) + 1.0)  # room for every bar and label
    ncols = max(1, min(len(keys), int(14 // panel)))
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols, 2.9 * nrows), squeeze=False)
    width = 0.8 / len(names)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    top = max(v for per in series.values() for vals in per.values() for v in vals.values())
    for idx, key in enumerate(keys):
        ax = axes[idx // ncols][idx % ncols]
        for i, name in enumerate(names):
            vals = series[key].get(name, {})
            ax.bar(np.arange(len(classes)) + (i - (len(names) - 1) / 2) * width,
                   [vals.get(c, 0) for c in classes], width, label=name, color=colors[i % len(colors)])
        ax.set_xticks(np.arange(len(classes)), classes, rotation=40 if len(classes) > 3 else 0,
                      ha="right" if len(classes) > 3 else "center", fontsize=8)
        ax.set_title(key.removeprefix("per_class_").replace("_", " "), fontsize=10)
        ax.set_ylim(0, 1.05 if 0 <= top <= 1 else top * 1.1)
        ax.grid(axis="y", alpha=.3)
    for idx in range(len(keys), nrows * ncols):
        axes[idx // ncols][idx % ncols].axis("off")
    fig.tight_layout()
    handles, labels = axes[0][0].get_legend_handles_labels()
    # legend below the plots, never over a bar
    fig.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=len(names), fontsize=8,
               frameon=False)
    plot = _png(fig, "per-class metrics per backend")
    rows = [[key.removeprefix("per_class_"), name, *(_n(fmt.metric(series[key][name].get(c))) for c in classes)]
            for key in keys for name in series[key]]
    return ("<h3>Per-class metrics</h3>" + plot
            + "<details><summary>values</summary>" + _table(["metric", "backend", *classes], rows) + "</details>")


def _latency_section(entry: dict[str, Any]) -> str:
    lat = entry.get("latency") or {}
    if not lat:
        return ""
    rows = []
    for name, v in lat.items():
        budget = v.get("budget") or {}
        violations = v.get("budget_violations") or []
        rows.append([name, v.get("device", "-"), v.get("precision", "-"),
                     *(_n(fmt.ms(v.get(k))) for k in ("p50", "p90", "p95", "p99", "mean")),
                     _n(v.get("rounds", "-")),
                     _n(fmt.pct(v["outlier_share"], 0) if "outlier_share" in v else fmt.MISSING),
                     ", ".join(f"{k} ≤ {fmt.ms(b)}" for k, b in budget.items()) or "none",
                     _Cell("; ".join(x.strip().lstrip("- ") for x in violations), "bad") if violations
                     else _status(True, "ok")])
    out = "<h3>Latency (model, per round)</h3>" + _table(
        ["backend", "device", "precision", "p50", "p90", "p95", "p99", "mean", "rounds", "outliers", "budget",
         "gate"], rows)
    warnings = [f"{n}: {v['spread_warning']}" for n, v in lat.items() if v.get("spread_warning")]
    out += "".join(f'<p class="note">{_e(w)}</p>' for w in warnings)
    stages = {n: v.get("stages_median_ms") or {} for n, v in lat.items()}
    names = list(dict.fromkeys(s for st in stages.values() for s in st))
    if names:
        out += "<h3>Per-stage latency (median)</h3>" + _table(
            ["backend", *names], [[n, *(_n(fmt.ms(st.get(s)) if s in st else "-") for s in names)]
                                  for n, st in stages.items()])
    plot = _latency_plot(lat, stages)
    return out + plot


def _latency_plot(lat: dict[str, Any], stages: dict[str, dict[str, float]]) -> str:
    with_samples = [n for n, v in lat.items() if v.get("samples_ms")]
    parts = [n for n in dict.fromkeys(s for st in stages.values() for s in st) if n != "end_to_end"]
    if not with_samples and not parts:
        return ""
    import matplotlib.pyplot as plt

    ncols = int(bool(with_samples)) + int(bool(parts))
    names = list(lat)
    fig, axes = plt.subplots(1, ncols, figsize=(5.5 * ncols, 0.9 + 0.45 * len(names)), squeeze=False)
    col = 0
    if with_samples:
        ax = axes[0][col]
        data = [lat[n]["samples_ms"] for n in with_samples]
        ax.boxplot(data, orientation="horizontal", tick_labels=with_samples, showfliers=True)
        lo, hi = min(min(d) for d in data), max(max(d) for d in data)
        if lo > 0 and hi / lo > 30:
            ax.set_xscale("log")
        ax.set_xlabel("model latency per round (ms)")
        ax.set_title("latency distribution", fontsize=10)
        ax.grid(axis="x", alpha=.3)
        col += 1
    if parts:
        ax = axes[0][col]
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        left = [0.0] * len(names)
        for i, stage in enumerate(parts):
            widths = [stages.get(n, {}).get(stage, 0.0) for n in names]
            ax.barh(names, widths, left=left, label=stage, color=colors[i % len(colors)])
            left = [a + b for a, b in zip(left, widths, strict=True)]
        ax.set_xlabel("median time per stage (ms)")
        ax.set_title("per-stage breakdown", fontsize=10)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.35 - 0.05 * len(names)), ncol=len(parts), fontsize=8,
                  frameon=False)
        ax.invert_yaxis()
    return _png(fig, "latency distribution and per-stage breakdown")


def _profile_cell(cell: dict[str, Any] | None) -> _Cell:
    if not cell:
        return _Cell("-")
    if cell.get("status") != "timed":
        into = f" into {cell['into']}" if cell.get("into") else ""
        return _Cell(cell.get("status", "-"), "meta", title=f"{cell.get('status')}{into}")
    prec = cell.get("precision") or "-"
    kernels = ", ".join(cell.get("kernels") or [])
    return _Cell(f"{cell['ms']:.3f} ms · {100 * (cell.get('share') or 0):.1f} % · {prec}", "n",
                 title=f"kernels: {kernels}" + (f"; includes {', '.join(cell['includes'])}" if cell.get("includes") else ""))


def _profile_section(profile: dict[str, Any] | None) -> str:
    """--awml-profile: the top nodes as a chart (time per backend) and a table (time,
    share of the graph, precision each node ran in), time by op type, then every node."""
    if not profile or not profile.get("nodes"):
        return ""
    from awml_harness.profile.join import short_node, top_rows

    names = list(profile.get("backends", {}))
    top = top_rows(profile)
    graphs = {r["graph"] for r in profile["nodes"]}

    def label(r: dict[str, Any], width: int = 48) -> str:
        return short_node(r["node"], width) if len(graphs) == 1 else f"{r['graph']}: {short_node(r['node'], width - 10)}"

    meta = []
    for name, b in profile["backends"].items():
        for g, e in (b.get("graphs") or {}).items():
            cov = e.get("coverage")
            meta.append([name, g, b.get("method", ""), _n(fmt.ms(e.get("total_ms"))), _n(fmt.ms(e.get("unprofiled_ms"))),
                         _n(f"{cov:.2f}" if isinstance(cov, (int, float)) else "-"), _n(fmt.ms(e.get("unmapped_ms"))),
                         _n(e.get("rounds", "-")), _Cell(f"<code>{_e(b.get('trace', ''))}</code>", raw=True)])
    out = (f"<h3>Per-node profile (top {len(top)} of {len(profile['nodes'])} nodes)</h3>"
           + _profile_plot(profile, top, names, label)
           + _table(["node", "op", *names], [[_Cell(label(r, 64), title=r["node"]), r["op_type"],
                                              *(_profile_cell(r["backends"].get(n)) for n in names)] for r in top])
           + _table(["backend", "graph", "method", "profiled total", "unprofiled", "total / unprofiled", "unmapped",
                     "rounds", "trace (chrome://tracing, ui.perfetto.dev)"], meta))
    notes = sorted({n for b in profile["backends"].values() for n in b.get("notes") or []})
    out += "".join(f"<p class=meta>{_e(n)}</p>" for n in notes)
    rows = [[r["graph"], _Cell(r["node"]), r["op_type"], *(_profile_cell(r["backends"].get(n)) for n in names)]
            for r in profile["nodes"]]
    return out + (f"<details><summary>every node ({len(rows)}; fused: ran inside another node's kernel, grouped: "
                  "timed with another node's module, folded: no kernel ran it, absent: not in that backend's "
                  "graph)</summary>" + _table(["graph", "node", "op", *names], rows) + "</details>")


def _profile_plot(profile: dict[str, Any], top: list[dict[str, Any]], names: list[str], label: Any) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    fig, (ax, ops_ax) = plt.subplots(1, 2, figsize=(13, 1.2 + 0.42 * max(len(top), 3)),
                                     gridspec_kw={"width_ratios": [3, 2]})
    height = 0.8 / max(len(names), 1)
    y = np.arange(len(top))
    for i, name in enumerate(names):
        cells = [r["backends"].get(name) or {} for r in top]
        ms = [c.get("ms", 0.0) if c.get("status") == "timed" else 0.0 for c in cells]
        bars = ax.barh(y + (i - (len(names) - 1) / 2) * height, ms, height, label=name, color=colors[i % len(colors)])
        for bar, c in zip(bars, cells, strict=True):
            if c.get("status") == "timed":
                ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2,
                        f" {100 * (c.get('share') or 0):.0f}% {c.get('precision') or ''}", va="center", fontsize=7)
    ax.set_yticks(y, [label(r, 40) for r in top], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms per round (share of its graph, precision it ran in)")
    ax.set_title("slowest nodes", fontsize=10)
    ax.grid(axis="x", alpha=.3)
    ax.legend(fontsize=8, loc="lower right")
    by_op: dict[str, dict[str, float]] = {}
    for r in profile["nodes"]:
        for name, c in r["backends"].items():
            by_op.setdefault(r["op_type"], {}).setdefault(name, 0.0)
            by_op[r["op_type"]][name] += c.get("ms") or 0.0
    ops = sorted(by_op, key=lambda o: -max(by_op[o].values()))[:8]
    left = np.zeros(len(names))
    for i, op in enumerate(ops):
        widths = np.array([by_op[op].get(n, 0.0) for n in names])
        ops_ax.barh(names, widths, left=left, label=op, color=colors[i % len(colors)])
        left += widths
    ops_ax.invert_yaxis()
    ops_ax.set_xlabel("ms per round by op type (top 8)")
    ops_ax.set_title("time by op type", fontsize=10)
    ops_ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.25), ncol=4, frameon=False)
    fig.tight_layout()
    return _png(fig, "per-node profile: slowest nodes per backend and time by op type")


def _leaf_num(value: Any) -> float:
    """For picking the worst sample: a problem (NaN, shape mismatch: a string) ranks first."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return float("inf")


def verification_groups(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One group per scenario and output: how many samples passed, and the worst sample."""
    groups: dict[tuple[str, str], dict[str, Any]] = {}
    for res in results:
        for leaf in res["leaves"]:
            g = groups.setdefault((res["scenario"], leaf["path"]), {
                "scenario": res["scenario"], "output": leaf["path"], "samples": 0, "failed": 0, "worst": None,
                "worst_sample": None, "atol": leaf.get("atol"), "rtol": leaf.get("rtol"), "min_atol": None,
                "problem": ""})
            g["samples"] += 1
            g["failed"] += 0 if leaf["passed"] else 1
            if g["worst"] is None or _leaf_num(leaf.get("max_abs_diff")) > _leaf_num(g["worst"].get("max_abs_diff")):
                g["worst"], g["worst_sample"] = leaf, res.get("sample_id", res.get("sample_index"))
            m = leaf.get("min_atol")
            if isinstance(m, (int, float)) and (g["min_atol"] is None or m > g["min_atol"]):
                g["min_atol"] = m
            if leaf.get("problem") and not g["problem"]:
                g["problem"] = leaf["problem"]
    return list(groups.values())


def _verification_section(entry: dict[str, Any]) -> str:
    ver = entry["verification"]
    results = ver.get("results", [])
    status = ver.get("status", fmt.MISSING)
    cls = {"verified": "ok", "failed": "bad"}.get(status, "warn")
    out = (f'<h3>Verification</h3><p>status: <span class="{cls}">{_e(status)}</span>'
           f'{" (" + _e(ver["reason"]) + ")" if ver.get("reason") else ""}; '
           f'{ver.get("passed", 0)}/{ver.get("passed", 0) + ver.get("failed", 0)} samples passed</p>')
    if not results:
        return out
    rows = []
    for g in verification_groups(results):
        w = g["worst"]
        rows.append([g["scenario"], g["output"],
                     _Cell(f"{g['samples'] - g['failed']}/{g['samples']}", "ok n" if not g["failed"] else "bad n"),
                     str(g["worst_sample"]), _n(fmt.diff(w.get("max_abs_diff"))), _n(fmt.diff(w.get("max_rel_diff"))),
                     _n(fmt.pct(w["mismatch_share"], 2) if "mismatch_share" in w else "-"),
                     _n(fmt.diff(g["atol"])), _n(fmt.diff(g["rtol"])), _n(fmt.diff(g["min_atol"])),
                     _Cell(g["problem"], "bad") if g["problem"] else ""])
    out += _table(["scenario", "output", "samples passed", "worst sample", "max abs diff", "max rel diff",
                   "mismatched (worst)", "atol", "rtol", "atol that would pass", "problem"], rows)
    out += _diff_hist_plot(results)
    out += _localization_table(results)
    return out


def _localization_table(results: list[dict[str, Any]]) -> str:
    """--awml-localize: per localised sample, the first nodes whose outputs diverge."""
    rows = []
    for res in results:
        loc = res.get("localization")
        if not loc:
            continue
        for i, d in enumerate(loc.get("first") or [], 1):
            rows.append([res["scenario"], res.get("sample_id", ""), _n(i), d.get("graph", ""), d.get("node", ""),
                         d.get("op_type", ""), d.get("tensor", ""), _n(fmt.diff(d.get("max_abs_diff"))),
                         _n(f"atol {fmt.diff(d.get('atol'))}, rtol {fmt.diff(d.get('rtol'))}")])
        if not loc.get("first"):
            rows.append([res["scenario"], res.get("sample_id", ""), "-", "",
                         "; ".join(loc.get("notes") or []) or "no intermediate tensor differs", "", "", "", ""])
    if not rows:
        return ""
    return "<h4>Localisation: first diverging nodes</h4>" + _table(
        ["scenario", "sample", "#", "graph", "node", "op", "tensor", "max abs diff", "tolerance"], rows)


def _memory_section(entry: dict[str, Any]) -> str:
    """Peak memory per backend, when the run recorded it (evaluation.backends.<name>.memory)."""
    rows = []
    for name, e in entry["evaluation"].get("backends", {}).items():
        mem = e.get("memory")
        if isinstance(mem, dict):
            rows.append([name, _n(fmt.mb(mem.get("peak_rss_bytes"))), _n(fmt.mb(mem.get("peak_rss_increase_bytes"))),
                         _n(fmt.mb(mem["cuda_peak_allocated_bytes"]) if "cuda_peak_allocated_bytes" in mem else "-"),
                         mem.get("method", "")])
    if not rows:
        return ""
    return "<h3>Memory</h3>" + _table(["backend", "peak RSS", "RSS increase", "CUDA peak allocated", "method"], rows)


def _diff_hist_plot(results: list[dict[str, Any]]) -> str:
    """One small panel per output; bars per scenario: elements per |test - ref| decade,
    summed over samples (counts, never negative)."""
    hists: dict[str, dict[str, list[int]]] = {}
    for res in results:
        for leaf in res["leaves"]:
            h = leaf.get("diff_hist")
            if h:
                per = hists.setdefault(leaf["path"], {})
                prev = per.get(res["scenario"], [0] * len(h))
                per[res["scenario"]] = [a + b for a, b in zip(prev, h, strict=False)]
    if not hists:
        return ""
    import matplotlib.pyplot as plt
    import numpy as np

    outputs = list(hists)
    scenarios = list(dict.fromkeys(s for per in hists.values() for s in per))
    ncols = min(3, len(outputs))
    nrows = -(-len(outputs) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.3 * ncols, 2.3 * nrows), squeeze=False)
    n_bins = max(len(h) for per in hists.values() for h in per.values())
    labels = ["0"] + [f"1e{e}" for e in range(-12, -12 + n_bins - 1)]
    width = 0.8 / len(scenarios)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for idx, out in enumerate(outputs):
        ax = axes[idx // ncols][idx % ncols]
        for i, sc in enumerate(scenarios):
            counts = hists[out].get(sc)
            if counts:
                ax.bar(np.arange(len(counts)) + (i - (len(scenarios) - 1) / 2) * width, counts, width,
                       label=sc, color=colors[i % len(colors)])
        ax.set_xticks(np.arange(n_bins)[::2], labels[::2], rotation=60, fontsize=7)
        ax.set_ylim(bottom=0)
        ax.set_title(out, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for idx in range(len(outputs), nrows * ncols):
        axes[idx // ncols][idx % ncols].axis("off")
    handles, labels_ = axes[0][0].get_legend_handles_labels()
    fig.supxlabel("|test - ref| per element (lower edge of decade)", fontsize=8)
    fig.supylabel("elements", fontsize=8)
    fig.tight_layout()
    fig.legend(handles, labels_, loc="upper center", bbox_to_anchor=(0.5, 0.0), ncol=min(len(scenarios), 3),
               fontsize=8, frameon=False)
    return _png(fig, "difference histograms per output")


def _shapes_section(entry: dict[str, Any]) -> str:
    if "shapes" not in entry:
        return f"<h3>Shape sweep</h3><p class=meta>{fmt.MISSING}</p>"
    if not entry["shapes"]:
        return "<h3>Shape sweep</h3><p class=meta>no shape test ran (no dynamic shapes, or deselected)</p>"
    rows = []
    for s in entry["shapes"]:
        for c in s["checked"]:
            worst: dict[str, Any] = max((leaf for leaf in c["leaves"]), key=lambda leaf: _leaf_num(leaf.get("max_abs_diff")),
                        default={})
            rows.append([s["which"], s["scenario"], c["label"], _status(c["passed"]),
                         _n(fmt.diff(worst.get("max_abs_diff"))), _n(fmt.diff(worst.get("atol")))])
    return "<h3>Shape sweep</h3>" + _table(["shapes", "scenario", "graph and inputs", "result", "max abs diff",
                                            "atol"], rows)


def _artifacts_section(entry: dict[str, Any]) -> str:
    arts = entry.get("artifacts") or []
    if not arts:
        return ""
    rows = [[a["name"], a.get("variant", ""), _n(fmt.mb(a.get("size_bytes"))), _n(fmt.seconds(a.get("build_seconds"))),
             "reused" if a.get("reused") else "built", _Cell(f"<code>{_e(a.get('path', ''))}</code>", raw=True)]
            for a in arts]
    return "<h3>Artifacts</h3>" + _table(["name", "variant", "size", "build time", "cache", "path"], rows)


def _config_section(entry: dict[str, Any]) -> str:
    tols = entry.get("tolerances")
    out = "<h3>Resolved tolerances</h3>"
    if tols is None:
        out += f"<p class=meta>{fmt.MISSING}</p>"
    else:
        vrows = [[sc, o, _n(fmt.diff(t.get("atol"))), _n(fmt.diff(t.get("rtol")))]
                 for sc, per in tols.get("verification", {}).items() for o, t in per.items()]
        if vrows:
            out += _table(["verification scenario", "output", "atol", "rtol"], vrows)
        mrows = []
        for b, per in tols.get("metrics", {}).items():
            by_tol: dict[str, list[str]] = {}
            for m, t in per.items():
                if isinstance(t, dict):  # schema 2: the gate's record of the rule
                    text = (f"{fmt.metric(t.get('allowed'))} worse" if t.get("one_sided") else
                            f"±{fmt.metric(t.get('allowed'))}") + (f" ({t['rule']})" if "rtol" in str(t.get("rule")) else "")
                else:
                    text = "not gated" if t is None else f"±{fmt.metric(t)}"
                by_tol.setdefault(text, []).append(m)
            mrows += [[b, _n(t), ", ".join(ms)] for t, ms in by_tol.items()]
        if mrows:
            out += _table(["backend", "allowed |delta|", "metrics"], mrows)
        if not vrows and not mrows:
            out += "<p class=meta>no verification or gated metric in this run</p>"
    cfg = entry.get("resolved_config")
    text = json.dumps(cfg, indent=1, sort_keys=False) if cfg is not None else fmt.MISSING
    return out + f"<details><summary>resolved deploy config</summary><pre>{_e(text)}</pre></details>"


def _generic(value: Any) -> str:
    """Data this renderer has no dedicated view for (new keys): a table when it is a list
    or mapping of flat records, else JSON."""
    records = None
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        records = value
    elif isinstance(value, dict) and value and all(isinstance(v, dict) for v in value.values()):
        records = [{"": k, **v} for k, v in value.items()]
    if records is not None and all(not isinstance(x, (dict, list)) for r in records for x in r.values()):
        cols = list(dict.fromkeys(k for r in records for k in r))
        return _table(cols, [[r.get(c, "") for c in cols] for r in records])
    return f"<pre>{_e(json.dumps(value, indent=1))}</pre>"


def _project_section(cid: str, entry: dict[str, Any]) -> str:
    parts = [f"<h2>{_e(cid)}</h2><p class=meta>{_e(entry.get('task_type', ''))}, export "
             f"{_e(entry.get('export_mode', ''))}, config <code>{_e(entry.get('config', ''))}</code></p>",
             _summary_table(entry),
             _metrics_section(entry),
             _per_class_section(entry["evaluation"].get("backends", {})),
             _latency_section(entry),
             _profile_section(entry.get("profile")),
             _memory_section(entry),
             _verification_section(entry),
             _shapes_section(entry),
             _artifacts_section(entry),
             _config_section(entry)]
    for key in entry:
        if key not in _KNOWN_PROJECT_KEYS:
            parts.append(f"<h3>{_e(key)}</h3>" + _generic(entry[key]))
    return "".join(p for p in parts if p)


def render_report(doc: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    v = verdict(doc)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{v['label']}: awml-harness report</title><style>{CSS}</style></head><body>",
        _verdict_section(doc),
        _run_section(doc),
    ]
    for cid, entry in doc.get("projects", {}).items():
        parts.append(_project_section(cid, entry))
    machine = doc.get("machine") or {}
    parts.append("<h2>Machine</h2>" + _table(["", ""], [[k, v] for k, v in machine.items() if v is not None]))
    parts.append("</main></body></html>")
    return "\n".join(p for p in parts if p)
