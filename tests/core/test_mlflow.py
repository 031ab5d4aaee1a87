"""--awml-mlflow and `awml publish` against real MLflow stores: a SQLite file (a copy of
one migrated template per test; a fresh store costs 2-8 s of migrations) and an
`mlflow server` this module starts on 127.0.0.1, read back with MlflowClient.

The runs are real pytest runs of the Toy project (tests/toy) in a subprocess."""

from __future__ import annotations

import copy
import hashlib
import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from awml_harness.report.document import validate_document

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("mlflow") is None,
                       reason="mlflow is not installed (pip install 'awml-harness[mlflow]'; the dev extra has it)"),
    # SQLAlchemy's deprecation notes about MLflow's own store code, raised in this process
    pytest.mark.filterwarnings("ignore::DeprecationWarning:mlflow.store"),
]

METRICS = Path("work_dirs") / "toy" / "metrics.json"


@pytest.fixture(autouse=True)
def _quiet_mlflow(monkeypatch):
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="session")
def template_db(tmp_path_factory) -> Path:
    """One migrated SQLite store per test session; tests copy it."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


def _store(template: Path, folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(template, folder / "mlflow.db")
    return f"sqlite:///{folder / 'mlflow.db'}"


def _client(uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _no_stray_files(root: Path) -> None:
    """MLflow's defaults write ./mlflow.db, ./mlruns and ./mlartifacts into the cwd."""
    assert not [p.name for p in root.iterdir() if p.name in ("mlflow.db", "mlruns", "mlartifacts")]


def _publish(*args: str) -> int:
    from awml_harness.cli import main

    return main(["publish", *args])


def test_a_shipped_run_is_in_mlflow_and_a_verified_one_is_published(toy_repo, template_db, tmp_path, monkeypatch,
                                                                    capsys):
    from awml_harness.report.mlflow import plan

    _store(template_db, toy_repo.path / "store")
    # the config key, with a path relative to the rootdir, and the deployed files logged
    mlflow_cfg = "report.mlflow=dict(tracking_uri='sqlite:///store/mlflow.db', experiment='toy', log_models=True)"
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--awml-report=r.html",
                                           "--awml-markdown=s.md", "--cfg-options", mlflow_cfg)
    assert result.ret == 0, result.stdout.str()[-3000:]
    doc = json.loads((toy_repo.path / METRICS).read_text())
    validate_document(doc)
    rec = doc["run"]["mlflow"]
    assert rec["tracking_uri"] == f"sqlite:///{toy_repo.path / 'store' / 'mlflow.db'}" and rec["experiment"] == "toy"
    result.stdout.fnmatch_lines([f"awml mlflow: run {rec['run_id']} in experiment 'toy' at {rec['tracking_uri']}"])
    client = _client(rec["tracking_uri"])
    exp = client.get_experiment(rec["experiment_id"])
    assert exp.name == "toy" and exp.artifact_location == (toy_repo.path / "store" / "mlartifacts").as_uri()
    parent, child = client.get_run(rec["run_id"]), client.get_run(rec["projects"]["Toy"])
    planned = plan(doc)
    # everything planned is in the store, as planned, and the numbers are the document's
    assert parent.data.params == planned.run.params and parent.data.metrics == planned.run.metrics
    assert child.data.params == planned.projects["Toy"].params
    assert child.data.metrics == planned.projects["Toy"].metrics
    assert planned.projects["Toy"].tags.items() <= child.data.tags.items()
    toy = doc["projects"]["Toy"]
    onnx = toy["evaluation"]["backends"]["onnx"]
    assert child.data.metrics["onnx/accuracy"] == onnx["metrics"]["accuracy"]
    assert child.data.metrics["onnx/delta/logit_mean"] == onnx["deltas"]["logit_mean"]
    assert child.data.metrics["onnx/latency/p95_ms"] == toy["latency"]["onnx"]["p95"]
    assert child.data.metrics["onnx/memory/peak_rss_bytes"] == onnx["memory"]["peak_rss_bytes"]
    assert child.data.params["evaluation.latency_rounds"] == "5" and child.data.params["export.mode"] == "onnx"
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.tags["awml.verification.status"] == "verified" and child.data.tags["awml.precision"] == "fp32"
    assert parent.data.tags["awml.verdict"] == "PASSED" and parent.data.tags["awml.exitstatus"] == "0"
    assert parent.data.tags["awml.harness_version"] == doc["machine"]["awml_harness"]
    assert parent.info.status == child.info.status == "FINISHED"
    # the run's files on the parent run, the deployed ONNX on the project's
    assert {f.path for f in client.list_artifacts(parent.info.run_id)} == {"metrics.json", "r.html", "s.md"}
    got = Path(client.download_artifacts(parent.info.run_id, "metrics.json", str(tmp_path)))
    assert got.read_bytes() == (toy_repo.path / METRICS).read_bytes()
    art = toy["artifacts"][0]
    logged = Path(client.download_artifacts(child.info.run_id, "deployed/model-fp32/model.onnx", str(tmp_path)))
    assert _sha256(logged) == art["files"]["model.onnx"]["sha256"] == _sha256(Path(art["path"]))
    _no_stray_files(toy_repo.path)

    # publish it: a model version whose tags hold the deltas, artifact keys and run ids
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    assert _publish(str(toy_repo.path / METRICS), "--name", "toy.model") == 0
    out = capsys.readouterr().out
    assert f"registered 'toy.model' version 1 (source runs:/{child.info.run_id}/deployed" in out
    assert "uploaded" not in out  # the run logged its deployed files already
    mv = client.get_model_version("toy.model", "1")
    assert mv.source == f"runs:/{child.info.run_id}/deployed" and mv.run_id == child.info.run_id
    assert mv.tags["delta.onnx.logit_mean"] == repr(onnx["deltas"]["logit_mean"])
    assert mv.tags["delta.onnx.accuracy"] == repr(onnx["deltas"]["accuracy"])
    assert mv.tags["artifact.model-fp32.key"] == art["key"] and mv.tags["awml.run_id"] == rec["run_id"]
    from mlflow.artifacts import download_artifacts

    # (a models:/ URI resolves through the process's global registry URI, ./mlflow.db by default)
    files = Path(download_artifacts(artifact_uri=mv.source, dst_path=str(tmp_path / "dl"),
                                    tracking_uri=rec["tracking_uri"]))
    assert _sha256(files / "model-fp32" / "model.onnx") == art["files"]["model.onnx"]["sha256"]
    # again: the same version, not a second one
    assert _publish(str(toy_repo.path / METRICS), "--name", "toy.model") == 0
    assert "already registered as 'toy.model' version 1" in capsys.readouterr().out
    assert len(client.search_model_versions("name='toy.model'")) == 1
    _no_stray_files(tmp_path)


