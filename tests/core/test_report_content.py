"""What a failing run's reader sees: the HTML report, the markdown summary, the GitHub
step summary and the ::error annotations, asserted from their text.

One real failing run of the Toy project (in a subprocess, under a git checkout, with the
GitHub Actions variables set) is shared by the module: an over-tight latency budget and a
skewed export fail latency, verification, the shape sweep and the metric gate.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from awml_harness.report import format as fmt
from awml_harness.report.document import validate_document

REPO = Path(__file__).resolve().parents[2]
BUDGET = "evaluation.backends.onnx.latency_budget={'p95_ms': 1e-06}"


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=cwd, check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def failing_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    root = tmp_path_factory.mktemp("failing")
    shutil.copytree(REPO / "tests" / "toy" / "projects", root / "projects")
    shutil.copytree(REPO / "suites", root / "suites", ignore=shutil.ignore_patterns("__pycache__"))
    (root / "pytest.ini").write_text("[pytest]\nawml_deploy_configs = projects/Toy/configs/deploy.yaml\n")
    commit = None
    if shutil.which("git"):
        _git(root, "init", "-q")
        _git(root, "add", "-A")
        _git(root, "commit", "-q", "-m", "toy")
        commit = _git(root, "rev-parse", "HEAD")
    summary = root / "step_summary.md"
    summary.write_text("earlier step\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "GITHUB_"))}
    env.update(GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary),
               PYTHONPATH=os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]))
    args = ["suites", "-p", "no:cacheprovider", "--awml-report=report.html", "--awml-markdown=out/summary.md",
            "--awml-metrics-json=run.json", "--cfg-options", BUDGET, "model_cfg.export_skew=0.5"]
    done = subprocess.run([sys.executable, "-m", "pytest", *args], cwd=root, env=env, capture_output=True,
                          text=True, timeout=600)
    failed = set(re.findall(r"^FAILED (\S+)", done.stdout, re.M)) | set(re.findall(r"^ERROR (\S+)", done.stdout, re.M))
    return SimpleNamespace(root=root, rc=done.returncode, stdout=done.stdout, failed=failed, commit=commit,
                           doc=json.loads((root / "run.json").read_text()), html=(root / "report.html").read_text(),
                           md=(root / "out" / "summary.md").read_text(), summary=summary.read_text(), args=args)


def test_failures_list_every_failing_test_with_its_message(failing_run):
    r = failing_run
    assert r.rc == 1, r.stdout[-3000:]
    validate_document(r.doc)
    # the run failed in four places: latency budget, verification, shape sweep, metric gate
    kinds = {n.split("::")[0] for n in r.failed}
    assert kinds == {"suites/test_latency.py", "suites/test_verification.py", "suites/test_shapes.py",
                     "suites/test_evaluation.py"}, r.failed
    failures = r.doc["run"]["failures"]
    assert {f["nodeid"] for f in failures} == r.failed  # none left out, none invented
    latency = next(f for f in failures if "test_latency" in f["nodeid"])
    assert "exceeds evaluation.backends.onnx.latency_budget.p95_ms = 1e-06 ms" in latency["message"]
    assert "\n" not in latency["message"] and latency["file"] == "suites/test_latency.py" and latency["line"] > 1


def test_html_shows_verdict_and_every_failure_before_anything_else(failing_run):
    text = failing_run.html
    assert '<div class="verdict fail" id="verdict">FAILED' in text
    assert "<title>FAILED" in text
    failures = failing_run.doc["run"]["failures"]
    assert f"Failures ({len(failures)})" in text
    first_project = text.index("<h2>Toy</h2>")
    for f in failures:  # every failure, node id and one-line message, above the project sections
        assert text.index(html.escape(f["nodeid"])) < first_project
        assert text.index(html.escape(f["message"])) < first_project
    assert text.index('id="verdict"') < text.index('id="failures"') < first_project


def test_html_formats_numbers_with_units_and_puts_tolerance_beside_delta(failing_run):
    text, toy = failing_run.html, failing_run.doc["projects"]["Toy"]
    lat = toy["latency"]["onnx"]
    for key in ("p50", "p95", "p99"):
        assert f">{fmt.ms(lat[key])}<" in text
        assert f">{lat[key]!r}<" not in text  # no raw 17-digit floats
    assert re.search(r"\d ms<", text)
    art = toy["artifacts"][0]
    arts = text[text.index("<h3>Artifacts</h3>"):text.index("<h3>Resolved tolerances</h3>")]
    assert f">{fmt.mb(art['size_bytes'])}<" in arts and str(art["size_bytes"]) not in arts
    assert fmt.mb(art["size_bytes"]).endswith(" MB")
    # the metric gate: value, delta and the allowed |delta| in one cell, over tolerance marked
    onnx = toy["evaluation"]["backends"]["onnx"]
    tol = toy["tolerances"]["metrics"]["onnx"]["logit_mean"]
    assert tol == {"allowed": 1e-3, "rule": "0.001", "one_sided": False}
    assert onnx["gate"]["logit_mean"]["passed"] is False  # the cell renders the gate's own verdict
    cell = (f"{onnx['metrics']['logit_mean']:.4f}  Δ {onnx['deltas']['logit_mean']:+.4f} "
            f"(allowed ±{tol['allowed']:.4f}) ✗ OVER")
    assert cell in text
    assert f"Δ {onnx['deltas']['accuracy']:+.4f} (allowed ±0.0000) ✓" in text
    # the latency budget beside the measured percentiles, and the violation
    assert "p95_ms ≤ 1.00e-06 ms" in text and "OVER" in text


def test_html_groups_verification_by_scenario_and_output_with_the_worst_sample(failing_run):
    text, toy = failing_run.html, failing_run.doc["projects"]["Toy"]
    results = toy["verification"]["results"]
    assert len(results) == 2
    section = text[text.index("<h3>Verification</h3>"):text.index("<h3>Shape sweep</h3>")]
    rows = re.findall(r"<tr><td>pytorch:cpu-vs-onnx:cpu</td><td>output</td>(.*?)</tr>", section)
    assert len(rows) == 1  # two samples, one scenario, one output: one row
    worst = max(results, key=lambda r: r["leaves"][0]["max_abs_diff"])
    assert ">0/2<" in rows[0] and f">{worst['sample_id']}<" in rows[0]
    assert f">{fmt.diff(worst['leaves'][0]['max_abs_diff'])}<" in rows[0]
    assert "data:image/png;base64," in section  # the per-output difference histogram
    shapes = text[text.index("<h3>Shape sweep</h3>"):text.index("<h3>Artifacts</h3>")]
    assert len(toy["shapes"]) == 4 and shapes.count("<tr>") == 1 + sum(len(s["checked"]) for s in toy["shapes"])
    assert "FAIL" in shapes and "batch" in shapes


def test_html_names_command_line_commit_and_resolved_config(failing_run):
    r = failing_run
    text = r.html
    assert html.escape(r.doc["run"]["command"]) in text
    assert "--awml-markdown=out/summary.md" in r.doc["run"]["command"] and "export_skew=0.5" in r.doc["run"]["command"]
    if r.commit is None:
        pytest.skip("git is not installed: the commit cannot be recorded")
    assert r.doc["run"]["git"]["commit"] == r.commit
    assert r.commit[:12] in text
    assert "resolved deploy config" in text and "&quot;export_skew&quot;: 0.5" in text
    # the per-stage latency breakdown is shown with units
    stages = r.doc["projects"]["Toy"]["latency"]["onnx"]["stages_median_ms"]
    assert stages and all(f">{fmt.ms(v)}<" in text for v in stages.values())


def test_markdown_summary_step_summary_and_error_annotations(failing_run):
    r = failing_run
    md = r.md
    assert md.startswith("### ❌ awml-harness: FAILED")
    for f in r.doc["run"]["failures"]:
        assert f"`{f['nodeid']}`: {f['message']}" in md
    lat = r.doc["projects"]["Toy"]["latency"]["onnx"]
    row = next(line for line in md.splitlines() if line.startswith("| onnx |"))
    assert fmt.ms(lat["p50"]) in row and fmt.ms(lat["p95"]) + " ❌" in row
    assert "❌ logit_mean" in row and "0/2 ❌" in row
    assert "verification failed, 0/2 samples passed" in md
    # GitHub's step summary: appended after what earlier steps wrote, same text
    assert r.summary == "earlier step\n" + md + ("" if md.endswith("\n") else "\n")
    # one ::error per failure, with the test's file and line; newlines escaped
    errors = [line for line in r.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == len(r.doc["run"]["failures"])
    latency = next(e for e in errors if "test_latency" in e)
    assert latency.startswith("::error file=suites/test_latency.py,line=")
    assert "title=suites/test_latency.py%3A%3Atest_latency[Toy-onnx%3Acpu]::" in latency
    assert "%0A" in latency and "latency_budget.p95_ms = 1e-06 ms" in latency


def test_a_document_without_the_new_keys_still_renders(failing_run):
    """`awml report` on a run saved before run.failures, command, git, tolerances, shapes
    and resolved_config existed: failures come from run.problems, the rest reads "not recorded"."""
    from awml_harness.report.html import render_report
    from awml_harness.report.markdown import render_markdown

    doc = json.loads(json.dumps(failing_run.doc))
    for key in ("failures", "command", "git"):
        doc["run"].pop(key)
    for key in ("tolerances", "shapes", "resolved_config"):
        doc["projects"]["Toy"].pop(key)
    doc["projects"]["Toy"]["evaluation"].pop("directions")  # schema 1 had no directions and no gate records
    for backend in doc["projects"]["Toy"]["evaluation"]["backends"].values():
        backend.pop("gate", None)
    text = render_report(doc)
    assert '<div class="verdict fail"' in text
    for f in failing_run.doc["run"]["failures"]:
        assert html.escape(f["nodeid"]) in text
    assert "not recorded" in text and "allowed not recorded" in text
    assert "pytest suites -p no:cacheprovider" in text  # the command from run.argv
    assert render_markdown(doc).startswith("### ❌ awml-harness: FAILED")


def test_failures_include_end_of_run_gates_and_errors():
    """collect_failures keeps setup errors and gate failures (they have no test of their
    own), drops skips, and the renderers show each of them."""
    from awml_harness.report.html import render_report
    from awml_harness.report.markdown import github_annotations, render_markdown
    from awml_harness.report.verdict import collect_failures

    problems = [
        {"nodeid": "a.py::test_x", "when": "setup", "outcome": "error", "message": "ValueError: bad fixture",
         "file": "a.py", "line": 3},
        {"nodeid": "a.py::test_y", "when": "setup", "outcome": "skipped", "message": "Skipped: no GPU"},
    ]
    gate = ["awml P-fp16:cpu (onnx-fp16): metrics differ from pytorch:\n  - accuracy: 0.5 vs reference 0.9 "
            "(delta -0.4, allowed 0.02; key evaluation.metric_tolerance.accuracy)"]
    failures = collect_failures(problems, gate)
    assert [f["nodeid"] for f in failures] == ["a.py::test_x", None]
    assert failures[1]["message"] == ("awml P-fp16:cpu (onnx-fp16): metrics differ from pytorch: accuracy: 0.5 vs "
                                      "reference 0.9 (delta -0.4, allowed 0.02; key evaluation.metric_tolerance.accuracy)")
    doc = {"run": {"exitstatus": 1, "tests": {"passed": 3, "error": 1}, "duration_s": 1.0, "problems": problems,
                   "failures": failures}, "machine": {}, "projects": {}}
    text = render_report(doc)
    assert "Failures (2)" in text and "bad fixture" in text and "end of run (sessionfinish)" in text
    assert html.escape("metrics differ from pytorch: accuracy: 0.5") in text
    md = render_markdown(doc)
    assert "- end of run: awml P-fp16:cpu (onnx-fp16): metrics differ" in md
    errors = github_annotations(doc)
    assert errors[0].startswith("::error file=a.py,line=3,title=a.py%3A%3Atest_x::ValueError: bad fixture")
    assert errors[1].startswith("::error title=awml-harness end-of-run check::awml P-fp16")


def test_a_failed_exit_status_without_failing_tests_is_not_shown_as_passed():
    from awml_harness.report.html import render_report
    from awml_harness.report.markdown import render_markdown

    doc = {"run": {"exitstatus": 2, "tests": {"passed": 3}, "problems": [], "failures": []}, "machine": {},
           "projects": {}}
    assert '<div class="verdict fail"' in render_report(doc) and "no failing test was recorded" in render_report(doc)
    assert "FAILED" in render_markdown(doc)
    ok = {"run": {"exitstatus": 0, "tests": {"passed": 3}, "problems": [], "failures": []}, "machine": {},
          "projects": {}}
    assert '<div class="verdict pass"' in render_report(ok) and render_markdown(ok).startswith("### ✅")


def test_units_formatting():
    assert fmt.ms(10.84155250009644) == "10.8 ms" and fmt.ms(1.4761998) == "1.48 ms" and fmt.ms(250.4) == "250 ms"
    assert fmt.ms(None) == "not recorded"
    assert fmt.mb(2821892) == "2.82 MB" and fmt.pct(0.4) == "40.0 %"
    assert fmt.metric(1.0) == "1.0000" and fmt.metric(40) == "40" and fmt.delta(0.25) == "+0.2500"
    assert fmt.diff(0.008257) == "0.00826" and fmt.diff(2.86e-06) == "2.86e-06"


def test_step_summary_is_appended_only_under_github_actions(tmp_path):
    from awml_harness.report.markdown import append_step_summary

    target = tmp_path / "summary.md"
    target.write_text("before\n")
    assert append_step_summary("# run", {}) is None
    assert append_step_summary("# run", {"GITHUB_STEP_SUMMARY": str(target)}) == target
    assert target.read_text() == "before\n# run\n"


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="Chromium is not installed (/usr/bin/chromium); "
                    "the browser check runs where it is (apt-get install chromium)")
def test_chromium_shows_the_failed_verdict_above_the_fold(failing_run, tmp_path):
    """The real browser's first 1280x900 screen: the red verdict banner at the top."""
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from render_report import screenshot
    finally:
        sys.path.remove(str(REPO / "tools"))
    from PIL import Image

    png = screenshot(failing_run.root / "report.html", tmp_path / "shot.png", chromium="/usr/bin/chromium")
    img = Image.open(png).convert("RGB")
    assert img.size == (1280, 900)
    assert img.getpixel((5, 5)) == (0xCF, 0x22, 0x2E)  # the FAILED banner's colour, first thing on screen


