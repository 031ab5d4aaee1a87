"""A compact markdown summary of a run for a pull-request comment or the GitHub Actions
step summary, and the failures as GitHub `::error` workflow commands. Built from the
metrics JSON document alone, like the HTML report."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from awml_harness.report import format as fmt
from awml_harness.report.verdict import verdict

MAX_FAILURES = 25  # a PR comment stays readable; the HTML report and the CI log have all


def _cell(text: Any) -> str:
    """Markdown table cells: no pipes or newlines inside."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: str) -> str:
    text = str(text).replace("\n", " ")
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{text}{pad}{fence}"


def _project_rows(entry: dict[str, Any]) -> tuple[str, list[list[str]]]:
    headline, backends = fmt.backend_rows(entry)
    with_memory = any(isinstance(b.evaluation.get("memory"), dict) for b in backends)
    rows = []
    for b in backends:
        e, lt, mine = b.evaluation, b.latency, b.verification
        over = b.failed_metrics()
        if b.is_reference or not e or e.get("status") != "ok":
            gate = "-"
        else:
            gate = "✅" if e.get("passed", not over) and not over else "❌ " + ", ".join(over or ["failed"])
        verified = "-" if not mine else f"{sum(r['passed'] for r in mine)}/{len(mine)}" + (
            " ✅" if all(r["passed"] for r in mine) else " ❌")
        p95 = fmt.ms(lt.get("p95")) if lt else "-"
        if lt.get("budget_violations"):
            p95 += " ❌"
        row = [b.name, f"{b.precision}:{b.device}", b.value, b.delta_text(), gate, fmt.ms(lt.get("p50")) if lt else "-",
               p95, verified]
        if with_memory:
            mem = e.get("memory")
            row.append(fmt.mb(mem.get("peak_rss_bytes")) if isinstance(mem, dict) else "-")
        rows.append(row)
    return headline, rows


def render_markdown(doc: dict[str, Any], *, report_url: str | None = None) -> str:
    """Verdict, failures, then one table per project: key metric with its delta and the
    allowed tolerance, latency p50/p95, verification per backend."""
    v = verdict(doc)
    run = doc.get("run", {})
    icon = "✅" if v["passed"] else "❌"
    lines = [f"### {icon} awml-harness: {v['label']}", "",
             f"{v['summary']} · {fmt.seconds(run.get('duration_s'))} · commit "
             f"{fmt.short_commit(run.get('git')) if 'git' in run else fmt.MISSING}", ""]
    failures = v["failures"]
    if failures:
        lines.append(f"**Failures ({len(failures)})**")
        lines.append("")
        for f in failures[:MAX_FAILURES]:
            where = _code(f["nodeid"]) if f["nodeid"] else "end of run"
            lines.append(f"- {where}: {f['message']}")
        if len(failures) > MAX_FAILURES:
            lines.append(f"- … and {len(failures) - MAX_FAILURES} more (see the HTML report or the CI log)")
        lines.append("")
    elif v["unexplained"]:
        lines += [f"The run failed (exit status {run.get('exitstatus')}) but no failing test was recorded; "
                  "see the CI log.", ""]
    for cid in v["unverified"]:
        why = doc.get("projects", {}).get(cid, {}).get("verification", {}).get("reason", "")
        lines += [f"⚠️ **{cid} unverified**: no deployed artifact was compared with a reference ({why})", ""]
    for cid, entry in doc.get("projects", {}).items():
        headline, rows = _project_rows(entry)
        ver = entry["verification"]
        status = ver.get("status", fmt.MISSING)
        lines.append(f"**{cid}** ({entry.get('task_type', '')}, export {entry.get('export_mode', '')}): "
                     f"verification {status}, {ver.get('passed', 0)}/{ver.get('passed', 0) + ver.get('failed', 0)} "
                     "samples passed")
        lines.append("")
        if rows:
            header = ["backend", "precision:device", fmt.metric_label(headline, entry["evaluation"].get("directions")),
                      "delta (allowed)", "metric gate", "p50", "p95",
                      "verified", "peak RSS"][:len(rows[0])]
            lines.append("| " + " | ".join(header) + " |")
            lines.append("|" + "|".join("---" for _ in header) + "|")
            lines += ["| " + " | ".join(_cell(c) for c in r) + " |" for r in rows]
            lines.append("")
    if report_url:
        lines += [f"[full report]({report_url})", ""]
    command = run.get("command")
    if command:
        lines += ["<details><summary>command line</summary>", "", f"```\n{command}\n```", "", "</details>", ""]
    return "\n".join(lines)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_annotations(doc: dict[str, Any]) -> list[str]:
    """One `::error` workflow command per failure (file and line when the test's location
    is known), as GitHub Actions reads them from the job log."""
    out = []
    for f in verdict(doc)["failures"]:
        props = []
        if f.get("file"):
            props.append(f"file={_escape_property(f['file'])}")
            if f.get("line"):
                props.append(f"line={int(f['line'])}")
        title = f["nodeid"] or "awml-harness end-of-run check"
        props.append(f"title={_escape_property(title)}")
        out.append(f"::error {','.join(props)}::{_escape_data(f.get('detail') or f['message'])}")
    return out


def append_step_summary(text: str, environ: Any = None) -> Path | None:
    """Append to $GITHUB_STEP_SUMMARY when set (GitHub Actions); the file is GitHub's,
    so appended, never replaced. Returns the path written, or None."""
    env = os.environ if environ is None else environ
    target = env.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    with open(target, "a", encoding="utf-8") as fh:
        fh.write(text if text.endswith("\n") else text + "\n")
    return Path(target)