def test_an_unverified_run_under_xdist_is_logged_once_and_not_published(toy_repo, template_db, capsys):
    uri = _store(template_db, toy_repo.path / "store")
    # no verification test runs: the deployed ONNX was never compared with PyTorch
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-n", "2", "-k", "not verification",
                                           "--awml-mlflow", uri)
    assert result.ret == 0, result.stdout.str()[-3000:]
    doc = json.loads((toy_repo.path / METRICS).read_text())
    assert doc["run"]["xdist_workers"] == 2 and doc["projects"]["Toy"]["verification"]["status"] == "unverified"
    client = _client(uri)
    runs = client.search_runs([doc["run"]["mlflow"]["experiment_id"]])
    assert sorted(r.data.tags["awml.kind"] for r in runs) == ["project", "run"]  # the controller logged, once
    assert capsys.readouterr() and _publish(str(toy_repo.path / METRICS), "--name", "toy") == 1
    err = capsys.readouterr().err
    assert "awml publish: refused: Toy is not registered as 'toy':" in err
    assert "verification status of Toy is 'unverified', not 'verified'" in err
    assert client.search_registered_models() == []


def test_a_run_failed_at_the_very_end_is_failed_in_mlflow_and_refused(toy_repo, template_db, tmp_path, capsys):
    """A plugin fails the run after the harness logged it (as --benchmark-compare-fail
    does): the MLflow run's tags, status and metrics JSON follow, and publish refuses,
    also when the JSON is edited to look shippable."""
    uri = _store(template_db, toy_repo.path / "store")
    toy_repo.makeconftest("""
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_sessionfinish(session):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    """)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export", "--awml-mlflow", uri)
    assert result.ret == 1
    path = toy_repo.path / METRICS
    doc = json.loads(path.read_text())
    client = _client(uri)
    parent = client.get_run(doc["run"]["mlflow"]["run_id"])
    assert parent.data.tags["awml.exitstatus"] == "1" and parent.data.tags["awml.verdict"] == "FAILED"
    assert parent.info.status == "FAILED"
    logged = json.loads(Path(client.download_artifacts(parent.info.run_id, "metrics.json", str(tmp_path))).read_text())
    assert logged["run"]["exitstatus"] == 1
    capsys.readouterr()
    assert _publish(str(path), "--name", "toy") == 1
    assert "the run ended with exit status 1, not 0" in capsys.readouterr().err
    forged = copy.deepcopy(doc)
    forged["run"].update(exitstatus=0, failures=[], problems=[])
    forged["projects"]["Toy"]["verification"].update(status="verified", passed=1)
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    assert _publish(str(tmp_path / "forged.json"), "--name", "toy") == 1
    err = capsys.readouterr().err
    assert "the MLflow run does not match" in err and "awml.exitstatus is '1' in MLflow, '0' in the metrics JSON" in err
    assert client.search_registered_models() == []


