"""The gate never lies: exit status, metrics JSON and summary agree with what happened.

End-to-end pytester runs on the toy project (tests/toy), each in a subprocess.
"""

from __future__ import annotations

import json

import pytest

from awml_harness.report.metrics import validate_document


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
