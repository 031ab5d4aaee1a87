"""The harness's command-line options and ini keys, and what they mean for a run.

Imports pytest and the standard library alone (the plugin registers the options when
pytest starts); `run_options` and `end_options` turn parsed values into the frozen
option sets the session works with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def _positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise pytest.UsageError(f"expected a non-negative integer, got {value!r}") from None
    if n < 0:
        raise pytest.UsageError(f"expected a non-negative integer, got {value!r}")
    return n


def add_options(parser: pytest.Parser) -> None:
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
    group.addoption("--rot-y-axis-reference", action="store_true", default=False,
                    help="export heads in Autoware's box layout (AWML's deployment CLI flag): "
                         "model_cfg.rot_y_axis_reference=True for every config whose project has that setting")
    group.addoption("--awml-package", default=None, metavar="DIR",
                    help="an existing Autoware package folder test_package checks against the model config and "
                         "the exported ONNX (package.check_dir of every config); default: the package the "
                         "harness writes")
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
    group.addoption("--awml-mlflow", nargs="?", const="", default=None, metavar="TRACKING_URI",
                    help="log the run to MLflow: one run, a nested run per project (params: the resolved config; "
                         "metrics per backend; tags: verdict, exit status, commit; artifacts: metrics JSON and "
                         "reports). URI default: report.mlflow.tracking_uri, $MLFLOW_TRACKING_URI, else "
                         "sqlite:///<work_dir>/mlflow.db. Needs pip install 'awml-harness[mlflow]'")
    group.addoption("--awml-mlflow-models", action="store_true", default=False,
                    help="with --awml-mlflow (implied): also log each project's deployed ONNX files and engines "
                         "(report.mlflow.log_models)")
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
    group.addoption("--awml-profile", action="store_true", default=False,
                    help="per-node profiles: a profiled run of every backend after its warm-up (test_profile, "
                         "never inside test_latency's rounds), joined by ONNX node in the metrics JSON, the summary "
                         "and the report, with a Chrome-trace file per backend; as evaluation.profile.enabled")
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


def cli_path(path: str | None, config: pytest.Config) -> str | None:
    """Command-line paths are relative to where pytest was invoked."""
    return None if path is None else str(_abs(path, config.invocation_params.dir))


def worker_count(config: pytest.Config) -> int:
    n = config.getoption("numprocesses", None) if config.pluginmanager.hasplugin("xdist") else None
    return n if isinstance(n, int) else 0


def run_options(config: pytest.Config, started: float) -> Any:
    """The options every process of the run (controller and xdist workers) works with."""
    from awml_harness.context.data import RunOptions

    o = config.option
    split = None
    if o.awml_shard is not None:
        from awml_harness.split import parse_shard

        try:
            split = parse_shard(o.awml_shard)
        except ValueError as exc:
            raise pytest.UsageError(str(exc)) from None
    return RunOptions(
        rebuild_before=float(started) if o.awml_rebuild else None, strict=o.awml_strict, threads=o.awml_threads,
        ort_spinning=o.awml_ort_spinning, save_golden=_abs(o.awml_save_golden, config.rootpath),
        golden=_abs(o.awml_golden, config.rootpath), split=split, localize=o.awml_localize, profile=o.awml_profile)


def end_options(config: pytest.Config) -> Any:
    """What the end of the run is asked for (awml_harness/finish.py)."""
    from awml_harness.finish import EndOptions
    from awml_harness.split import load_options

    o = config.option
    return EndOptions(
        rootdir=config.rootpath, invocation_dir=config.invocation_params.dir,
        argv=tuple(config.invocation_params.args), workers=worker_count(config), collect_only=bool(o.collectonly),
        strict=o.awml_strict, metrics_json=o.awml_metrics_json, suggest=o.awml_suggest_tolerances,
        headroom=o.awml_tolerance_headroom, report=o.awml_report, markdown=o.awml_markdown,
        shard_json=o.awml_shard_json, load=load_options(o, config.rootpath) if o.awml_shard is not None else {},
        mlflow_uri=mlflow_uri(config), mlflow_models=o.awml_mlflow_models)


def mlflow_uri(config: pytest.Config) -> str | None:
    """--awml-mlflow: None when not given, "" bare, else the URI (a relative sqlite path is
    relative to where pytest was invoked, like every command-line path)."""
    uri = config.option.awml_mlflow
    if not uri:
        return uri
    from awml_harness.config.schema import absolute_sqlite

    return absolute_sqlite(uri, config.invocation_params.dir)


def check_mlflow(config: pytest.Config, configs: list[Any]) -> None:
    """Before any test: a malformed --awml-mlflow URI is a usage error, and so is asking for
    MLflow (option or report.mlflow) where it is not installed (found without importing it)."""
    from awml_harness.config.errors import ConfigError
    from awml_harness.config.schema import check_tracking_uri

    uri = config.option.awml_mlflow
    if uri:
        try:
            check_tracking_uri("--awml-mlflow", uri)
        except ConfigError as exc:
            raise pytest.UsageError(f"--awml-mlflow {uri!r}: expected {exc.allowed}") from None
    wanted = uri is not None or config.option.awml_mlflow_models or any(
        c.report.mlflow is not None and c.report.mlflow.enabled for c in configs)
    if wanted and not hasattr(config, "workerinput"):
        import importlib.util

        if importlib.util.find_spec("mlflow") is None:
            why = "--awml-mlflow" if uri is not None or config.option.awml_mlflow_models else "report.mlflow"
            raise pytest.UsageError(f"{why} needs MLflow: pip install 'awml-harness[mlflow]'")


def read_configs(config: pytest.Config, paths: list[Path]) -> list[Any]:
    from awml_harness.config.errors import ConfigError
    from awml_harness.config.load import load_deploy_config

    configs, errors = [], []
    overrides = list(config.option.cfg_options)
    if config.option.awml_package is not None:
        overrides.insert(0, f"package.check_dir={cli_path(config.option.awml_package, config)!r}")
    flags = ["model_cfg.rot_y_axis_reference=True"] if config.option.rot_y_axis_reference else []
    for path in paths:  # every config is read, so one run names every config's mistakes
        try:
            configs.append(load_deploy_config(
                path, overrides=overrides, model_flags=flags, base_dir=config.rootpath,
                work_dir=config.option.work_dir, device=config.option.device,
                unsafe_load=config.option.awml_unsafe_load,
                allow_python_in_yaml=config.option.awml_allow_python_in_yaml,
                model_cfg=cli_path(config.option.model_cfg, config), checkpoint=cli_path(config.option.checkpoint, config),
            ))
        except ConfigError as exc:
            errors.append(str(exc))
    if errors:
        raise pytest.UsageError("\n".join(errors))
    if flags and configs and not any(_has_setting(cfg, "rot_y_axis_reference") for cfg in configs):
        raise pytest.UsageError("--rot-y-axis-reference: no loaded deploy config's project has the setting "
                                "rot_y_axis_reference (it selects Autoware's box layout of a 3D detector's head)")
    return configs


def _has_setting(cfg: Any, name: str) -> bool:
    import dataclasses

    settings = cfg.model_settings
    return dataclasses.is_dataclass(settings) and name in {f.name for f in dataclasses.fields(settings)}


def check_overrides(config: pytest.Config, configs: list[Any]) -> None:
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
    if hasattr(config, "workerinput"):  # the controller warned already
        return
    for cfg in configs:
        for found in shadowed_overrides(cfg, overrides, work_dir=config.option.work_dir, device=config.option.device):
            config.issue_config_time_warning(pytest.PytestConfigWarning(found.message(cfg.id)), stacklevel=2)


def embedded_default(config: pytest.Config) -> list[Path]:
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