def test_runs_whose_metrics_json_cannot_be_written_end_failed(toy_repo, template_db):
    uri = _store(template_db, toy_repo.path / "store")
    (toy_repo.path / "afile").write_text("")
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export", "--awml-mlflow", uri,
                                           "--awml-metrics-json=afile/m.json")
    assert result.ret == 1
    client = _client(uri)
    (parent,) = client.search_runs([e.experiment_id for e in client.search_experiments()],
                                   filter_string="tags.`awml.kind` = 'run'")
    assert parent.info.status == "FAILED" and parent.data.tags["awml.verdict"] == "FAILED"
    assert parent.data.tags["awml.exitstatus"] == "1" and parent.data.metrics["run/failures"] == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_server_is_one_line_and_fails_the_run(toy_repo):
    uri = f"http://127.0.0.1:{_free_port()}"
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export", "--awml-mlflow", uri)
    assert result.ret == 1
    out = result.stdout.str()
    line = f"awml mlflow: cannot reach the tracking server {uri} (Connection refused); start it, or fix --awml-mlflow"
    assert line in out and "Traceback" not in out + result.stderr.str()
    doc = json.loads((toy_repo.path / METRICS).read_text())
    validate_document(doc)
    assert doc["run"]["mlflow"]["error"].startswith(line) and doc["run"]["exitstatus"] == 1
    assert any(line in f["message"] for f in doc["run"]["failures"])


def test_without_the_option_mlflow_is_never_imported(toy_repo):
    toy_repo.makeconftest("""
        import atexit, sys
        from pathlib import Path

        atexit.register(lambda: Path("imported.txt").write_text(str(sorted(m for m in sys.modules if m == "mlflow"))))
    """)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export")
    assert result.ret == 0 and (toy_repo.path / "imported.txt").read_text() == "[]"
    help_ = toy_repo.runpytest_subprocess("--help")
    assert "--awml-mlflow=[TRACKING_URI]" in help_.stdout.str() and (toy_repo.path / "imported.txt").read_text() == "[]"
    bad = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--awml-mlflow", "mlflow.db")
    assert bad.ret == 4 and "--awml-mlflow 'mlflow.db': expected a tracking URI with its scheme" in bad.stderr.str()


def test_shard_jobs_log_nothing_and_the_merge_logs_the_run(toy_repo, template_db, capsys):
    from awml_harness.cli import main

    uri = _store(template_db, toy_repo.path / "store")
    for i in (1, 2):
        job = toy_repo.runpytest_subprocess("suites/test_evaluation.py", "-p", "no:cacheprovider",
                                            "--awml-shard", f"{i}/2", "--awml-mlflow", uri)
        assert job.ret == 0
        job.stdout.fnmatch_lines(["awml mlflow: a --awml-shard job logs nothing*"])
    client = _client(uri)
    assert client.search_experiments() and not client.search_runs([e.experiment_id for e in client.search_experiments()])
    shards = [str(toy_repo.path / "work_dirs" / "toy" / f"shard-{i}of2.json") for i in (1, 2)]
    out = toy_repo.path / "merged.json"
    capsys.readouterr()
    assert main(["merge", *shards, "-o", str(out), "--rootdir", str(toy_repo.path), "--mlflow", uri]) == 0
    doc = json.loads(out.read_text())
    validate_document(doc)
    rec = doc["run"]["mlflow"]
    assert f"awml mlflow: run {rec['run_id']}" in capsys.readouterr().out
    child = client.get_run(rec["projects"]["Toy"])
    merged = doc["projects"]["Toy"]["evaluation"]["backends"]["onnx"]
    assert child.data.metrics["onnx/accuracy"] == merged["metrics"]["accuracy"] and merged["num_samples"] == 5
    assert client.get_run(rec["run_id"]).data.params["run.merged_shards"] == "2"
    assert [f.path for f in client.list_artifacts(rec["run_id"])] == ["merged.json"]


