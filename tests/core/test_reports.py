"""Reports, tolerance suggestions, golden outputs, shape sweep and latency budgets."""

from __future__ import annotations

import json
import runpy

from awml_harness.report.document import validate_document


def test_report_suggestions_and_golden_round_trip(toy_repo, tmp_path):
    report = tmp_path / "report.html"
    suggest = tmp_path / "tol.py"
    gold = tmp_path / "golden"
    first = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", f"--awml-report={report}", f"--awml-suggest-tolerances={suggest}",
        f"--awml-save-golden={gold}", "--awml-tolerance-headroom=3")
    first.assert_outcomes(passed=11, deselected=2)  # test_package and test_profile: deselected where no project has them
    doc = json.loads((toy_repo.path / "work_dirs/toy/metrics.json").read_text())
    validate_document(doc)
    text = report.read_text()
    toy = doc["projects"]["Toy"]
    # the report shows the JSON's numbers, formatted with their units
    from awml_harness.report import format as fmt

    assert f'{toy["evaluation"]["backends"]["onnx"]["metrics"]["accuracy"]:.4f}' in text
    assert fmt.ms(toy["latency"]["onnx"]["p95"]) in text
    assert fmt.mb(toy["artifacts"][0]["size_bytes"]) in text
    assert 'class="verdict pass"' in text and "Failures (" not in text
    assert text.count("data:image/png;base64,") >= 2  # latency and error plots
    # the suggestion is a loadable config fragment: the least (atol, rtol) covering every
    # observed element, times the headroom 3 (rounded up to two digits)
    from awml_harness.verification.tolerance import fit

    ns = runpy.run_path(str(suggest))
    rule = ns["verification"]["pair_outputs"]["pytorch->onnx"]["output"]
    leaves = [leaf for r in toy["verification"]["results"] if r["test"] == "onnx:cpu" for leaf in r["leaves"]]
    points = [p for leaf in leaves for p in leaf["envelope"]]
    mean = sum(leaf["mean_abs_ref"] * leaf["numel"] for leaf in leaves) / sum(leaf["numel"] for leaf in leaves)
    atol, rtol = fit(points, mean)
    assert 3 * atol <= rule["atol"] <= 3 * atol * 1.1 + 1e-12 and 3 * rtol <= rule["rtol"] <= 3 * rtol * 1.1
    assert all(rule["atol"] + rule["rtol"] * x >= 3 * d for x, d in points)
    assert len(list(gold.rglob("*.npz"))) == 2
    again = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "verification",
                                          f"--awml-golden={gold}")
    again.assert_outcomes(passed=4)
    again.stdout.fnmatch_lines(["*verification: 4/4 passed*"])
    # a changed export is caught by the golden scenario alone (no PyTorch reference involved)
    changed = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "golden",
                                            f"--awml-golden={gold}", "--cfg-options", "model_cfg.export_skew=0.5")
    changed.assert_outcomes(failed=2)
    changed.stdout.fnmatch_lines(["*Toy-golden:pytorch:cpu-vs-onnx:cpu-s0: 1 of 1 outputs differ*"])


def test_shape_sweep_and_missing_golden(toy_repo, tmp_path):
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "shape")
    result.assert_outcomes(passed=4)
    doc = json.loads((toy_repo.path / "work_dirs/toy/metrics.json").read_text())
    assert doc["run"]["tests"]["passed"] == 4
    missing = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "golden",
                                            f"--awml-golden={tmp_path / 'none'}")
    missing.assert_outcomes(failed=2)
    missing.stdout.fnmatch_lines(["*no golden outputs at *; record them with --awml-save-golden*"])


def test_latency_budget_below_measured_fails_naming_the_key(toy_repo):
    over = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "-k", "latency and onnx",
        "--cfg-options", "evaluation.backends.onnx.latency_budget={'p95_ms': 1e-06}")
    over.assert_outcomes(failed=1)
    over.stdout.fnmatch_lines(["*p95 = * ms exceeds evaluation.backends.onnx.latency_budget.p95_ms = 1e-06 ms"])
    under = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "-k", "latency and onnx",
        "--cfg-options", "evaluation.backends.onnx.latency_budget={'p95_ms': 10000.0, 'p99_ms': 10000.0}")
    under.assert_outcomes(passed=1)
    bad = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "--cfg-options", "evaluation.backends.onnx.latency_budget={'p42_ms': 1}")
    assert bad.ret == 4
    bad.stderr.fnmatch_lines(["*evaluation.backends.onnx.latency_budget.p42_ms*"])


def test_percentile_regression_against_a_saved_baseline(toy_repo):
    first = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "latency and onnx",
                                          "--benchmark-autosave")
    first.assert_outcomes(passed=1)
    # a 1e6-fold allowance passes; a negative one ("must get faster") is refused at config time
    ok = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "-k", "latency and onnx", "--awml-latency-baseline=latest",
        "--cfg-options", "evaluation.backends.onnx.latency_regression={'p95': 1e6, 'p99': 1e6}")
    ok.assert_outcomes(passed=1)
    # the baseline's p99 is made tiny: the current run is a huge regression at p99
    saved = next((toy_repo.path / ".benchmarks").rglob("*.json"))
    data = json.loads(saved.read_text())
    for bench in data["benchmarks"]:
        bench["extra_info"]["p99"] = 1e-9
    saved.write_text(json.dumps(data))
    bad = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "-k", "latency and onnx", f"--awml-latency-baseline={saved}",
        "--cfg-options", "evaluation.backends.onnx.latency_regression={'p99': 0.5}")
    bad.assert_outcomes(failed=1)
    bad.stdout.fnmatch_lines(["*- p99 = * ms vs baseline 0.000 ms (+* %) exceeds "
                              "evaluation.backends.onnx.latency_regression.p99 = 50 %"])
