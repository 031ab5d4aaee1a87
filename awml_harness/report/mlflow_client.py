"""The MLflow side: the experiment, one run per harness run with a nested run per project,
their params/metrics/tags (report/mlflow.py's plan) in batches, the run's files as
artifacts, and registering a verified project's deployed files as a model version.

mlflow is imported here only, on first use (`pip install 'awml-harness[mlflow]'`).
Before it is, MLFLOW_DISABLE_TELEMETRY defaults to true (MLflow otherwise writes an
installation id under ~/.config/mlflow and sends usage telemetry; export
MLFLOW_DISABLE_TELEMETRY=false to keep MLflow's default). Nothing is written to the
working directory: the store is the URI the settings name, and every experiment the
harness creates gets an explicit artifact location (report/mlflow.py: `settings_for`).

Every failure is one `TrackingError` line naming the URI, what failed and what to do;
MLflow's own multi-line messages are cut to their first line.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from awml_harness.report.mlflow import (
    MAX_VERSION_TAG_VALUE,
    RunLog,
    TrackingSettings,
    artifact_folder,
    mlflow_key,
    plan,
    split_value,
)
from awml_harness.report.verdict import one_line


class TrackingError(RuntimeError):
    """MLflow could not be used; the message is the one line to show."""


def _import_mlflow() -> Any:
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    try:
        import mlflow
    except ImportError as exc:
        raise TrackingError(f"awml mlflow: MLflow is not installed ({exc}); pip install 'awml-harness[mlflow]'") from None
    return mlflow


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return one_line(str(text).splitlines()[0] if str(text).strip() else type(exc).__name__, 300)


@contextmanager
def _calls(what: str, uri: str, fix: str = "") -> Iterator[None]:
    """MLflow's exceptions (its own, the HTTP client's, SQLAlchemy's, OSError) -> one line.
    The deprecation warnings MLflow's own dependencies raise inside it (SQLAlchemy's, on
    opening a store) are not the user's to act on and stay out of the run's summary."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            yield
    except TrackingError:
        raise
    except Exception as exc:
        tail = f"; {fix}" if fix else ""
        raise TrackingError(f"awml mlflow: {what} at {uri} failed: {type(exc).__name__}: {_reason(exc)}{tail}") from None


def check_reachable(uri: str, timeout: float = 5.0) -> None:
    """An http(s) tracking server that refuses connections fails at once, instead of after
    MLflow's retries (MLFLOW_HTTP_REQUEST_MAX_RETRIES, minutes by default)."""
    parsed = urlparse(uri)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        return
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        socket.create_connection((parsed.hostname, port), timeout=timeout).close()
    except OSError as exc:
        raise TrackingError(f"awml mlflow: cannot reach the tracking server {uri} ({exc.strerror or exc}); start it, "
                            "or fix --awml-mlflow URI / report.mlflow.tracking_uri") from None


def _sqlite_file(uri: str) -> Path | None:
    if not uri.startswith("sqlite:///") or uri == "sqlite:///":
        return None
    return Path(uri[len("sqlite:///"):].partition("?")[0])


