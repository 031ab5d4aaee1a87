"""The `awml` console script (awml_harness/cli/) on metrics JSON files from real runs of
the shipped suites on the Toy project: diff, report, show, and their errors."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from awml_harness.cli import main

HERE = Path(__file__).parent
REPO = HERE.parent.parent


def _run_suite(root: Path, *args: str) -> dict:
    """Run the shipped suites on the Toy config in `root`; return the run's metrics JSON."""
    if not (root / "suites").exists():
        shutil.copytree(HERE.parent / "toy" / "projects", root / "projects")
        shutil.copytree(REPO / "suites", root / "suites", ignore=shutil.ignore_patterns("__pycache__"))
        (root / "pytest.ini").write_text("[pytest]\nawml_deploy_configs = projects/Toy/configs/deploy.yaml\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-m", "pytest", "suites", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                          *args], cwd=root, env=env, capture_output=True, text=True)
    path = root / "work_dirs" / "toy" / "metrics.json"
    assert path.is_file(), out.stdout[-3000:] + out.stderr[-3000:]
    return json.loads(path.read_text())


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A passing run, and a run whose ONNX export is skewed (a really degraded model)."""
    root = tmp_path_factory.mktemp("toy_runs")
    files = {}
    for name, args in (("base", ()), ("skewed", ("--cfg-options", "model_cfg.export_skew=-100.0"))):
        doc = _run_suite(root, *args)
        files[name] = root / f"{name}.json"
        files[name].write_text(json.dumps(doc))
    return files


def _cli(*args: str) -> subprocess.CompletedProcess:
    """The script as CI calls it (python -m: the entry point is not installed in the test venv)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "awml_harness.cli", *args], capture_output=True, text=True, env=env)


def _degraded(src: Path, dst: Path, *, accuracy: float = -0.2, latency: float = 2.0) -> Path:
    doc = json.loads(src.read_text())
    toy = doc["projects"]["Toy"]
    toy["evaluation"]["backends"]["onnx"]["metrics"]["accuracy"] += accuracy
    for stat in ("p50", "p95", "median", "mean"):
        toy["latency"]["pytorch"][stat] *= latency
    dst.write_text(json.dumps(doc))
    return dst


def test_diff_of_a_run_against_itself_exits_0(runs):
    out = _cli("diff", str(runs["base"]), str(runs["base"]))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no regression beyond the thresholds" in out.stdout
    for needle in ("accuracy", "latency p50 ms", "latency p95 ms", "verification", "2/2 verified"):
        assert needle in out.stdout


def test_diff_names_a_lower_metric_and_a_slower_backend_and_exits_1(runs, tmp_path):
    worse = _degraded(runs["base"], tmp_path / "worse.json")
    out = _cli("diff", str(runs["base"]), str(worse))
    assert out.returncode == 1, out.stdout + out.stderr
    lines = out.stdout.splitlines()
    assert "3 regressions beyond the thresholds:" in lines
    assert any(line.startswith("  - Toy onnx: accuracy worse 0.6000 -> 0.4000 (-0.2000, higher is better; allowed 0.01")
               for line in lines), out.stdout
    for stat in ("p50", "p95"):
        assert any(line.startswith(f"  - Toy pytorch: latency {stat} ") and "+100.0 %, allowed +10 %; --latency-increase"
                   in line for line in lines), out.stdout


def test_diff_thresholds_are_configurable(runs, tmp_path):
    worse = _degraded(runs["base"], tmp_path / "worse.json", accuracy=-0.2, latency=1.5)
    loose = main(["diff", str(runs["base"]), str(worse), "--metric-drop", "0.25", "--latency-increase", "0.6"])
    assert loose == 0
    tight = main(["diff", str(runs["base"]), str(worse), "--metric-drop", "0.25", "--latency-increase", "0.4"])
    assert tight == 1
    # a backend's latency_regression limit recorded in NEW wins over --latency-increase
    doc = json.loads(worse.read_text())
    doc["projects"]["Toy"]["latency"]["pytorch"]["regression_limits"] = {"p50": 1.0, "p95": 1.0}
    worse.write_text(json.dumps(doc))
    assert main(["diff", str(runs["base"]), str(worse), "--metric-drop", "0.25", "--latency-increase", "0.4"]) == 0
    # --metric gates a further metric
    doc["projects"]["Toy"]["evaluation"]["backends"]["pytorch"]["metrics"]["logit_mean"] -= 0.5
    worse.write_text(json.dumps(doc))
    assert main(["diff", str(runs["base"]), str(worse), "--metric-drop", "0.25", "--latency-increase", "0.4"]) == 0
    assert main(["diff", str(runs["base"]), str(worse), "--metric-drop", "0.25", "--latency-increase", "0.4",
                 "--metric", "logit_mean"]) == 1


