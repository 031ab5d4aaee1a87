"""Progress output (issue 17, item 4): export tests first, also under -k; exports built
outside the evaluation tests when export tests are deselected; a line per export and per
evaluation pass, live under capture and xdist; repeated warnings of a build in one line."""

from __future__ import annotations

import re
import warnings

import pytest

from awml_harness import progress


def _fp16_repo(toy_repo, gain: str = "100000000.0"):
    """Toy with an onnx-fp16 backend and a layer whose two constants the fp16 converter clips
    (1e8 and 1e-8: two warnings from onnxconverter-common, like CenterPoint's 13-16)."""
    cfg = toy_repo.path / "projects" / "Toy" / "configs" / "deploy.yaml"
    text = cfg.read_text().replace("    onnx: {device: cpu}\n", "    onnx: {device: cpu}\n    onnx-fp16: {device: cpu}\n")
    text = text.replace('metric_tolerance: {"*": 0.0, logit_mean: 1.0e-3}', 'metric_tolerance: {"*": 100.0}')
    text = text.replace("model_cfg: {channels: 4, size: 16, num_samples: 5}",
                        f"model_cfg: {{channels: 4, size: 16, num_samples: 5, fp16_fragile: {gain}}}")
    assert "onnx-fp16" in text and "fp16_fragile" in text and '"*": 100.0' in text
    cfg.write_text(text)
    return toy_repo


def _ran(result) -> list[str]:
    """Test names in the order they ran (-v lines)."""
    return [m.group(1) for line in result.stdout.lines
            if (m := re.match(r"suites/\w+\.py::(\w+)\[.*\] (PASSED|FAILED|SKIPPED)", line))]


def test_export_tests_run_first_also_under_k(toy_repo):
    repo = _fp16_repo(toy_repo)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-v", "-k", "evaluation or export or verification")
    result.assert_outcomes(passed=7)  # export fp32 + fp16, evaluation 3, verification 2
    ran = _ran(result)
    assert ran[:2] == ["test_export", "test_export"], ran
    assert "test_export" not in ran[2:] and {"test_evaluation", "test_verification"} <= set(ran[2:]), ran
    # built inside the export tests, each announced with its time; no prebuild needed
    out = result.stdout.str()
    assert "awml prebuild" not in out
    lines = result.stdout.lines
    start = lines.index("awml export Toy model onnx fp32 ...")
    assert re.fullmatch(r"awml export Toy model onnx fp32 done in \d+\.\d s", lines[start + 1])
    assert lines.index("awml export Toy model onnx fp16 ...") < min(
        i for i, line in enumerate(lines) if "test_evaluation[" in line)


def test_deselected_export_tests_leave_the_build_to_the_export_stage(toy_repo):
    """`-k evaluation`: the exports (and the fp16 converter's warnings) are the export
    stage's, printed before the first evaluation test, not pinned on test_evaluation."""
    repo = _fp16_repo(toy_repo)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "evaluation", "-rA", "--durations=0")
    result.assert_outcomes(passed=3)
    lines = result.stdout.lines
    stage = lines.index("awml prebuild Toy: onnx fp32, onnx fp16 (no selected export test builds them; "
                        "built here, outside any test)")
    first_test = min(i for i, line in enumerate(lines) if line.startswith("suites/test_evaluation.py"))
    assert stage < lines.index("awml export Toy model onnx fp16 ...") < first_test
    # the converter's two clipping warnings: one line, and none in pytest's warnings summary
    gathered = [line for line in lines if "warnings like:" in line]
    assert gathered == ["awml export Toy model onnx fp16: 2 warnings like: UserWarning: the float32 number "
                        "100000000.0 will be truncated to 10000.0"], gathered
    out = result.stdout.str()
    assert "warnings summary" not in out and "will be truncated" not in out.split("PASSED", 1)[1]
    # and the evaluation pass has its line
    result.stdout.fnmatch_lines(["awml evaluate Toy [[]pytorch, onnx, onnx-fp16[]]: 5 samples ...",
                                 "awml evaluate Toy [[]pytorch, onnx, onnx-fp16[]]: 5/5 samples, * s, * samples/s done"])


def test_evaluation_progress_at_the_interval(toy_repo):
    repo = _fp16_repo(toy_repo)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "evaluation",
                                       "--awml-progress-interval", "0")
    result.assert_outcomes(passed=3)
    ticks = [line for line in result.stdout.lines if line.startswith("awml evaluate Toy")]
    assert [t.split(": ", 1)[1].split(" samples")[0] for t in ticks] == ["5", "1/5", "2/5", "3/5", "4/5", "5/5"], ticks


