"""The gate never lies: exit status, metrics JSON and summary agree with what happened.

End-to-end pytester runs on the toy project (tests/toy), each in a subprocess.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from awml_harness.report.document import validate_document


def metrics(pytester: pytest.Pytester) -> dict:
    doc = json.loads((pytester.path / "work_dirs" / "toy" / "metrics.json").read_text())
    validate_document(doc)
    return doc


def test_benchmark_compare_fail_keeps_summary_json_and_exit_status(toy_repo):
    first = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "latency", "--benchmark-autosave")
    first.assert_outcomes(passed=2)
    saved = next((toy_repo.path / ".benchmarks").rglob("*.json"))
    data = json.loads(saved.read_text())
    for bench in data["benchmarks"]:  # a baseline no real run can match: a certain regression
        bench["stats"].update({k: 1e-9 for k in ("min", "max", "mean", "median")})
    saved.write_text(json.dumps(data))
    second = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "latency",
                                           "--benchmark-compare", "--benchmark-compare-fail=median:5%")
    out = second.stdout.str() + second.stderr.str()
    assert second.ret == 1, out[-3000:]
    assert "Traceback" not in out and "PerformanceRegression" not in out.replace("Performance has regressed", "")
    second.stdout.fnmatch_lines(["awml Toy (classification, export onnx)", "awml metrics JSON: *",
                                 "*--benchmark-compare-fail: performance has regressed*", "*2 passed*"])
    assert metrics(toy_repo)["run"]["exitstatus"] == second.ret


def test_exit_status_changed_by_another_plugin_after_the_json_is_recorded(toy_repo):
    """A plugin whose sessionfinish runs after ours (trylast) changes the exit status:
    the JSON follows the process, not the status at the time it was first written."""
    toy_repo.makeconftest("""
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_sessionfinish(session):
            session.exitstatus = pytest.ExitCode.INTERNAL_ERROR
    """)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export")
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    assert metrics(toy_repo)["run"]["exitstatus"] == 3


def test_collect_only_leaves_an_existing_metrics_json_alone(toy_repo):
    toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export").assert_outcomes(passed=1)
    path = toy_repo.path / "work_dirs" / "toy" / "metrics.json"
    before = path.read_bytes()
    assert json.loads(before)["projects"]["Toy"]["artifacts"]
    collected = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--collect-only", "-q")
    assert collected.ret == 0
    assert path.read_bytes() == before


@pytest.mark.parametrize("where", ["json", "work_dir"])
def test_unwritable_json_path_or_work_dir_is_one_clear_line(toy_repo, where):
    (toy_repo.path / "blocker").write_text("a file where a folder should be\n")
    args = (["--awml-metrics-json", "blocker/metrics.json"] if where == "json" else ["--work-dir", "blocker/wd"])
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export", *args)
    out = result.stdout.str() + result.stderr.str()
    assert result.ret == 1, out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    assert "During handling" not in out
    result.stdout.fnmatch_lines([
        "awml: could not write the metrics JSON to */blocker/*metrics.json: *; set --awml-metrics-json*"])
    if where == "json":  # the export passed: its table is printed though the JSON could not be written
        result.stdout.fnmatch_lines(["awml Toy (classification, export onnx)", "awml: could not write*"])
    else:
        result.stdout.fnmatch_lines(["*ArtifactError: artifact folder */blocker/wd/artifacts is not writable*"])


def test_empty_dataset_fails_every_data_test_naming_the_file(toy_repo):
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--cfg-options", "model_cfg.num_samples=0")
    out = result.stdout.str()
    assert result.ret == 1
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) == 0 and outcomes.get("skipped", 0) == 0, outcomes
    assert "Traceback" not in out and "IndexError" not in out
    result.stdout.fnmatch_lines(["*Toy: the dataset has no samples and runtime_io.info_file is not set*"])


def _empty_coco(path: Path) -> Path:
    path.write_text(json.dumps({"images": [], "annotations": [], "categories": []}))
    return path


def _empty_info_pkl(path: Path) -> Path:
    import pickle

    path.write_bytes(pickle.dumps({"metainfo": {}, "data_list": []}))
    return path


@pytest.mark.parametrize(("project", "make"), [("YOLOX_opt_elan", lambda d: _empty_coco(d / "empty.json")),
                                               ("CenterPoint", lambda d: _empty_info_pkl(d / "infos.pkl"))])
def test_real_projects_empty_annotation_file_is_named(tmp_path, project, make):
    """Real readers (COCO `images: []`, an info .pkl with an empty data_list) reach the
    core check, whose message names the file."""
    from awml_harness.config.load import load_deploy_config
    from awml_harness.dataset import DatasetError
    from awml_harness.session import ProjectContext, RunOptions

    root = Path(__file__).resolve().parents[2]
    info = make(tmp_path)
    cfg = load_deploy_config(root / "projects" / project / "configs" / "deploy_config.py",
                             overrides=[f"runtime_io.info_file={info}", f"runtime_io.data_root={tmp_path}"],
                             base_dir=root, work_dir=str(tmp_path / "wd"))
    ctx = ProjectContext(cfg, RunOptions())
    with pytest.raises(DatasetError, match=f"runtime_io.info_file={info} has no samples"):
        ctx.dataset  # noqa: B018


@pytest.mark.parametrize("workers", [0, 2])
def test_nan_metric_on_a_test_backend_fails_the_gate(toy_repo, workers):
    """The ONNX graph writes NaN into one logit: accuracy may move (allowed here), the
    NaN logit_mean must fail, serial and through the xdist shard merge alike."""
    if workers:
        pytest.importorskip("xdist")
    args = ["suites", "-p", "no:cacheprovider", "-k", "evaluation", "--cfg-options", "model_cfg.export_nan=True",
            "evaluation.metric_tolerance.accuracy=1.0"] + (["-n", str(workers)] if workers else [])
    result = toy_repo.runpytest_subprocess(*args)
    assert result.ret == 1, result.stdout.str()[-3000:]
    result.stdout.fnmatch_lines(["*metrics differ from pytorch:*",
                                 "*- logit_mean: nan vs reference *: a non-finite metric never passes*"])
    doc = metrics(toy_repo)
    assert doc["run"]["exitstatus"] == 1
    onnx = doc["projects"]["Toy"]["evaluation"]["backends"]["onnx"]
    assert onnx["passed"] is False and onnx["metrics"]["logit_mean"] is None  # NaN is null in JSON
    assert doc["projects"]["Toy"]["evaluation"]["backends"]["pytorch"]["passed"] is True


SAVE_TOY_CHECKPOINT = (
    "import sys, torch\n"
    "from projects.Toy.project import ToySettings, _build_module\n"
    "torch.save(_build_module(ToySettings(channels=4, size=16, num_samples=5)).state_dict(), sys.argv[1])\n"
)


def _toy_checkpoint(pytester: pytest.Pytester) -> Path:
    """A state_dict of the toy model as its config builds it (what a training run saves),
    written by a child process (torch stays out of this one)."""
    path = pytester.path / "toy.pth"
    done = subprocess.run([sys.executable, "-c", SAVE_TOY_CHECKPOINT, str(path)], cwd=pytester.path,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return path


SCALE_ONNX_WEIGHTS = (
    "import sys, onnx\n"
    "from onnx import numpy_helper\n"
    "model = onnx.load(sys.argv[1])\n"
    "for init in model.graph.initializer:\n"
    "    arr = numpy_helper.to_array(init)\n"
    "    if arr.dtype.kind == 'f':\n"
    "        init.CopyFrom(numpy_helper.from_array((arr * float(sys.argv[3])).astype(arr.dtype), init.name))\n"
    "onnx.save(model, sys.argv[2])\n"
)


def _scaled_onnx(src: Path, dst: Path, factor: float) -> Path:
    """Every float weight of `src` times `factor`: a deployment that drifted from its
    checkpoint. In a child process: pytester restores sys.modules after each test, and
    onnx's extension cannot be imported twice into one process."""
    done = subprocess.run([sys.executable, "-c", SCALE_ONNX_WEIGHTS, str(src), str(dst), str(factor)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    return dst


@pytest.fixture
def handed_onnx(toy_repo):
    """(checkpoint, the ONNX exported from it, the same ONNX with every weight 1 % off)."""
    ckpt = _toy_checkpoint(toy_repo)
    toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export",
                                  "--cfg-options", f"checkpoint_path={ckpt}").assert_outcomes(passed=1)
    exported = next((toy_repo.path / "work_dirs" / "toy" / "artifacts").glob("model-*/model.onnx"))
    good = toy_repo.path / "good.onnx"
    good.write_bytes(exported.read_bytes())
    return ckpt, good, _scaled_onnx(exported, toy_repo.path / "off_by_1pct.onnx", 1.01)


@pytest.mark.parametrize("mode", ["trt", "none"])
def test_handed_onnx_with_a_1pct_weight_error_fails_verification(toy_repo, handed_onnx, mode):
    ckpt, good, bad = handed_onnx
    base = ("suites", "-p", "no:cacheprovider", "-k", "verification", "--cfg-options", f"export.mode='{mode}'",
            f"checkpoint_path={ckpt}")
    passing = toy_repo.runpytest_subprocess(*base, f"export.onnx_path={good}")
    passing.assert_outcomes(passed=2)  # the faithful ONNX is compared with PyTorch and passes
    assert metrics(toy_repo)["projects"]["Toy"]["verification"]["status"] == "verified"
    failing = toy_repo.runpytest_subprocess(*base, f"export.onnx_path={bad}")
    failing.assert_outcomes(failed=2)
    failing.stdout.fnmatch_lines(["*Toy-pytorch:cpu-vs-onnx:cpu-s0: 1 of 1 outputs differ beyond tolerance"])
    doc = metrics(toy_repo)
    assert doc["projects"]["Toy"]["verification"]["status"] == "failed"
    assert doc["run"]["exitstatus"] == 1 and doc["run"]["unverified"] == []


def test_nothing_verified_is_reported_and_fails_under_strict(toy_repo, handed_onnx):
    _, _, bad = handed_onnx  # no checkpoint: PyTorch has random weights, no comparison is possible
    args = ("suites", "-p", "no:cacheprovider", "-k", "verification or evaluation",
            "--cfg-options", "export.mode=trt", f"export.onnx_path={bad}")
    result = toy_repo.runpytest_subprocess(*args)
    assert result.ret == 1  # the metrics of the off ONNX differ (tolerance 0) -- but verification says nothing
    result.stdout.fnmatch_lines(["*UNVERIFIED: no deployed artifact was compared with a reference in this run "
                                 "(verification.scenarios has no scenario for export.mode='trt'*checkpoint_path is set)"])
    doc = metrics(toy_repo)
    assert doc["run"]["unverified"] == ["Toy"]
    assert doc["projects"]["Toy"]["verification"]["status"] == "unverified"
    quiet = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export")
    assert quiet.ret == 0  # an export-only run is reported as unverified, not failed ...
    quiet.stdout.fnmatch_lines(["*UNVERIFIED: *no verification test of a deployed backend ran*"])
    strict = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export", "--awml-strict")
    assert strict.ret == 1  # ... unless --awml-strict
    strict.stdout.fnmatch_lines(["*awml Toy: --awml-strict: no deployed artifact was verified*"])
    assert metrics(toy_repo)["run"]["exitstatus"] == 1


@pytest.mark.parametrize("project", ["CalibrationStatusClassification", "CenterPoint", "YOLOX_opt_elan"])
@pytest.mark.parametrize("mode", ["trt", "none"])
def test_every_shipped_project_compares_a_handed_onnx_with_pytorch(tmp_path, project, mode):
    from awml_harness.config.load import load_deploy_config
    from awml_harness.config.schema import Backend

    root = Path(__file__).resolve().parents[2]
    handed = tmp_path / "model.onnx"
    handed.write_bytes(b"")  # only its existence is checked at load time

    def scenarios(*extra: str) -> list[str]:
        cfg = load_deploy_config(root / "projects" / project / "configs" / "deploy_config.py",
                                 overrides=[f"export.mode='{mode}'", f"export.onnx_path={handed}", *extra],
                                 base_dir=root, work_dir=str(tmp_path / "wd"))
        assert cfg.checkpoint_path is not None or extra
        return [s.label for s in cfg.scenarios() if s.ref_backend is Backend.PYTORCH]

    assert scenarios() == ["pytorch:cpu-vs-onnx:cpu"]
    assert scenarios("checkpoint_path=None") == []  # random weights: nothing to compare, reported instead