def test_diff_against_a_really_degraded_run_names_accuracy_and_verification(runs):
    # two real runs: their microsecond latencies and RSS differ by machine noise, not by the skew
    noise = ("--latency-increase", "1000", "--memory-increase", "1000")
    out = _cli("diff", str(runs["base"]), str(runs["skewed"]), *noise)
    assert out.returncode == 1, out.stdout + out.stderr
    assert "Toy onnx: accuracy worse" in out.stdout
    assert "Toy: verification went from verified to failed" in out.stdout
    assert "Toy: verification pytorch:cpu-vs-onnx:cpu sample 0 " in out.stdout
    # the other way round the metric improved and verification recovered: no regression
    back = _cli("diff", str(runs["skewed"]), str(runs["base"]), *noise)
    assert back.returncode == 0, back.stdout


def test_diff_names_vanished_backends_projects_and_memory_growth(runs, tmp_path):
    doc = json.loads(runs["base"].read_text())
    gone = copy.deepcopy(doc)
    del gone["projects"]["Toy"]["evaluation"]["backends"]["onnx"]
    del gone["projects"]["Toy"]["latency"]["onnx"]
    (tmp_path / "gone.json").write_text(json.dumps(gone))
    out = _cli("diff", str(runs["base"]), str(tmp_path / "gone.json"))
    assert out.returncode == 1
    assert "Toy onnx: evaluated (ok) in OLD, missing in NEW" in out.stdout
    assert "Toy onnx: latency measured in OLD, not in NEW" in out.stdout
    empty = copy.deepcopy(doc)
    empty["projects"] = {}
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    assert "Toy: in OLD but not in NEW" in _cli("diff", str(runs["base"]), str(tmp_path / "empty.json")).stdout
    mem_old, mem_new = copy.deepcopy(doc), copy.deepcopy(doc)
    mem_old["projects"]["Toy"]["evaluation"]["backends"]["onnx"]["memory"] = {"method": "m", "peak_rss_bytes": 400 * 2**20}
    mem_new["projects"]["Toy"]["evaluation"]["backends"]["onnx"]["memory"] = {"method": "m", "peak_rss_bytes": 500 * 2**20}
    (tmp_path / "m0.json").write_text(json.dumps(mem_old))
    (tmp_path / "m1.json").write_text(json.dumps(mem_new))
    out = _cli("diff", str(tmp_path / "m0.json"), str(tmp_path / "m1.json"))
    assert out.returncode == 1
    assert "Toy onnx: peak RSS grew 400.0 -> 500.0 MB (+25.0 %, allowed +20 %; --memory-increase)" in out.stdout
    assert main(["diff", str(tmp_path / "m0.json"), str(tmp_path / "m1.json"), "--memory-increase", "0.3"]) == 0


