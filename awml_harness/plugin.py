"""pytest11 entry point: options, ini keys and hooks. Wiring only.

Imports pytest and the standard library alone; the harness proper (numpy, torch,
onnxruntime) is imported inside hooks that need it, so `pytest --help` and runs that
collect no suite stay fast.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import pytest

from awml_harness.stash_keys import SESSION_KEY, SINK_KEY

RECORD_TAG = "awml"
#: workerinput key: the deploy configs the xdist controller read, handed to each worker
HANDOFF_KEY = "awml_configs"


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"expected a non-negative integer, got {value!r}") from None
    if n < 0:
        raise pytest.UsageError(f"expected a non-negative integer, got {value!r}")
    return n


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("awml", "awml-harness: export, verify and evaluate deployed models")
    group.addoption("--deploy-cfg", action="append", default=[], metavar="PATH",
                    help="deploy config (.py or .yaml); repeatable. Default: ini key awml_deploy_configs")
    group.addoption("--cfg-options", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override config keys, e.g. verification.default.atol=1e-6 (every config) or "
                         "MyDetector:model_cfg.score_threshold=0.2 (that project's configs only)")
    group.addoption("--model-cfg", default=None, metavar="PATH",
                    help="model config (an OpenMMLab/AWML config .py, or a native model_cfg file) for every "
                         "deploy config: the seed's `main.py deploy_cfg MODEL_CFG`. Replaces model_cfg")
    group.addoption("--checkpoint", default=None, metavar="PATH",
                    help="checkpoint for every deploy config (the seed's third positional argument); "
                         "replaces checkpoint_path")
    group.addoption("--work-dir", default=None, metavar="DIR", help="override export.work_dir (artifact cache)")
    group.addoption("--device", default=None, metavar="DEVICE",
                    help="run the pytorch/onnx evaluation backends on this device (cpu, cuda:N)")
    group.addoption("--awml-metrics-json", default=None, metavar="PATH",
                    help="where to write the metrics JSON (default: report.metrics_json or <work_dir>/metrics.json)")
    group.addoption("--awml-rebuild", action="store_true", default=False,
                    help="rebuild every artifact once in this run instead of reusing the cache")
    group.addoption("--awml-strict", action="store_true", default=False,
                    help="a missing backend or device fails the test instead of skipping it (GPU CI)")
    group.addoption("--awml-unsafe-load", action="store_true", default=False,
                    help="allow checkpoints / info files that need full unpickling (runs code from the file)")
    group.addoption("--awml-allow-python-in-yaml", action="store_true", default=False,
                    help="let YAML deploy configs name .py files (_base_, model_cfg); those run as code. "
                         "Off: a YAML config never runs Python")
    group.addoption("--awml-threads", type=_positive_int, default=None, metavar="N",
                    help="CPU threads of every backend (PyTorch and ONNX Runtime intra-op; inter-op 1); "
                         "overrides evaluation.threads. Default 1: stable latency on small shared machines. "
                         "0: each library's own default")
    group.addoption("--awml-ort-spinning", action="store_true", default=False,
                    help="let ONNX Runtime's threads spin between runs (its default; lowest ORT latency, "
                         "but it slows the other backends in the same process). Off unless given")
    group.addoption("--awml-report", default=None, metavar="PATH",
                    help="write a self-contained HTML report (summary, latency, per-class metrics, errors)")
    group.addoption("--awml-markdown", default=None, metavar="PATH",
                    help="write a compact markdown summary (verdict, failures, key metrics, latency, verification) "
                         "for a PR comment; under GitHub Actions it is also appended to $GITHUB_STEP_SUMMARY")
    group.addoption("--awml-suggest-tolerances", nargs="?", const="", default=None, metavar="PATH",
                    help="print (and write to PATH, default <work_dir>/suggested_tolerances.py) the per-output "
                         "tolerances observed in verification, in deploy-config syntax")
    group.addoption("--awml-tolerance-headroom", type=float, default=2.0, metavar="FACTOR",
                    help="multiply observed differences by this for --awml-suggest-tolerances (default 2)")
    group.addoption("--awml-latency-baseline", default=None, metavar="PATH|latest",
                    help="pytest-benchmark saved JSON (or 'latest' in --benchmark-storage) that "
                         "evaluation.backends.<name>.latency_regression is checked against")
    group.addoption("--awml-save-golden", default=None, metavar="DIR",
                    help="store each verification reference's outputs under DIR")
    group.addoption("--awml-golden", default=None, metavar="DIR",
                    help="add scenarios comparing test backends with golden outputs stored under DIR")
    group.addoption("--awml-shard", default=None, metavar="I/N",
                    help="evaluate only samples i with i %% N == I-1 (I = 1..N) and write their predictions to a "
                         "shard file instead of metrics; `awml merge` computes the metrics from all N shards")
    group.addoption("--awml-shard-json", default=None, metavar="PATH",
                    help="where --awml-shard writes its shard file (default: shard-IofN.json beside the metrics JSON)")
    group.addoption("--awml-localize", action="store_true", default=False,
                    help="when a verification fails, run both backends with every intermediate tensor marked "
                         "as an output and name the first diverging nodes (ONNX, fp16, TensorRT; PyTorch at "
                         "module boundaries). Slow: opt-in")
    group.addoption("--awml-progress-interval", type=float, default=10.0, metavar="SECONDS",
                    help="seconds between progress lines of an evaluation pass (default 10; 0: every sample). "
                         "Exports and engine builds print a line when they start and end")
    parser.addini("awml_deploy_configs", type="paths", default=[],
                  help="deploy configs run when no --deploy-cfg is given")


def _abs(path: str | None, root: Path) -> Path | None:
    if path is None:
        return None
    p = Path(path)
    return p if p.is_absolute() else root / p


def _cli_path(path: str | None, config: pytest.Config) -> str | None:
    """Command-line paths are relative to where pytest was invoked."""
    return None if path is None else str(_abs(path, config.invocation_params.dir))


def _is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


_exit_freeze_registered = False


def _freeze_heap_at_exit() -> None:
    """After the last test, a process that imported torch spends ~0.5 s of a 2-core box in
    the interpreter's final garbage collections over torch's objects; freezing the heap in
    an exit hook cuts that to ~0.2 s for every run and every xdist worker (issue 16, P1/P7).
    An exit hook, not pytest_unconfigure, so a process that goes on after pytest.main()
    (pytester's in-process runs) keeps collecting its garbage; once per process. What is
    still alive at exit is not promised its finalizers by Python either way; the harness
    writes and closes its files before the session ends."""
    global _exit_freeze_registered
    if _exit_freeze_registered:
        return
    import atexit
    import gc

    atexit.register(gc.freeze)
    _exit_freeze_registered = True


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "awml: a test generated by awml-harness from a deploy config")
    config.addinivalue_line("markers", "slow: long-running (full-size configs); deselect with -m 'not slow'")
    config.addinivalue_line("markers", "gpu: needs a CUDA device")
    if config.option.help or config.option.version:
        return
    _freeze_heap_at_exit()
    if config.option.awml_report:
        import importlib.util

        if importlib.util.find_spec("matplotlib") is None:
            raise pytest.UsageError("--awml-report needs matplotlib: pip install 'awml-harness[report]'")
    paths = ([Path(p) for p in config.option.deploy_cfg] or list(config.getini("awml_deploy_configs"))
             or _embedded_default(config))
    if not paths:
        return
    from awml_harness.session import HarnessSession, RunOptions, with_unique_ids

    handed = config.workerinput.get(HANDOFF_KEY) if _is_worker(config) else None
    if handed is not None:  # the controller read and checked them (_XdistHooks.pytest_configure_node)
        from awml_harness.config.load import unpack_from_controller

        configs = unpack_from_controller(handed)
    else:
        configs = _read_configs(config, paths)
        _check_overrides(config, configs)
    split = None
    if config.option.awml_shard is not None:
        from awml_harness.split import parse_shard

        try:
            split = parse_shard(config.option.awml_shard)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    started = config.workerinput.get("awml_run_started") if _is_worker(config) else time.time()
    options = RunOptions(
        rebuild_before=float(started) if config.option.awml_rebuild else None,
        strict=config.option.awml_strict,
        threads=config.option.awml_threads,
        ort_spinning=config.option.awml_ort_spinning,
        save_golden=_abs(config.option.awml_save_golden, config.rootpath),
        golden=_abs(config.option.awml_golden, config.rootpath),
        split=split,
        localize=config.option.awml_localize,
    )
    if _is_worker(config):
        shards = int(config.workerinput.get("workercount", 1))
    else:
        shards = max(_worker_count(config), 1)
    config.stash[SESSION_KEY] = HarnessSession(with_unique_ids(configs), options, shards=shards)
    from awml_harness.report.sink import ResultSink

    sink = ResultSink(started=float(started))
    config.stash[SINK_KEY] = sink
    if not _is_worker(config):
        # collects results from every report, including those xdist replays from workers
        config.pluginmanager.register(sink, "awml-sink")
    from awml_harness import fixtures

    config.pluginmanager.register(fixtures, "awml-fixtures")
    from awml_harness import progress
    from awml_harness.stage import ExportStage

    progress.configure(config, config.option.awml_progress_interval)
    config.pluginmanager.register(ExportStage(config.stash[SESSION_KEY]), "awml-export-stage")
    if config.pluginmanager.hasplugin("xdist"):
        config.pluginmanager.register(_XdistHooks(list(config.stash[SESSION_KEY].configs.values())), "awml-xdist")
    if not _is_worker(config):
        config.pluginmanager.register(_FinalStatus(sink), "awml-final-status")
    if config.pluginmanager.hasplugin("benchmark"):
        config.pluginmanager.register(_BenchmarkHooks(sink), "awml-benchmark")


def _embedded_default(config: pytest.Config) -> list[Path]:
    """The deploy configs of a run that names none: when it collects the harness's own suites
    (`pytest --pyargs awml_harness.suites[.test_x]`, or a path in that package's folder), the
    `default_configs` of the projects registered in the entry-point group awml_harness.projects;
    any other run (a repository's own tests beside the installed harness) loads no config."""
    import importlib.util

    spec = importlib.util.find_spec("awml_harness.suites")
    suites = [Path(p).resolve() for p in (spec.submodule_search_locations or [])] if spec else []

    def collects_suites(arg: str) -> bool:
        target = arg.split("::")[0]
        if config.option.pyargs and (target == "awml_harness.suites" or target.startswith("awml_harness.suites.")):
            return True
        path = (config.invocation_params.dir / target).resolve()
        return any(path == folder or folder in path.parents for folder in suites)

    if not any(collects_suites(arg) for arg in config.args):
        return []
    from awml_harness.config.errors import ConfigError
    from awml_harness.project import registered_default_configs

    try:
        return registered_default_configs()
    except ConfigError as exc:
        raise pytest.UsageError(str(exc)) from None


def _read_configs(config: pytest.Config, paths: list[Path]) -> list[Any]:
    from awml_harness.config.errors import ConfigError
    from awml_harness.config.load import load_deploy_config

    configs, errors = [], []
    for path in paths:  # every config is read, so one run names every config's mistakes
        try:
            configs.append(load_deploy_config(
                path, overrides=config.option.cfg_options, base_dir=config.rootpath,
                work_dir=config.option.work_dir, device=config.option.device,
                unsafe_load=config.option.awml_unsafe_load,
                allow_python_in_yaml=config.option.awml_allow_python_in_yaml,
                model_cfg=_cli_path(config.option.model_cfg, config), checkpoint=_cli_path(config.option.checkpoint, config),
            ))
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise pytest.UsageError("\n".join(errors))
    return configs


def _check_overrides(config: pytest.Config, configs: list[Any]) -> None:
    """A scoped `--cfg-options` naming no loaded config is a usage error; one that a more
    specific rule overrules is a warning naming that rule (both would do nothing silently)."""
    from awml_harness.config.load import unknown_scopes
    from awml_harness.overrides import shadowed_overrides

    overrides = config.option.cfg_options
    names = {n for cfg in configs for n in (cfg.project, cfg.id, Path(cfg.source).stem)}
    stray = unknown_scopes(overrides, names)
    if stray:
        raise pytest.UsageError(f"--cfg-options {stray[0]!r}: scope {stray[0].partition(':')[0]!r} matches no loaded "
                                f"deploy config; expected a project name or config file stem among {sorted(names)}")
    if _is_worker(config):
        return
    for cfg in configs:
        for found in shadowed_overrides(cfg, overrides, work_dir=config.option.work_dir, device=config.option.device):
            config.issue_config_time_warning(pytest.PytestConfigWarning(found.message(cfg.id)), stacklevel=2)


class _XdistHooks:
    """Registered only when pytest-xdist is loaded (its hook names are unknown otherwise)."""

    def __init__(self, configs: list[Any]) -> None:
        self.configs = configs

    @functools.cached_property
    def handoff(self) -> dict[str, Any] | None:
        """The configs packed for the workers, once for all of them (None: they read the files)."""
        from awml_harness.config.load import pack_for_workers

        return pack_for_workers(self.configs)

    @pytest.hookimpl
    def pytest_configure_node(self, node: Any) -> None:
        sink = node.config.stash.get(SINK_KEY, None)
        if sink is not None:
            node.workerinput["awml_run_started"] = sink.started
        if self.handoff is not None:
            node.workerinput[HANDOFF_KEY] = self.handoff

    @pytest.hookimpl(tryfirst=True)
    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        """`-n N` (xdist's `load`): one deploy config per unit of work (xdist_scheduling.py)."""
        harness = config.stash.get(SESSION_KEY, None)
        if harness is None or config.getvalue("dist") != "load":
            return None
        from awml_harness.xdist_scheduling import ConfigScopeScheduling

        return ConfigScopeScheduling(config, log, tuple(harness.configs))


class _BenchmarkHooks:
    def __init__(self, sink: Any) -> None:
        self.sink = sink

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_terminal_summary(self, terminalreporter: Any) -> Any:
        """--benchmark-compare-fail raises out of pytest-benchmark's terminal summary, which
        would end the run in a traceback before the rest of the summary. Innermost wrapper:
        turn it into a failed run (exit status 1, as before) and let the summary finish."""
        from pytest_benchmark.session import PerformanceRegression

        try:
            return (yield)
        except PerformanceRegression:
            session = self.sink.session
            if session is not None and session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED
            _print_summary(terminalreporter, self.sink)
            terminalreporter.write_line("pytest-benchmark --benchmark-compare-fail: performance has regressed "
                                        "(the lines above); the run fails with exit status 1", red=True)
            return None

    @pytest.hookimpl
    def pytest_benchmark_update_machine_info(self, config: pytest.Config, machine_info: dict) -> None:
        from awml_harness.report.machine import machine_info as awml_machine_info

        info = awml_machine_info()
        machine_info["awml"] = {k: info[k] for k in ("gpu", "cuda", "driver", "torch", "onnxruntime", "tensorrt") if k in info}
        harness = config.stash.get(SESSION_KEY, None)
        if harness is not None:
            from awml_harness.threads import thread_record

            machine_info["awml"]["threads"] = thread_record(harness.thread_policies())


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    session = metafunc.config.stash.get(SESSION_KEY, None)
    wanted = [n for n in metafunc.fixturenames if n.startswith("awml_") and n.endswith("_case")]
    if not wanted:
        return
    from awml_harness.fixtures import generate_cases

    cases = generate_cases(session, wanted[0]) if session is not None else []
    if not cases:
        reason = ("no deploy config: pass --deploy-cfg or set the ini key awml_deploy_configs" if session is None
                  else f"the loaded deploy configs ask for no {wanted[0].removeprefix('awml_').removesuffix('_case')} "
                       "test (e.g. no dynamic shapes, evaluation or latency disabled)")
        metafunc.parametrize(wanted[0], [pytest.param(None, marks=pytest.mark.skip(reason=reason))], ids=["none"])
        return
    metafunc.parametrize(wanted[0], [pytest.param(c, marks=pytest.mark.awml) for c in cases], ids=[c.id for c in cases])


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    sink = config.stash.get(SINK_KEY, None)
    if sink is not None:
        sink.selected = sum(1 for item in items if item.get_closest_marker("awml") is not None)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    sink = config.stash.get(SINK_KEY, None)
    harness = config.stash.get(SESSION_KEY, None)
    if sink is None or harness is None or _is_worker(config):
        return
    if config.option.collectonly:
        return  # nothing ran: an existing metrics JSON describes the last real run, keep it
    if not sink.selected and not sink.records:
        return  # no harness test in this run (e.g. only the unit tests): nothing to report
    from awml_harness.report.metrics import build_document, metrics_path, record_failures, write_json_atomic

    doc = build_document(harness, sink, exitstatus=int(exitstatus), argv=list(config.invocation_params.args),
                         workers=_worker_count(config), rootdir=config.rootpath)
    if config.option.awml_strict:
        for cid in doc["run"].get("unverified", []):
            why = doc["projects"][cid]["verification"].get("reason", "")
            sink.gate_failures.append(f"awml {cid}: --awml-strict: no deployed artifact was verified ({why})")
    if sink.gate_failures and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    doc["run"]["exitstatus"] = int(session.exitstatus)
    record_failures(doc, sink)
    path = metrics_path(harness, config.option.awml_metrics_json, config.rootpath, doc["projects"])
    sink.written = (path, doc)
    try:
        write_json_atomic(path, doc)
    except OSError as exc:
        _write_failed(sink, session, "the metrics JSON", path, exc,
                      "set --awml-metrics-json (or report.metrics_json) to a writable file, or fix export.work_dir")
        return
    if harness.options.split is not None:
        _write_shard(config, session, harness, sink, path, doc)
    if config.option.awml_suggest_tolerances is not None:
        from awml_harness.report.suggest import suggest_tolerances

        text = suggest_tolerances(doc, config.option.awml_tolerance_headroom)
        target = _abs(config.option.awml_suggest_tolerances or None, config.rootpath) or path.with_name("suggested_tolerances.py")
        try:
            _write_text_atomic(target, text)
        except OSError as exc:
            _write_failed(sink, session, "the suggested tolerances", target, exc,
                          "pass a writable PATH to --awml-suggest-tolerances")
        sink.extra_output.append((f"awml suggested tolerances ({target}):", text))
    if config.option.awml_report:
        from awml_harness.report.html import write_report

        target = _abs(config.option.awml_report, config.rootpath)
        try:
            write_report(target, doc)
        except OSError as exc:
            _write_failed(sink, session, "the HTML report", target, exc, "pass a writable PATH to --awml-report")
        else:
            sink.extra_output.append((f"awml report: {target}", ""))
    _write_markdown(config, sink, session, doc)


def _write_markdown(config: pytest.Config, sink: Any, session: pytest.Session, doc: dict[str, Any]) -> None:
    """--awml-markdown PATH, and $GITHUB_STEP_SUMMARY when GitHub Actions sets it."""
    import os

    from awml_harness.report.metrics import markdown_path

    target = markdown_path(config.stash[SESSION_KEY], config.option.awml_markdown, config.rootpath, doc["projects"])
    sink.markdown_path = target
    if target is None and not os.environ.get("GITHUB_STEP_SUMMARY"):
        return
    from awml_harness.report.markdown import append_step_summary, render_markdown, write_markdown

    text = render_markdown(doc)
    if target is not None:
        try:
            write_markdown(target, text)
        except OSError as exc:
            _write_failed(sink, session, "the markdown summary", target, exc,
                          "pass a writable PATH to --awml-markdown (or report.markdown)")
        else:
            sink.extra_output.append((f"awml markdown summary: {target}", ""))
    try:
        append_step_summary(text)
    except OSError as exc:
        _write_failed(sink, session, "the GitHub step summary", Path(os.environ["GITHUB_STEP_SUMMARY"]), exc,
                      "check $GITHUB_STEP_SUMMARY")


def _write_shard(config: pytest.Config, session: pytest.Session, harness: Any, sink: Any, metrics: Path,
                 doc: dict) -> None:
    """--awml-shard: this job's predictions, for `awml merge` (awml_harness/split.py)."""
    from awml_harness.split import load_options, shard_document, shard_file_name, write_shard

    index, count = harness.options.split
    target = (_abs(config.option.awml_shard_json, config.invocation_params.dir)
              or metrics.with_name(shard_file_name(index, count)))
    data = shard_document(harness, sink.records, doc, load_options(config.option, config.rootpath), config.rootpath)
    if not data["configs"]:
        sink.gate_failures.append(f"awml --awml-shard {index + 1}/{count}: no evaluation ran, so there is no shard "
                                  "to write (select suites/test_evaluation.py)")
        if session.exitstatus == 0:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        return
    try:
        write_shard(target, data)
    except OSError as exc:
        _write_failed(sink, session, "the shard file", target, exc, "pass a writable PATH to --awml-shard-json")
        return
    sink.extra_output.append((f"awml shard {index + 1}/{count}: {target}", ""))


def _write_failed(sink: Any, session: pytest.Session, what: str, path: Path, exc: OSError, fix: str) -> None:
    """A file the run was asked for could not be written: one clear line, and the run fails
    (a CI step would otherwise read a stale file from an earlier run)."""
    reason = exc.strerror or type(exc).__name__
    message = f"awml: could not write {what} to {path}: {reason}; {fix}"
    if sink.write_error is None:
        sink.write_error = message
    else:
        sink.gate_failures.append(message)
    if session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_unconfigure(config: pytest.Config) -> None:
    """The last hook of the run: the session's exit status is final here, whatever plugin
    changed it after the metrics JSON was written; make the JSON say the same."""
    if config.stash.get(SESSION_KEY, None) is not None:
        from awml_harness import progress

        progress.configure(None)
    sink = config.stash.get(SINK_KEY, None)
    if sink is None or sink.written is None or sink.write_error is not None or _is_worker(config):
        return
    final = sink.final_status if sink.final_status is not None else getattr(sink.session, "exitstatus", None)
    path, doc = sink.written
    if final is None or int(final) == doc["run"]["exitstatus"]:
        return
    doc["run"]["exitstatus"] = int(final)
    if int(final) != 0 and not doc["run"].get("failures"):
        # the reports must not read PASSED for a run that failed after the tests
        doc["run"]["failures"] = [{
            "nodeid": None, "when": "sessionfinish", "kind": "gate",
            "message": f"pytest ended with exit status {int(final)} after the tests had passed: a plugin failed the "
                       "run at the end (e.g. pytest-benchmark --benchmark-compare-fail); see the CI log"}]
    from awml_harness.report.metrics import write_json_atomic

    try:
        write_json_atomic(path, doc)
        if config.option.awml_report:
            from awml_harness.report.html import write_report

            write_report(_abs(config.option.awml_report, config.rootpath), doc)
        if getattr(sink, "markdown_path", None) is not None:
            from awml_harness.report.markdown import render_markdown, write_markdown

            write_markdown(sink.markdown_path, render_markdown(doc))
    except OSError as exc:
        import sys

        sys.stderr.write(f"awml: could not update run.exitstatus in {path} and the reports: {exc.strerror or exc}\n")


def _write_text_atomic(path: Path, text: str) -> None:
    from awml_harness.atomic import atomic_open

    with atomic_open(path) as fh:
        fh.write(text)


def _worker_count(config: pytest.Config) -> int:
    n = config.getoption("numprocesses", None) if config.pluginmanager.hasplugin("xdist") else None
    return n if isinstance(n, int) else 0


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    sink = config.stash.get(SINK_KEY, None)
    if sink is not None:
        _print_summary(terminalreporter, sink)


def _print_summary(terminalreporter: Any, sink: Any) -> None:
    if sink.written is None or sink.summary_printed:
        return
    sink.summary_printed = True
    from awml_harness.report.summary import render_summary

    path, doc = sink.written
    for line in render_summary(doc):
        terminalreporter.write_line(line)
    for line in sink.gate_failures:
        terminalreporter.write_line(line, red=True)
    import os

    if os.environ.get("GITHUB_ACTIONS") == "true":  # failures as annotations on the PR
        from awml_harness.report.markdown import github_annotations

        for line in github_annotations(doc):
            terminalreporter.write_line(line)
    for title, text in sink.extra_output:
        terminalreporter.write_line(title)
        for line in text.splitlines():
            terminalreporter.write_line("  " + line)
    if sink.write_error is not None:
        terminalreporter.write_line(sink.write_error, red=True)
    else:
        terminalreporter.write_line(f"awml metrics JSON: {path}")


class _FinalStatus:
    """Outermost wrapper of pytest_sessionfinish: an exception that escapes it (another
    plugin's) ends pytest with an exit status the session object never sees; note it so
    pytest_unconfigure writes that status into the metrics JSON."""

    def __init__(self, sink: Any) -> None:
        self.sink = sink

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> Any:
        self.sink.session = session
        try:
            return (yield)
        except pytest.exit.Exception:
            raise  # pytest sets session.exitstatus from it
        except pytest.UsageError:
            self.sink.final_status = int(pytest.ExitCode.USAGE_ERROR)  # pytest.main returns 4
            raise
        except Exception:
            self.sink.final_status = 1  # the interpreter's status for an uncaught exception
            raise
