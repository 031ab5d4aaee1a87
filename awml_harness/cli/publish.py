"""`awml publish RUN.json --name NAME`: register a run's deployed artifacts in the MLflow
model registry, only when they were verified and every gate passed.

The run must have been logged to MLflow (pytest --awml-mlflow, or `awml merge --mlflow`):
its metrics JSON names the MLflow runs (run.mlflow). A project may be published when the
run ended with exit status 0 and no failure, its verification status is "verified" and
every gate of it passed (report/mlflow.py: `publish_refusals`); the MLflow run's own tags,
logged at the end of the run, must say the same, so an edited JSON cannot publish a run
that failed. The version's source is `runs:/<project run>/deployed`: the deployed files,
logged with the run (--awml-mlflow-models) or uploaded now, after each file's sha256 is
checked against the metrics JSON. Its tags carry the metric deltas, the artifact keys and
sha256s, and the run ids. Publishing the same run again returns its existing version.

Exit status: 0 registered (or registered before), 1 refused (the reasons, one a line),
2 cannot (not a metrics JSON, not logged to MLflow, store unreachable, files changed).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

from awml_harness.cli.common import CliError

#: a registered model name as publish takes it: MLflow refuses '/' and ':', and the name is
#: quoted in a registry search, so the quote is out too
NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-. ]{0,255}")


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "publish", help="register a verified run's deployed artifacts as an MLflow model version",
        description="Register the deployed artifacts of a run logged with --awml-mlflow as a new version of "
                    "registered model NAME, only when the run passed, its verification status is 'verified' and "
                    "its gates passed; otherwise refuse, naming why (exit 1).")
    p.add_argument("run", metavar="RUN.json", help="the run's metrics JSON")
    p.add_argument("--name", required=True, help="registered model name (letters, digits, _ - . and spaces)")
    p.add_argument("--project", default=None, metavar="ID",
                   help="the project (config id) to publish; needed when the run holds several")
    p.add_argument("--tracking-uri", default=None, metavar="URI",
                   help="tracking and registry URI (default: the one the run was logged to, run.mlflow.tracking_uri)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from awml_harness.cli.common import load_document
    from awml_harness.report.mlflow import publish_refusals

    if not NAME_RE.fullmatch(args.name):
        raise CliError(f"--name {args.name!r}: expected letters, digits, '_', '-', '.' and spaces (at most 256), "
                       "starting with a letter, digit or '_'")
    doc = load_document(args.run)
    cid = _project(doc, args.project)
    refusals = publish_refusals(doc, cid)
    if refusals:
        return _refuse(args.name, cid, refusals)
    record = doc["run"].get("mlflow") or {}
    if not record.get("run_id") or cid not in (record.get("projects") or {}):
        why = f" (logging failed: {record['error']})" if record.get("error") else ""
        raise CliError(f"{args.run}: the run was not logged to MLflow{why}; run pytest with --awml-mlflow (or "
                       "`awml merge --mlflow`), then publish that run's metrics JSON")
    from awml_harness.report.mlflow_client import TrackingError

    try:
        return _register(args, doc, cid, record)
    except TrackingError as exc:
        sys.stderr.write(f"awml publish: {exc}\n")
        return 2


def _project(doc: dict[str, Any], wanted: str | None) -> str:
    names = sorted(doc["projects"])
    if wanted is not None:
        if wanted not in doc["projects"]:
            raise CliError(f"--project {wanted!r}: the run holds {names}")
        return wanted
    if len(names) != 1:
        raise CliError(f"the run holds {len(names)} projects {names}: pass --project ID" if names
                       else "the run holds no project")
    return names[0]


def _refuse(name: str, cid: str, reasons: list[str]) -> int:
    sys.stderr.write(f"awml publish: refused: {cid} is not registered as {name!r}:\n")
    for line in reasons:
        sys.stderr.write(f"  - {line}\n")
    return 1


def _register(args: argparse.Namespace, doc: dict[str, Any], cid: str, record: dict[str, Any]) -> int:
    from awml_harness.config.schema import absolute_sqlite
    from awml_harness.report.mlflow import version_tags
    from awml_harness.report.mlflow_client import Tracking

    uri = absolute_sqlite(args.tracking_uri, Path.cwd()) if args.tracking_uri else record["tracking_uri"]
    tracking = Tracking(uri)
    child = record["projects"][cid]
    run_tags, project_tags = tracking.tags_of(record["run_id"]), tracking.tags_of(child)
    disagree = [f"{key} is {tags.get(key)!r} in MLflow, {want!r} in the metrics JSON"
                for tags, key, want in ((run_tags, "awml.exitstatus", "0"),
                                        (project_tags, "awml.verification.status", "verified"),
                                        (project_tags, "awml.gates", "passed"))
                if tags.get(key) != want]
    if disagree:
        return _refuse(args.name, cid, [f"the MLflow run does not match {args.run}: " + "; ".join(disagree)])
    artifacts = doc["projects"][cid]["artifacts"]
    if not tracking.has_deployed(child, artifacts):
        tracking.log_deployed(child, artifacts)
        print(f"awml publish: uploaded {len(artifacts)} deployed artifact(s) of {cid} to run {child}")
    entry = doc["projects"][cid]
    commit = ((doc["run"].get("git") or {}).get("commit") or "?")[:12]
    description = (f"awml-harness: {cid} ({entry.get('project')}) verified in {entry['verification'].get('passed', 0)} "
                   f"comparisons, every gate passed; run {record['run_id']}, commit {commit}")
    mv, created = tracking.register(args.name, child, version_tags(doc, cid), description)
    verb = "registered" if created else "already registered as"
    print(f"awml publish: {verb} {args.name!r} version {mv.version} (source {mv.source}, run {child})")
    return 0