@pytest.mark.parametrize("content, needle", [
    ('{"schema_version": 1, "projects": ', "not valid JSON (line 1 column 35: Expecting value)"),
    ('[1, 2]', "not a metrics JSON (top level has list"),
    ('{"hello": 1}', "not a metrics JSON (top level has ['hello']"),
    (None, "no such file"),
])
def test_unreadable_or_invalid_json_is_one_clear_error_and_exit_2(runs, tmp_path, content, needle):
    bad = tmp_path / "bad.json"
    if content is not None:
        bad.write_text(content)
    for args in (["diff", str(bad), str(runs["base"])], ["diff", str(runs["base"]), str(bad)], ["show", str(bad)],
                 ["report", str(bad), "-o", str(tmp_path / "r.html")]):
        out = _cli(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.count("\n") == 1 and needle in out.stderr and str(bad) in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
    assert not (tmp_path / "r.html").exists()


def test_a_document_breaking_the_schema_names_where(runs, tmp_path):
    pytest.importorskip("jsonschema")
    doc = json.loads(runs["base"].read_text())
    doc["projects"]["Toy"]["export_mode"] = "sideways"
    (tmp_path / "x.json").write_text(json.dumps(doc))
    out = _cli("show", str(tmp_path / "x.json"))
    assert out.returncode == 2
    assert "does not follow metrics.schema.json at projects/Toy/export_mode" in out.stderr


def test_show_prints_the_summary_table(runs, capsys):
    from awml_harness.report.summary import render_summary

    assert main(["show", str(runs["base"])]) == 0
    printed = capsys.readouterr().out.splitlines()
    doc = json.loads(runs["base"].read_text())
    assert printed[1:] == render_summary(doc)
    assert printed[0].startswith("awml run ") and "exit status 0" in printed[0]


def test_report_renders_a_saved_run_atomically(runs, tmp_path):
    pytest.importorskip("matplotlib")
    from awml_harness.report.html import render_report

    target = tmp_path / "out" / "report.html"
    out = _cli("report", str(runs["skewed"]), "-o", str(target))
    assert out.returncode == 0, out.stderr
    text = target.read_text()
    assert text.startswith("<!doctype html>") and "Toy" in text
    assert len(text) == len(render_report(json.loads(runs["skewed"].read_text())))
    assert [p.name for p in target.parent.iterdir()] == ["report.html"]  # no temp file left
    blocked = tmp_path / "file"
    blocked.write_text("")
    bad = _cli("report", str(runs["base"]), "-o", str(blocked / "r.html"))
    assert bad.returncode == 2 and "could not write" in bad.stderr


def test_console_script_entry_and_help():
    text = (REPO / "pyproject.toml").read_text()
    assert '[project.scripts]\nawml = "awml_harness.cli:main"' in text
    out = _cli("--help")
    assert out.returncode == 0
    for name in ("diff", "report", "show"):
        assert name in out.stdout
    assert _cli("diff", "only-one.json").returncode == 2  # argparse usage error


def test_the_script_imports_no_heavy_module(runs):
    code = ("import sys\nfrom awml_harness.cli import main\nrc = main(['diff', sys.argv[1], sys.argv[1]])\n"
            "rc = rc or main(['show', sys.argv[1]])\n"
            "print('HEAVY', sorted(m for m in ('torch', 'onnxruntime', 'tensorrt', 'onnx') if m in sys.modules), rc)")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code, str(runs["base"])], capture_output=True, text=True, env=env)
    assert "HEAVY [] 0" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]


def test_diff_of_a_real_run_with_its_lower_is_better_metric_made_worse_exits_1_and_better_exits_0(runs, tmp_path):
    doc = json.loads(runs["base"].read_text())
    toy = doc["projects"]["Toy"]
    assert toy["evaluation"]["directions"]["error_rate"] == "lower"  # what the Toy evaluator declares
    assert toy["evaluation"]["directions"]["num_samples"] == "none"
    worse, better = copy.deepcopy(doc), copy.deepcopy(doc)
    worse["projects"]["Toy"]["evaluation"]["backends"]["onnx"]["metrics"]["error_rate"] += 0.3
    better["projects"]["Toy"]["evaluation"]["backends"]["onnx"]["metrics"]["error_rate"] -= 0.3
    (tmp_path / "worse.json").write_text(json.dumps(worse))
    (tmp_path / "better.json").write_text(json.dumps(better))
    noise = ("--latency-increase", "1000", "--memory-increase", "1000")
    out = _cli("diff", str(runs["base"]), str(tmp_path / "worse.json"), *noise)
    assert out.returncode == 1, out.stdout
    assert "  - Toy onnx: error_rate worse 0.4000 -> 0.7000 (+0.3000, lower is better; allowed 0.01" in out.stdout
    out = _cli("diff", str(runs["base"]), str(tmp_path / "better.json"), *noise)
    assert out.returncode == 0, out.stdout
    assert "error_rate ↓" in out.stdout


def test_diff_names_a_latency_gate_that_went_from_passed_to_failed(runs, tmp_path):
    doc = json.loads(runs["base"].read_text())
    doc["projects"]["Toy"]["latency"]["onnx"]["budget_violations"] = ["p95 = 9 ms exceeds ... latency_budget.p95_ms = 1 ms"]
    (tmp_path / "over.json").write_text(json.dumps(doc))
    out = _cli("diff", str(runs["base"]), str(tmp_path / "over.json"), "--latency-increase", "1000")
    assert out.returncode == 1
    assert "Toy onnx: the latency gate passed in OLD and fails in NEW: p95 = 9 ms exceeds" in out.stdout
