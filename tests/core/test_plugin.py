"""The plugin end to end, through pytest's own pytester (each run in a subprocess)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from awml_harness.report.document import validate_document

REPO = Path(__file__).resolve().parents[2]


def metrics(pytester: pytest.Pytester) -> dict:
    path = pytester.path / "work_dirs" / "toy" / "metrics.json"
    doc = json.loads(path.read_text())
    validate_document(doc)
    return doc


def test_passing_run_writes_a_valid_metrics_json(toy_repo):
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider")
    # export 1, verification 2, evaluation 2, latency 2, shapes 4; test_package: the toy ships no package
    result.assert_outcomes(passed=11, deselected=2)
    result.stdout.fnmatch_lines(["awml Toy (classification, export onnx)", "*onnx*cpu*fp32*", "awml metrics JSON: *"])
    doc = metrics(toy_repo)
    toy = doc["projects"]["Toy"]
    ev = toy["evaluation"]["backends"]
    assert set(ev) == {"pytorch", "onnx"}
    assert ev["onnx"]["metrics"]["accuracy"] == ev["pytorch"]["metrics"]["accuracy"]
    assert ev["onnx"]["deltas"]["accuracy"] == 0.0
    assert toy["verification"]["passed"] == 2 and toy["verification"]["failed"] == 0
    assert {"p50", "p90", "p95", "p99", "rounds"} <= set(toy["latency"]["onnx"])
    assert [a["reused"] for a in toy["artifacts"]] == [False]
    assert doc["run"]["exitstatus"] == 0


def test_second_run_reuses_the_artifact(toy_repo):
    toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export").assert_outcomes(passed=1)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*artifact model (fp32, * MB): reused from cache"])
    assert metrics(toy_repo)["projects"]["Toy"]["artifacts"][0]["reused"] is True
    rebuilt = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export", "--awml-rebuild")
    rebuilt.assert_outcomes(passed=1)
    assert metrics(toy_repo)["projects"]["Toy"]["artifacts"][0]["reused"] is False


def test_impossible_tolerance_fails_naming_output_and_minimum_atol(toy_repo):
    result = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "-k", "verification",
        "--cfg-options", "verification.default.atol=0", "verification.default.rtol=0", "model_cfg.export_skew=0.5",
    )
    assert result.ret == 1
    result.stdout.fnmatch_lines([
        "*Toy-pytorch:cpu-vs-onnx:cpu-s0: 1 of 1 outputs differ beyond tolerance",
        "*- output: mismatched elements * / 2 *min atol to pass at rtol=0: *",
        "*in the deploy config: verification = dict(pair_outputs={'pytorch->onnx': {'output': dict(atol=*",
        "*or on the command line: --cfg-options 'verification.pair_outputs.pytorch->onnx.output=dict(atol=*",
        "*--awml-suggest-tolerances gives values pooled*",
    ])
    assert "Traceback" not in result.stdout.str()
    doc = metrics(toy_repo)
    assert doc["projects"]["Toy"]["verification"]["failed"] == 2
    assert doc["run"]["exitstatus"] == 1


def test_bad_config_is_a_usage_error_with_one_line(toy_repo):
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--cfg-options", "export.mode=tflite")
    assert result.ret == 4
    errors = [line for line in result.stderr.lines if line.strip()]
    assert len(errors) == 1, errors
    assert "config key 'export.mode' = 'tflite' is invalid; expected 'onnx', 'trt', 'both' or 'none'" in errors[0]
    assert "deploy.yaml" in errors[0]


def test_missing_backend_skips_with_reason_and_fails_under_strict(toy_repo):
    args = ("suites", "-p", "no:cacheprovider", "-rs", "-k", "verification", "--cfg-options", "export.mode=both")
    result = toy_repo.runpytest_subprocess(*args)
    result.assert_outcomes(passed=2, skipped=2)
    result.stdout.fnmatch_lines(["*SKIPPED*tensorrt*"])
    strict = toy_repo.runpytest_subprocess(*args, "--awml-strict")
    strict.assert_outcomes(passed=2, failed=2)
    strict.stdout.fnmatch_lines(["*--awml-strict: *tensorrt*"])


def test_xdist_run_writes_one_complete_json(toy_repo):
    pytest.importorskip("xdist")
    serial = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "not latency")
    serial.assert_outcomes(passed=9, deselected=4)  # test_package, test_profile: deselected, not skipped
    serial_doc = metrics(toy_repo)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-n", "2")
    result.assert_outcomes(passed=9, skipped=2)  # latency refuses to run under xdist
    doc = metrics(toy_repo)
    assert doc["run"]["xdist_workers"] == 2
    toy = doc["projects"]["Toy"]
    assert toy["verification"]["passed"] == 2
    for name in ("pytorch", "onnx"):
        assert toy["evaluation"]["backends"][name]["metrics"] == serial_doc["projects"]["Toy"]["evaluation"]["backends"][name]["metrics"]
    assert len(list((toy_repo.path / "work_dirs" / "toy" / "artifacts").glob("model-*.lock"))) == 1


COUNTED_CONFIG = """\
_written = open(LOG_PATH, "a").write("read\\n")  # no `with` or `import`: mmengine's reader refuses them
project = "Toy"
task_type = "classification"
model_cfg = dict(channels=4, size=16, num_samples=5)
export = dict(mode="onnx", work_dir="work_dirs/toy")
verification = dict(num_verify_samples=2, default=dict(atol=1e-4, rtol=1e-4),
                    scenarios=dict(onnx=[dict(ref_backend="pytorch", ref_device="cpu",
                                              test_backend="onnx", test_device="cpu")]))