def test_a_run_failed_after_the_tests_is_reported_failed(toy_repo):
    """A plugin fails the run after our sessionfinish wrote the reports (as
    --benchmark-compare-fail does): the JSON, HTML and markdown are rewritten to FAILED."""
    toy_repo.makeconftest("""
        import pytest

        @pytest.hookimpl(trylast=True)
        def pytest_sessionfinish(session):
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    """)
    # the markdown path from the config key report.markdown (relative to the rootdir)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export",
                                           "--awml-report=r.html", "--cfg-options", "report.markdown=md/r.md")
    assert result.ret == 1
    doc = json.loads((toy_repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    validate_document(doc)
    assert doc["run"]["exitstatus"] == 1 and "after the tests had passed" in doc["run"]["failures"][0]["message"]
    assert '<div class="verdict fail"' in (toy_repo.path / "r.html").read_text()
    assert "FAILED" in (toy_repo.path / "md" / "r.md").read_text()


def test_localisation_and_memory_figures_are_shown_when_recorded(failing_run):
    """Keys other features add to the document (--awml-localize's per-sample
    `localization`, per-backend `memory`) get their own tables in the HTML and markdown."""
    from awml_harness.report.html import render_report
    from awml_harness.report.markdown import render_markdown

    doc = json.loads(json.dumps(failing_run.doc))
    toy = doc["projects"]["Toy"]
    toy["verification"]["results"][0]["localization"] = {
        "ref": "pytorch:cpu", "test": "onnx:cpu", "method": "onnx: every tensor marked", "compared": 7,
        "candidates": 7, "notes": [],
        "first": [{"graph": "model", "node": "/head/Gemm", "op_type": "Gemm", "tensor": "logits",
                   "max_abs_diff": 0.5, "atol": 1e-4, "rtol": 1e-4}]}
    toy["evaluation"]["backends"]["onnx"]["memory"] = {"method": "sampled", "peak_rss_bytes": 612_000_000,
                                                      "peak_rss_increase_bytes": 12_500_000}
    text = render_report(doc)
    loc = text[text.index("first diverging nodes"):]
    assert "<td>/head/Gemm</td><td>Gemm</td><td>logits</td>" in loc and ">atol 1.00e-04, rtol 1.00e-04<" in loc
    mem = text[text.index("<h3>Memory</h3>"):]
    assert ">612.00 MB<" in mem and ">12.50 MB<" in mem
    row = next(line for line in render_markdown(doc).splitlines() if line.startswith("| onnx |"))
    assert row.endswith("| 612.00 MB |")


def test_report_modules_import_no_matplotlib_numpy_or_torch():
    """The plugin imports the writers at the end of every run: plotting stays lazy."""
    code = ("import sys, awml_harness.report.html, awml_harness.report.markdown, awml_harness.report.verdict; "
            "print(sorted(m for m in ('matplotlib', 'numpy', 'torch', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert out == "[]"