def test_progress_lines_show_under_xdist(toy_repo):
    pytest.importorskip("xdist")
    repo = _fp16_repo(toy_repo)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "evaluation", "-n", "2")
    result.assert_outcomes(passed=3)
    out = result.stdout.str() + result.stderr.str()
    for line in ("awml prebuild Toy:", "awml export Toy model onnx fp32 done in",
                 "awml export Toy model onnx fp16: 2 warnings like:", "awml evaluate Toy [pytorch, onnx, onnx-fp16]: 5/5"):
        assert line in out, out


# -- the pieces ------------------------------------------------------------------------------

def _warn_twice_and_once() -> None:
    for value in (1e9, 2e9, 3e9):
        warnings.warn(f"value {value} clipped", UserWarning, stacklevel=1)
    warnings.warn("a deprecation", DeprecationWarning, stacklevel=1)


@pytest.fixture(autouse=True)
def _detached(monkeypatch):
    """progress.py's module state belongs to the pytest run executing these tests: the
    unit tests below write to stderr instead, and leave that state as it was."""
    monkeypatch.setattr(progress, "_config", None)
    monkeypatch.setattr(progress, "_stack", [])
    monkeypatch.setattr(progress, "_interval_s", progress.DEFAULT_INTERVAL_S)


def test_gathered_warnings_one_line_per_repeating_site_singles_reissued(capsys):
    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        with progress.gathered_warnings("export X"):
            _warn_twice_and_once()
    err = capsys.readouterr().err.splitlines()
    assert err == ["awml export X: 3 warnings like: UserWarning: value 1000000000.0 clipped"]
    assert [(w.category, str(w.message)) for w in outer] == [(DeprecationWarning, "a deprecation")]


def test_outside_tests_every_warning_becomes_a_line(capsys):
    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        with progress.outside_tests(), progress.gathered_warnings("export X"):
            _warn_twice_and_once()
    assert outer == []
    assert capsys.readouterr().err.splitlines() == [
        "awml export X: 3 warnings like: UserWarning: value 1000000000.0 clipped",
        "awml export X: warning: DeprecationWarning: a deprecation"]


def test_step_reports_failure_with_its_time(capsys):

    def boom(folder):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        progress.step("export Y", boom)("tmp")
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == "awml export Y ..." and re.fullmatch(r"awml export Y FAILED in \d+\.\d s", lines[1])


def test_export_stage_turns_its_own_warnings_into_lines(capsys):
    """Warnings the stage raises outside any artifact build (building the model, e.g. a
    missing checkpoint) are the stage's lines, not entries pinned on the next test."""
    from awml_harness.prebuild import Prebuild

    class Context:
        def onnx_artifacts(self, precision):
            warnings.warn("checkpoint_path is None; using a seeded random initialization", UserWarning, stacklevel=1)

    class Harness:
        def context(self, cid):
            return Context()

    with warnings.catch_warnings(record=True) as outer:
        warnings.simplefilter("always")
        Prebuild(Harness()).run("X", [("onnx", "fp32")])
    assert outer == []
    assert capsys.readouterr().err.splitlines() == [
        "awml prebuild X: onnx fp32 (no selected export test builds them; built here, outside any test)",
        "awml prebuild X: warning: UserWarning: checkpoint_path is None; using a seeded random initialization"]


def test_export_tests_move_up_to_the_first_harness_test_only(toy_repo):
    """A user's own tests before the suites keep their place; export tests go before the
    first harness test, the other harness tests keep their relative order."""
    toy_repo.makepyfile(test_aaa_user="def test_mine():\n    pass\n")
    result = toy_repo.runpytest_subprocess("test_aaa_user.py", "suites", "-p", "no:cacheprovider", "--collect-only", "-q")
    ids = [line for line in result.stdout.lines if "::" in line]
    assert ids[0] == "test_aaa_user.py::test_mine"
    names = [i.split("::")[1].split("[")[0] for i in ids[1:]]
    assert names[0] == "test_export" and "test_export" not in names[1:]
    assert names[1:] == sorted(names[1:], key=["test_evaluation", "test_latency", "test_shape_sweep",
                                                "test_verification"].index), names


def test_configure_nests_and_detaching_restores_the_outer_run():
    outer, inner = object(), object()
    progress.configure(outer, 3.0)
    progress.configure(inner, 0.0)
    assert (progress._config, progress.interval_s()) == (inner, 0.0)
    progress.configure(None)
    assert (progress._config, progress.interval_s()) == (outer, 3.0)
    progress.configure(None)
    assert progress._config is None and progress.interval_s() == progress.DEFAULT_INTERVAL_S