class Tracking:
    """One tracking store: opens it, logs runs into it, registers versions in its registry."""

    def __init__(self, uri: str) -> None:
        mlflow = _import_mlflow()
        self.uri = uri
        check_reachable(uri)
        db = _sqlite_file(uri)
        with _calls("opening the tracking store", uri, "check the URI and that the folder is writable"):
            if db is not None:
                db.parent.mkdir(parents=True, exist_ok=True)
            self.client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
            self.client.search_experiments(max_results=1)  # opens (creates, migrates) the store now
        from mlflow.entities import Metric, Param, RunTag

        self._entities = (Metric, Param, RunTag)

    @classmethod
    def run(cls, settings: TrackingSettings, doc: dict[str, Any], write: Any) -> Tracking:
        """The whole sequence for a finished document: open the store, create the runs and
        record them in `doc` (run.mlflow), `write()` the files (returns their paths), log."""
        tracking = cls(settings.tracking_uri)
        doc["run"]["mlflow"] = tracking.start(settings, doc)
        tracking.log(doc, write(), models=settings.log_models)
        return tracking

    # -- runs ----------------------------------------------------------------------------
    def experiment_id(self, settings: TrackingSettings) -> str:
        with _calls(f"finding or creating experiment {settings.experiment!r}", self.uri):
            found = self.client.get_experiment_by_name(settings.experiment)
            if found is None:
                try:
                    return str(self.client.create_experiment(settings.experiment,
                                                             artifact_location=settings.artifact_location))
                except Exception as exc:  # created meanwhile by a parallel run
                    if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                        raise
                    found = self.client.get_experiment_by_name(settings.experiment)
        if found.lifecycle_stage == "deleted":
            raise TrackingError(f"awml mlflow: experiment {settings.experiment!r} at {self.uri} is deleted; restore it "
                                "(mlflow experiments restore) or set report.mlflow.experiment to another name")
        return str(found.experiment_id)

    def start(self, settings: TrackingSettings, doc: Mapping[str, Any]) -> dict[str, Any]:
        """The runs, created before the metrics JSON is written so it can name them: the
        parent run and one nested run per project. Returns the JSON's run.mlflow record."""
        exp = self.experiment_id(settings)
        planned = plan(doc)
        with _calls("creating the runs", self.uri):
            parent = self.client.create_run(exp, run_name=planned.run.name, tags={"awml.kind": "run"})
            rid = parent.info.run_id
            children = {cid: self.client.create_run(exp, run_name=log.name, tags={
                "mlflow.parentRunId": rid, "awml.kind": "project"}).info.run_id for cid, log in planned.projects.items()}
        return {"tracking_uri": self.uri, "experiment": settings.experiment, "experiment_id": exp, "run_id": rid,
                "artifact_uri": parent.info.artifact_uri, "projects": children, "models_logged": settings.log_models}

    def log(self, doc: Mapping[str, Any], files: Sequence[Path], models: bool) -> None:
        """Params, metrics and tags in batches, the run's files on the parent run, with
        `models` each project's deployed files (checked against their sha256 first), and
        every run terminated: FINISHED when it passed, else FAILED."""
        record = doc["run"]["mlflow"]
        planned = plan(doc)
        runs: list[tuple[str, RunLog, str | None]] = [(record["run_id"], planned.run, None)]
        runs += [(record["projects"][cid], log, cid) for cid, log in planned.projects.items() if cid in record["projects"]]
        for run_id, log, _ in runs:
            self._batch(run_id, log)
        with _calls("logging the run's files", self.uri):
            for path in files:
                self.client.log_artifact(record["run_id"], str(path))
        if models:
            for run_id, _, cid in runs[1:]:
                self.log_deployed(run_id, doc["projects"][str(cid)].get("artifacts", []))
        self.terminate(doc)

    def terminate(self, doc: Mapping[str, Any]) -> None:
        record, planned = doc["run"]["mlflow"], plan(doc)
        with _calls("ending the runs", self.uri):
            for cid, log in planned.projects.items():
                if cid in record["projects"]:
                    self.client.set_terminated(record["projects"][cid], _status(log))
            self.client.set_terminated(record["run_id"], _status(planned.run))

    def update(self, doc: Mapping[str, Any], files: Sequence[Path]) -> None:
        """The run's exit status changed after it was logged (a plugin failed it at the very
        end): its tags, files and run statuses follow."""
        record, planned = doc["run"]["mlflow"], plan(doc)
        for run_id, log in [(record["run_id"], planned.run)] + [
                (record["projects"][c], lg) for c, lg in planned.projects.items() if c in record["projects"]]:
            self._batch(run_id, RunLog(name=log.name, tags=log.tags))
        with _calls("logging the run's files", self.uri):
            for path in files:
                self.client.log_artifact(record["run_id"], str(path))
        self.terminate(doc)

    def _batch(self, run_id: str, log: RunLog) -> None:
        Metric, Param, RunTag = self._entities
        now = int(time.time() * 1000)
        with _calls(f"logging params, metrics and tags of run {run_id}", self.uri):
            self.client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in log.metrics.items()],
                                  params=[Param(k, v) for k, v in log.params.items()],
                                  tags=[RunTag(k, v) for k, v in log.tags.items()])

    # -- deployed files ------------------------------------------------------------------
    def log_deployed(self, run_id: str, artifacts: Sequence[Mapping[str, Any]]) -> None:
        """Each artifact's files under deployed/<name>-<variant>/, byte for byte the ones the
        run verified: a file that is missing or whose sha256 differs from the metrics JSON's
        record is refused (the cache was rebuilt or edited since)."""
        from awml_harness.export.store import file_sha256

        for art in artifacts:
            folder = Path(art["path"]).parent
            for rel, info in sorted((art.get("files") or {Path(art["path"]).name: {}}).items()):
                f = folder / rel
                if not f.is_file():
                    raise TrackingError(f"awml mlflow: deployed file {f} of artifact {art['name']} is gone; rerun the "
                                        "harness to rebuild it, then log or publish that run")
                if info.get("sha256") and file_sha256(f) != info["sha256"]:
                    raise TrackingError(f"awml mlflow: {f} is not the file the run verified (sha256 differs from the "
                                        "metrics JSON); rerun the harness, then log or publish that run")
                sub = Path(artifact_folder(art)) / Path(rel).parent
                with _calls(f"logging {f}", self.uri):
                    self.client.log_artifact(run_id, str(f), artifact_path=sub.as_posix().rstrip("/."))

    def has_deployed(self, run_id: str, artifacts: Sequence[Mapping[str, Any]]) -> bool:
        """Whether the run holds every artifact's files already, with their sizes (logged
        with log_models, or by an earlier publish)."""
        have: dict[str, int | None] = {}
        with _calls(f"listing the artifacts of run {run_id}", self.uri):
            stack = ["deployed"]
            while stack:
                for fi in self.client.list_artifacts(run_id, stack.pop()):
                    if fi.is_dir:
                        stack.append(fi.path)
                    else:
                        have[fi.path] = fi.file_size
        want = {(Path(artifact_folder(art)) / rel).as_posix(): info.get("size")
                for art in artifacts for rel, info in (art.get("files") or {}).items()}
        return bool(want) and all(p in have and (size is None or have[p] == size) for p, size in want.items())

    def tags_of(self, run_id: str) -> dict[str, str]:
        with _calls(f"reading run {run_id}", self.uri, "is this the store the run was logged to? (--tracking-uri)"):
            return dict(self.client.get_run(run_id).data.tags)

    # -- registry ------------------------------------------------------------------------
    def register(self, name: str, run_id: str, tags: Mapping[str, str], description: str) -> tuple[Any, bool]:
        """A model version of `name` whose source is runs:/<run_id>/deployed (the client API:
        MLflow 3's fluent register_model looks for a logged model and fails on plain files).
        Returns (version, created); a version of this run that exists already is returned."""
        with _calls(f"registering {name!r}", self.uri):
            try:
                self.client.create_registered_model(name, description="deployed by awml-harness")
            except Exception as exc:
                if getattr(exc, "error_code", "") != "RESOURCE_ALREADY_EXISTS":
                    raise
            found = self.client.search_model_versions(f"name='{name}' AND run_id='{run_id}'")
            if found:
                return found[0], False
            fitted: dict[str, str] = {}
            for k, v in tags.items():
                fitted.update(split_value(mlflow_key(k), v, MAX_VERSION_TAG_VALUE))
            mv = self.client.create_model_version(name, f"runs:/{run_id}/deployed", run_id=run_id, tags=fitted,
                                                  description=description)
        return mv, True


def _status(log: RunLog) -> str:
    failed = log.tags.get("awml.gates") == "failed" if log.tags.get("awml.kind") == "project" \
        else log.tags.get("awml.verdict") != "PASSED"
    return "FAILED" if failed else "FINISHED"