evaluation = dict(backends=dict(pytorch=dict(device="cpu"), onnx=dict(device="cpu")), metric_tolerance={"*": 0.0, "logit_mean": 1e-3})
"""


def test_xdist_workers_take_the_configs_the_controller_read(toy_repo):
    """A config file is executed by the controller only; its workers get what it validated
    (each re-reading costs a worker the mmengine import and a validation pass)."""
    pytest.importorskip("xdist")
    log = toy_repo.path / "reads.log"
    cfg = toy_repo.path / "projects" / "Toy" / "configs" / "counted.py"
    cfg.write_text(COUNTED_CONFIG.replace("LOG_PATH", repr(str(log))))
    args = ("suites", "-p", "no:cacheprovider", "--deploy-cfg", str(cfg), "-k", "evaluation")
    toy_repo.runpytest_subprocess(*args).assert_outcomes(passed=2)
    serial_reads = log.read_text().count("read")
    assert serial_reads >= 1
    log.unlink()
    toy_repo.runpytest_subprocess(*args, "-n", "2").assert_outcomes(passed=2)
    assert log.read_text().count("read") == serial_reads  # the workers read nothing


def test_a_run_freezes_the_heap_for_the_interpreter_exit(toy_repo):
    """The exit hook that spares torch-sized heaps the final collections: a conftest's exit
    hook, registered before the harness's and so run after it, sees the frozen heap."""
    toy_repo.makeconftest("""
        import atexit, gc, sys

        atexit.register(lambda: print(f"frozen at exit: {gc.get_freeze_count() > 0}", file=sys.stderr))
    """)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export")
    result.assert_outcomes(passed=1)
    result.stderr.fnmatch_lines(["frozen at exit: True"])


def test_benchmark_autosave_and_compare(toy_repo):
    first = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "latency", "--benchmark-autosave")
    first.assert_outcomes(passed=2)
    saved = list((toy_repo.path / ".benchmarks").rglob("*.json"))
    assert len(saved) == 1
    data = json.loads(saved[0].read_text())
    assert {"p50", "p95", "p99"} <= set(data["benchmarks"][0]["extra_info"])
    assert "awml" in data["machine_info"]
    second = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "latency",
                                           "--benchmark-compare", "--benchmark-compare-fail=median:100000%")
    second.assert_outcomes(passed=2)
    second.stdout.fnmatch_lines(["*(0001*", "*(NOW)*"])


def test_suites_run_does_not_import_test_tooling():
    """`pytest suites/` pays for the harness only: neither the root conftest nor an
    autoloaded plugin imports hypothesis (tests/ alone uses it). With bytecode caching
    off, each hypothesis import meant ~75 modules assertion-rewritten, ~1.3 s CPU per
    pytest process (issue 16, P1/P7)."""
    code = ("import sys, pytest\n"
            "rc = pytest.main(sys.argv[1:])\n"
            "print('LOADED', sorted(m for m in ('hypothesis', 'torch') if m in sys.modules), rc)\n")
    out = subprocess.run([sys.executable, "-c", code, "suites/", "--collect-only", "-q", "-p", "no:cacheprovider",
                          "-k", "calibration and export"], capture_output=True, text=True, cwd=REPO)
    assert "LOADED [] 0" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_hypothesis_profile_still_applies_to_the_harness_tests():
    """The profiles moved from the root conftest to tests/conftest.py: still in effect."""
    import os

    hypothesis = pytest.importorskip("hypothesis")
    nightly = os.environ.get("AWML_HYPOTHESIS_PROFILE") == "nightly"
    assert hypothesis.settings().deadline is None
    assert hypothesis.settings().max_examples == (2000 if nightly else 60)


def test_help_and_unrelated_collection_do_not_import_heavy_modules(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_x():\n    assert 1\n")
    code = (
        "import sys, pytest\n"
        "rc = pytest.main(sys.argv[1:])\n"
        "heavy = sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'onnx', 'cv2', 'pydantic') "
        "if m in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    for args in (["--help"], [str(tmp_path / "test_x.py"), "-q", "-p", "no:cacheprovider"]):
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path)
        assert "HEAVY []" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    help_text = subprocess.run([sys.executable, "-m", "pytest", "--help"], capture_output=True, text=True, cwd=tmp_path).stdout
    for option in ("--deploy-cfg", "--cfg-options", "--work-dir", "--device", "--awml-metrics-json",
                   "--awml-rebuild", "--awml-strict"):
        assert option in help_text


def test_metric_delta_beyond_tolerance_fails_serial_and_sharded(toy_repo):
    skew = ("--cfg-options", "model_cfg.export_skew=-100.0")
    serial = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "evaluation", *skew)
    assert serial.ret == 1
    serial.stdout.fnmatch_lines(["*Toy-onnx:cpu: metrics differ from pytorch:",
                                 "*- accuracy: * (worse by *: delta *, higher is better; allowed 0; "
                                 "key evaluation.metric_tolerance.accuracy)"])
    serial_doc = metrics(toy_repo)
    pytest.importorskip("xdist")
    sharded = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "evaluation", "-n", "2", "-v",
                                            *skew, "evaluation.chunk_min_samples=1", "evaluation.max_chunks=2")
    sharded.stdout.fnmatch_lines(["*test_evaluation*Toy-chunk1of2*"])
    assert sharded.ret == 1
    sharded.stdout.fnmatch_lines(["*metrics differ from pytorch:*", "*- accuracy: *allowed 0*"])
    doc = metrics(toy_repo)
    for name in ("pytorch", "onnx"):
        a = doc["projects"]["Toy"]["evaluation"]["backends"][name]
        b = serial_doc["projects"]["Toy"]["evaluation"]["backends"][name]
        assert (a["metrics"], a["deltas"], a["passed"]) == (b["metrics"], b["deltas"], b["passed"])
    assert doc["projects"]["Toy"]["evaluation"]["backends"]["onnx"]["passed"] is False