def test_odd_keys_and_long_values_reach_the_store_whole(template_db, tmp_path):
    """Keys MLflow would refuse are repaired, values it would cut are split: nothing is lost."""
    from awml_harness.report.mlflow import TrackingSettings, mlflow_key
    from awml_harness.report.mlflow_client import Tracking

    uri = _store(template_db, tmp_path / "store")
    long_value = "".join(chr(65 + i % 26) for i in range(15000))
    doc = {"schema_version": 2, "machine": {}, "run": {"exitstatus": 0, "failures": [], "argv": []},
           "projects": {"P": {"verification": {"status": "verified"}, "evaluation": {"backends": {
               "onnx": {"metrics": {"mAP@0.5": 0.5, "bad//key": 0.25}, "deltas": {}}}},
               "resolved_config": {"model_cfg": {"classes": long_value}, "pairs": {"pytorch->onnx": 1}}}}}
    settings = TrackingSettings(uri, "odd", artifact_location=(tmp_path / "art").as_uri())
    Tracking.run(settings, doc, lambda: [])
    run = _client(uri).get_run(doc["run"]["mlflow"]["projects"]["P"])
    params = run.data.params
    parts = ["model_cfg.classes"] + [f"model_cfg.classes/part{i}" for i in (2, 3)]
    assert "".join(params[k] for k in parts) == long_value and all(len(params[k]) <= 6000 for k in parts)
    assert run.data.tags["awml.split_values"] == "model_cfg.classes"
    assert params[mlflow_key("pairs.pytorch->onnx")] == "1"
    assert run.data.metrics[mlflow_key("onnx/mAP@0.5")] == 0.5 and run.data.metrics[mlflow_key("onnx/bad//key")] == 0.25


# -- a tracking server: `mlflow server` on 127.0.0.1, started and stopped here ----------------
def _wait_health(url: str, proc: subprocess.Popen, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"mlflow server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail(f"mlflow server not ready after {timeout} s: {log.read_text()[-2000:]}")


@pytest.fixture
def mlflow_server(template_db, tmp_path):
    """`mlflow server` with one worker and no job executor (2 processes, ready in 7-13 s on
    a loaded 2-core box instead of 24-33 s), its store a copy of the template."""
    uri = _store(template_db, tmp_path / "server")
    port = _free_port()
    log = tmp_path / "server.log"
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
    mlflow_bin = Path(sys.executable).with_name("mlflow")
    with log.open("w") as fh:
        proc = subprocess.Popen([str(mlflow_bin), "server", "--backend-store-uri", uri, "--artifacts-destination",
                                 str(tmp_path / "server" / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
                                 "-w", "1"], cwd=tmp_path / "server", env=env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_health(url, proc, log)
        yield url, tmp_path / "server"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_run_logged_to_a_tracking_server_and_published_through_it(toy_repo, mlflow_server, monkeypatch,
                                                                     tmp_path, capsys):
    url, server_dir = mlflow_server
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "not latency", "--awml-mlflow", url)
    assert result.ret == 0, result.stdout.str()[-3000:]
    doc = json.loads((toy_repo.path / METRICS).read_text())
    rec = doc["run"]["mlflow"]
    assert rec["tracking_uri"] == url and rec["artifact_uri"].startswith("mlflow-artifacts:/")
    client = _client(url)
    child = client.get_run(rec["projects"]["Toy"])
    onnx = doc["projects"]["Toy"]["evaluation"]["backends"]["onnx"]
    assert child.data.metrics["onnx/accuracy"] == onnx["metrics"]["accuracy"]
    assert child.data.tags["awml.verification.status"] == "verified"
    # the run's files went through the server into its --artifacts-destination
    assert len(list((server_dir / "artifacts").rglob("metrics.json"))) == 1
    _no_stray_files(toy_repo.path)
    monkeypatch.chdir(tmp_path)
    # the run did not log its ONNX: publish uploads it, but only the bytes that were verified
    art = doc["projects"]["Toy"]["artifacts"][0]
    onnx_file = Path(art["path"])
    original = onnx_file.read_bytes()
    onnx_file.write_bytes(original + b"\0")
    capsys.readouterr()
    assert _publish(str(toy_repo.path / METRICS), "--name", "toy-served") == 2
    assert f"{onnx_file} is not the file the run verified (sha256 differs" in capsys.readouterr().err
    onnx_file.write_bytes(original)
    assert _publish(str(toy_repo.path / METRICS), "--name", "toy-served") == 0
    assert f"uploaded 1 deployed artifact(s) of Toy to run {child.info.run_id}" in capsys.readouterr().out
    stored = list((server_dir / "artifacts").rglob("model.onnx"))
    assert len(stored) == 1 and _sha256(stored[0]) == art["files"]["model.onnx"]["sha256"]
    mv = client.get_model_version("toy-served", "1")
    assert mv.run_id == child.info.run_id and mv.tags["delta.onnx.accuracy"] == repr(onnx["deltas"]["accuracy"])
