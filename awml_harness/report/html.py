"""Self-contained HTML report from the metrics JSON: tables plus matplotlib plots
embedded as base64 PNG, so one file can be attached to a CI run and opened anywhere.
Every number shown comes from the metrics JSON document."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from awml_harness.report.summary import rows_for


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _latency_plot(latency: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt

    names = [n for n, v in latency.items() if v.get("samples_ms")]
    if not names:
        return ""
    fig, ax = plt.subplots(figsize=(6, 0.6 + 0.5 * len(names)))
    ax.boxplot([latency[n]["samples_ms"] for n in names], orientation="horizontal", tick_labels=names)
    ax.set_xlabel("model latency per round (ms)")
    ax.set_xscale("log")
    return _png(fig)


def _per_class_plot(backends: dict[str, Any]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    series = {}
    key = None
    for name, entry in backends.items():
        for k, v in (entry.get("metrics") or {}).items():
            if isinstance(v, dict) and v and all(isinstance(x, (int, float)) for x in v.values()) and k.startswith("per_class"):
                key = key or k
                if k == key:
                    series[name] = v
    if not series:
        return ""
    classes = list(next(iter(series.values())))
    fig, ax = plt.subplots(figsize=(max(5, len(classes) * 0.9), 3))
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(classes)) + i * width, [values.get(c, 0) for c in classes], width, label=name)
    ax.set_xticks(np.arange(len(classes)) + 0.4 - width / 2, classes, rotation=30)
    ax.set_title(key)
    ax.legend()
    return _png(fig)


def _error_plot(results: list[dict[str, Any]]) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    hists: dict[str, np.ndarray] = {}
    for res in results:
        for leaf in res["leaves"]:
            if leaf.get("diff_hist"):
                key = f"{res['test']} {leaf['path']}"
                hists[key] = hists.get(key, 0) + np.asarray(leaf["diff_hist"])
    if not hists:
        return ""
    labels = ["0"] + [f"1e{e}" for e in range(-12, 2)]
    fig, ax = plt.subplots(figsize=(7, 3))
    for key, counts in list(hists.items())[:12]:
        ax.step(np.arange(len(counts)), counts, where="mid", label=key)
    ax.set_xticks(np.arange(len(labels)), labels, rotation=60, fontsize=7)
    ax.set_yscale("symlog")
    ax.set_xlabel("|test - ref| (lower decade edge)")
    ax.set_ylabel("elements")
    ax.legend(fontsize=6)
    return _png(fig)


def render_report(doc: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    run, machine = doc["run"], doc["machine"]
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>awml-harness report</title>",
        "<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse;margin:.5em 0}"
        "td,th{border:1px solid #ccc;padding:2px 8px;text-align:left}th{background:#eee}</style></head><body>",
        "<h1>awml-harness report</h1>",
        f"<p>run {html.escape(run['started'])} .. {html.escape(run['finished'])}, exit status {run['exitstatus']}, "
        f"tests {html.escape(str(run['tests']))}</p>",
        _table(["machine", "value"], [[k, v] for k, v in machine.items() if v is not None]),
    ]
    for cid, entry in doc["projects"].items():
        parts.append(f"<h2>{html.escape(cid)}</h2><p>{html.escape(entry['task_type'])}, config "
                     f"{html.escape(entry['config'])}</p>")
        header, rows = rows_for(entry)
        if rows:
            parts.append(_table(header, rows))
        backends = entry["evaluation"]["backends"]
        metric_rows = []
        for name, e in backends.items():
            for k, v in (e.get("metrics") or {}).items():
                if isinstance(v, (int, float)):
                    metric_rows.append([name, k, v, (e.get("deltas") or {}).get(k, "")])
        if metric_rows:
            parts.append("<h3>Metrics</h3>" + _table(["backend", "metric", "value", "delta vs reference"], metric_rows))
            parts.append(_per_class_plot(backends))
        if entry["latency"]:
            lat_rows = [[n, v.get("device"), v.get("precision"), v.get("median"), v.get("p90"), v.get("p95"),
                         v.get("p99"), v.get("rounds")] for n, v in entry["latency"].items()]
            parts.append("<h3>Latency (ms)</h3>" + _table(
                ["backend", "device", "precision", "median", "p90", "p95", "p99", "rounds"], lat_rows))
            parts.append(_latency_plot(entry["latency"]))
        results = entry["verification"]["results"]
        if results:
            ver_rows = [[r["scenario"], r["sample_id"], "pass" if r["passed"] else "FAIL", leaf["path"],
                         leaf["max_abs_diff"], leaf["max_rel_diff"], leaf["min_atol"]]
                        for r in results for leaf in r["leaves"]]
            parts.append("<h3>Verification</h3>" + _table(
                ["scenario", "sample", "result", "output", "max abs diff", "max rel diff", "min atol"], ver_rows))
            parts.append(_error_plot(results))
            from awml_harness.localize import LOCALIZATION_HEADER, localization_rows

            located = localization_rows(results)  # --awml-localize
            if located:
                parts.append("<h3>Localisation: first diverging nodes</h3>" + _table(LOCALIZATION_HEADER, located))
        if entry["artifacts"]:
            parts.append("<h3>Artifacts</h3>" + _table(
                ["name", "variant", "size (bytes)", "build (s)", "reused", "path"],
                [[a["name"], a.get("variant", ""), a["size_bytes"], a["build_seconds"], a["reused"], a["path"]]
                 for a in entry["artifacts"]]))
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_report(path: Path, doc: dict[str, Any]) -> None:
    from awml_harness.atomic import atomic_open

    text = render_report(doc)
    with atomic_open(path) as fh:
        fh.write(text)
