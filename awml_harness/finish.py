"""The end of a run, on the process that writes the metrics JSON: chunked evaluations
merged and judged, the metrics JSON and every file the run was asked for written, and
what failed said once. `HarnessSession.finish` calls `finish`; the plugin only wires.

Every file is written atomically. A file that cannot be written fails the run with one
line naming it and what to change (a CI step would otherwise read a stale file).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from awml_harness.protocols import HarnessLike
from awml_harness.recorder import RunRecord


@dataclass(frozen=True)
class EndOptions:
    """What the command line asks of the end of the run (plain values from pytest's options)."""

    rootdir: Path
    invocation_dir: Path
    argv: tuple[str, ...] = ()
    workers: int = 0
    collect_only: bool = False
    strict: bool = False
    metrics_json: str | None = None
    suggest: str | None = None  # None: off; "": the default path beside the metrics JSON
    headroom: float = 2.0
    report: str | None = None
    markdown: str | None = None
    shard_json: str | None = None
    load: Mapping[str, Any] = field(default_factory=dict)  # how the configs were loaded (shard files)
    mlflow_uri: str | None = None  # --awml-mlflow: None off, "" on with the default URI
    mlflow_models: bool = False  # --awml-mlflow-models


@dataclass(frozen=True)
class Outcome:
    """What the end of the run produced: the document, where it went, what failed there."""

    doc: dict[str, Any]
    path: Path
    exitstatus: int
    gate_failures: tuple[str, ...] = ()
    notes: tuple[tuple[str, str], ...] = ()  # (title, text) for the terminal summary
    write_error: str | None = None  # the metrics JSON itself could not be written
    markdown: Path | None = None  # where the markdown summary went (rewritten if the status changes)
    tracking: Any = None  # the MLflow store the run was logged to (report/mlflow_client.Tracking)
    files: tuple[Path, ...] = ()  # the further files written (reports, summaries), logged with the run


def _abs(path: str | None, root: Path) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else root / p


def merge_chunks(harness: HarnessLike, records: Sequence[dict[str, Any]]
                 ) -> tuple[list[dict[str, Any]], list[str], list[tuple[str, str]]]:
    """Chunk records -> one judged evaluation record per backend (as a serial run's test
    writes it), the gate failures and the warnings of the merged evaluations."""
    from awml_harness.evaluation.merge import merge_chunks as merge
    from awml_harness.evaluation.results import ERROR, gate_message

    chunks: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        if rec.get("kind") == "evaluation-chunk" and rec.get("config") in harness.configs:
            chunks.setdefault(rec["config"], []).append(rec)
    out, failures, notes = list(records), [], []
    for cid, recs in chunks.items():
        ev = harness.configs[cid].evaluation
        for name, res in merge(harness.adapter(cid), recs, ev.reference, ev.tolerance_for).items():
            label = f"awml {cid}-{res.precision}:{res.device} ({name})"
            if res.failures:
                failures.append(gate_message(label, ev.reference, res))
            if res.status == ERROR:
                failures.append(f"awml {cid} ({name}): evaluation failed on {res.reason}")
            if res.note:
                notes.append((f"{label}: warning: {res.note}", ""))
            out.append({"kind": "evaluation", "config": cid, "backend": name, **res.record()})
    return out, failures, notes


def finish(harness: HarnessLike, run: RunRecord, exitstatus: int, opts: EndOptions) -> Outcome | None:
    """Everything after the last test; None when the run had nothing to report."""
    from awml_harness.atomic import write_json
    from awml_harness.report.document import build_document, metrics_path, record_failures
    from awml_harness.threads import thread_record

    if opts.collect_only:
        return None  # nothing ran: an existing metrics JSON describes the last real run, keep it
    if not run.selected and not run.records:
        return None  # no harness test in this run (e.g. only the unit tests)
    records, failures, notes = merge_chunks(harness, run.records)
    run = dataclasses.replace(run, records=tuple(records))
    doc = build_document(harness.configs, run, threads=thread_record(harness.thread_policies()),
                         exitstatus=exitstatus, argv=list(opts.argv), workers=opts.workers, rootdir=opts.rootdir)
    if opts.strict:
        for cid in doc["run"].get("unverified", []):
            why = doc["projects"][cid]["verification"].get("reason", "")
            failures.append(f"awml {cid}: --awml-strict: no deployed artifact was verified ({why})")
    tracking = _open_tracking(harness, doc, opts, failures, notes)
    status = 1 if failures and exitstatus == 0 else exitstatus
    doc["run"]["exitstatus"] = status
    record_failures(doc, run.problems, failures)
    path = metrics_path(harness.configs, opts.metrics_json, opts.rootdir, doc["projects"])
    traces = _trace_targets(run.records, doc, path)
    try:
        write_json(path, doc)
    except OSError as exc:
        error = _cannot("the metrics JSON", path, exc,
                        "set --awml-metrics-json (or report.metrics_json) to a writable file, or fix export.work_dir")
        if tracking is not None:  # the runs were created: they end FAILED, saying why
            doc["run"]["exitstatus"] = 1
            record_failures(doc, run.problems, [*failures, error])
            _log_tracking(tracking, doc, [], _Writer([], []))
        return Outcome(doc, path, 1, tuple(failures), tuple(notes), write_error=error)
    writer = _Writer(list(failures), list(notes))
    _write_traces(traces, writer)
    if harness.options.split is not None:
        _write_shard(harness, run, doc, path, opts, writer)
    if opts.suggest is not None:
        from awml_harness.verification.suggest import suggest_tolerances

        text = suggest_tolerances(doc, opts.headroom)
        target = _abs(opts.suggest or None, opts.rootdir) or path.with_name("suggested_tolerances.py")
        writer.text(target, text, "the suggested tolerances", "pass a writable PATH to --awml-suggest-tolerances",
                    (f"awml suggested tolerances ({target}):", text))
    if opts.report:
        from awml_harness.report.html import render_report

        target = _abs(opts.report, opts.rootdir)
        assert target is not None
        writer.text(target, render_report(doc), "the HTML report", "pass a writable PATH to --awml-report",
                    (f"awml report: {target}", ""))
    markdown = _write_markdown(harness, doc, opts, writer)
    if tracking is not None and not _log_tracking(tracking, doc, [path, *writer.written], writer):
        tracking = None
    if writer.failures != failures:  # a further file failed: the JSON says so too
        status = status or 1
        doc["run"]["exitstatus"] = status
        record_failures(doc, run.problems, writer.failures)
        try:
            write_json(path, doc)
        except OSError as exc:
            writer.failures.append(_cannot("the metrics JSON", path, exc, "fix export.work_dir"))
    return Outcome(doc, path, status, tuple(writer.failures), tuple(writer.notes), markdown=markdown,
                   tracking=tracking, files=tuple(writer.written))


def _open_tracking(harness: HarnessLike, doc: dict[str, Any], opts: EndOptions, failures: list[str],
                   notes: list[tuple[str, str]]) -> Any:
    """--awml-mlflow / report.mlflow: the MLflow runs, created before the metrics JSON is
    written so that it names them (run.mlflow). Asked for and failing fails the run (a CI
    job that asked for tracking must not pass untracked), with one line saying why."""
    from awml_harness.report.mlflow import settings_for

    settings = settings_for(list(harness.configs.values()), opts.mlflow_uri, opts.mlflow_models)
    if settings is None:
        return None
    if harness.options.split is not None:
        notes.append(("awml mlflow: a --awml-shard job logs nothing; `awml merge --mlflow` logs the merged run", ""))
        return None
    from awml_harness.report.mlflow_client import Tracking, TrackingError

    try:
        tracking = Tracking(settings.tracking_uri)
        doc["run"]["mlflow"] = tracking.start(settings, doc)
    except TrackingError as exc:
        failures.append(str(exc))
        doc["run"]["mlflow"] = {"tracking_uri": settings.tracking_uri, "error": str(exc)}
        return None
    return tracking


def _log_tracking(tracking: Any, doc: dict[str, Any], files: list[Path], writer: _Writer) -> bool:
    """The run's params, metrics, tags and files into the runs `_open_tracking` created."""
    from awml_harness.report.mlflow_client import TrackingError

    record = doc["run"]["mlflow"]
    try:
        tracking.log(doc, files, models=record["models_logged"])
    except TrackingError as exc:
        writer.failures.append(str(exc))
        record["error"] = str(exc)
        return False
    writer.notes.append((f"awml mlflow: run {record['run_id']} in experiment {record['experiment']!r} at "
                         f"{record['tracking_uri']}", ""))
    return True


def _cannot(what: str, path: Path, exc: OSError, fix: str) -> str:
    return f"awml: could not write {what} to {path}: {exc.strerror or type(exc).__name__}; {fix}"


@dataclass
class _Writer:
    """Writes the run's further files, collecting what failed and what to show."""

    failures: list[str]
    notes: list[tuple[str, str]]
    written: list[Path] = field(default_factory=list)

    def text(self, path: Path, text: str, what: str, fix: str, note: tuple[str, str] | None) -> bool:
        from awml_harness.atomic import write_text

        try:
            write_text(path, text)
        except OSError as exc:
            self.failures.append(_cannot(what, path, exc, fix))
            return False
        self.written.append(path)
        if note is not None:
            self.notes.append(note)
        return True


def _trace_targets(records: Sequence[dict[str, Any]], doc: dict[str, Any], metrics: Path
                   ) -> list[tuple[Path, dict[str, Any]]]:
    """--awml-profile: a Chrome-trace file per config and backend beside the metrics JSON,
    named in the document (`projects.<id>.profile.backends.<name>.trace`) before it is written."""
    from awml_harness.profile.trace import trace_file_name

    out = []
    for rec in records:
        if rec.get("kind") != "profile" or not rec.get("trace_events"):
            continue
        entry = doc["projects"].get(rec["config"], {}).get("profile", {}).get("backends", {}).get(rec["backend"])
        if entry is None:
            continue
        target = metrics.with_name(trace_file_name(rec["config"], rec["backend"]))
        entry["trace"] = str(target)
        out.append((target, rec))
    return out


def _write_traces(traces: list[tuple[Path, dict[str, Any]]], writer: _Writer) -> None:
    import json

    from awml_harness.profile.trace import chrome_trace

    written = [target for target, rec in traces
               if writer.text(target, json.dumps(chrome_trace(rec)), "the profile trace",
                              "fix export.work_dir or --awml-metrics-json (the traces go beside the metrics JSON)",
                              None)]
    if written:
        writer.notes.append((f"awml profile traces (chrome://tracing, ui.perfetto.dev): {len(written)} beside the "
                             f"metrics JSON, e.g. {written[0].name}", ""))


def _write_shard(harness: HarnessLike, run: RunRecord, doc: dict[str, Any], metrics: Path, opts: EndOptions,
                 writer: _Writer) -> None:
    """--awml-shard: this job's predictions, for `awml merge` (awml_harness/split.py)."""
    from awml_harness.split import shard_document, shard_file_name, write_shard

    index, count = harness.options.split  # type: ignore[misc]
    target = _abs(opts.shard_json, opts.invocation_dir) or metrics.with_name(shard_file_name(index, count))
    data = shard_document(harness, run.records, doc, opts.load, opts.rootdir)
    if not data["configs"]:
        writer.failures.append(f"awml --awml-shard {index + 1}/{count}: no evaluation ran, so there is no shard "
                               "to write (select suites/test_evaluation.py)")
        return
    try:
        write_shard(target, data)
    except OSError as exc:
        writer.failures.append(_cannot("the shard file", target, exc, "pass a writable PATH to --awml-shard-json"))
        return
    writer.notes.append((f"awml shard {index + 1}/{count}: {target}", ""))


def _write_markdown(harness: HarnessLike, doc: dict[str, Any], opts: EndOptions, writer: _Writer) -> Path | None:
    """--awml-markdown PATH (or report.markdown), and $GITHUB_STEP_SUMMARY when GitHub Actions sets it."""
    from awml_harness.report.document import markdown_path

    target = markdown_path(harness.configs, opts.markdown, opts.rootdir, doc["projects"])
    if target is None and not os.environ.get("GITHUB_STEP_SUMMARY"):
        return None
    from awml_harness.report.markdown import append_step_summary, render_markdown

    text = render_markdown(doc)
    if target is not None and not writer.text(target, text, "the markdown summary",
                                              "pass a writable PATH to --awml-markdown (or report.markdown)",
                                              (f"awml markdown summary: {target}", "")):
        target = None
    try:
        append_step_summary(text)
    except OSError as exc:
        writer.failures.append(_cannot("the GitHub step summary", Path(os.environ["GITHUB_STEP_SUMMARY"]), exc,
                                       "check $GITHUB_STEP_SUMMARY"))
    return target


def rewrite_status(outcome: Outcome, final: int, opts: EndOptions) -> str | None:
    """The process ends with another exit status than the one recorded (a plugin changed it
    after the JSON was written): make the JSON and the reports say the same. Returns the
    line to print when they could not be rewritten."""
    from awml_harness.atomic import write_json, write_text

    doc = outcome.doc
    if outcome.write_error is not None or final == doc["run"]["exitstatus"]:
        return None
    doc["run"]["exitstatus"] = final
    if final != 0 and not doc["run"].get("failures"):
        # the reports must not read PASSED for a run that failed after the tests
        doc["run"]["failures"] = [{
            "nodeid": None, "when": "sessionfinish", "kind": "gate",
            "message": f"pytest ended with exit status {final} after the tests had passed: a plugin failed the "
                       "run at the end (e.g. pytest-benchmark --benchmark-compare-fail); see the CI log"}]
    try:
        write_json(outcome.path, doc)
        if opts.report:
            from awml_harness.report.html import render_report

            write_text(_abs(opts.report, opts.rootdir), render_report(doc))  # type: ignore[arg-type]
        if outcome.markdown is not None:
            from awml_harness.report.markdown import render_markdown

            write_text(outcome.markdown, render_markdown(doc))
    except OSError as exc:
        return f"awml: could not update run.exitstatus in {outcome.path} and the reports: {exc.strerror or exc}"
    if outcome.tracking is not None:
        from awml_harness.report.mlflow_client import TrackingError

        try:
            outcome.tracking.update(doc, [outcome.path, *outcome.files])
        except TrackingError as exc:
            return f"{exc} (while recording exit status {final})"
    return None


def summary_lines(outcome: Outcome) -> list[tuple[str, bool]]:
    """The terminal summary: (line, red) pairs, from the document itself."""
    from awml_harness.report.summary import render_summary

    lines = [(line, False) for line in render_summary(outcome.doc)]
    lines += [(line, True) for line in outcome.gate_failures]
    if os.environ.get("GITHUB_ACTIONS") == "true":  # failures as annotations on the PR
        from awml_harness.report.markdown import github_annotations

        lines += [(line, False) for line in github_annotations(outcome.doc)]
    for title, text in outcome.notes:
        lines.append((title, False))
        lines += [("  " + line, False) for line in text.splitlines()]
    if outcome.write_error is not None:
        lines.append((outcome.write_error, True))
    else:
        lines.append((f"awml metrics JSON: {outcome.path}", False))
    return lines
