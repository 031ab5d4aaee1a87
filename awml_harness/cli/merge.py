"""`awml merge SHARD.json... -o metrics.json`: the metrics of a run split with
`pytest --awml-shard I/N` across N jobs, computed once from all N shard files.

Exit status: 0 every metric gate passed, 1 a gate failed or a backend's evaluation
failed, or MLflow logging was asked for and failed (the metrics JSON is written either
way), 2 the shard files do not belong together or cannot be read (nothing written), 4 a
deploy config the shards name is wrong in this checkout (a config error, as in pytest),
or a malformed --mlflow URI.

`--mlflow [URI]` (or report.mlflow in the configs) logs the merged run to MLflow as
pytest's --awml-mlflow logs a serial one; the shard jobs themselves log nothing.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "merge", help="compute the metrics of N `pytest --awml-shard I/N` jobs from their shard files",
        description="Check that the shard files belong together (same configs, checkpoints and code; shards 1..N "
                    "each once), compute every backend's metrics once over all samples and write a metrics JSON "
                    "whose values equal a serial run's. Run it in a checkout of the same commit as the jobs.")
    p.add_argument("shards", nargs="+", metavar="SHARD.json", help="the shard files of all N jobs")
    p.add_argument("-o", "--output", default="metrics.json", metavar="PATH",
                   help="metrics JSON to write (default: metrics.json)")
    p.add_argument("--rootdir", default=".", metavar="DIR",
                   help="repository root the shard jobs ran pytest in (config paths are relative to it; default: .)")
    p.add_argument("--mlflow", nargs="?", const="", default=None, metavar="TRACKING_URI",
                   help="log the merged run to MLflow, as pytest --awml-mlflow does (URI default: "
                        "report.mlflow.tracking_uri, $MLFLOW_TRACKING_URI, else sqlite:///<work_dir>/mlflow.db)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from awml_harness.atomic import write_json
    from awml_harness.config.errors import ConfigError
    from awml_harness.config.schema import absolute_sqlite, check_tracking_uri
    from awml_harness.split import ShardError

    try:
        if args.mlflow:
            check_tracking_uri("--mlflow", args.mlflow)
        doc, failures, configs = _merge([Path(p) for p in args.shards], Path(args.rootdir),
                                        argv=["awml", "merge", *args.shards, "-o", args.output])
    except ShardError as exc:
        sys.stderr.write(f"awml merge: {exc}\n")
        return 2
    except ConfigError as exc:
        sys.stderr.write(f"awml merge: {exc}\n")
        return 4
    out = Path(args.output)
    from awml_harness.report.mlflow import settings_for

    settings = settings_for(configs, absolute_sqlite(args.mlflow, Path.cwd()) if args.mlflow else args.mlflow)
    if settings is None:
        write_json(out, doc)
    else:
        failures += _log(settings, doc, out)
    for cid, project in doc["projects"].items():
        for name, entry in project["evaluation"]["backends"].items():
            head = entry.get("headline")
            value = entry.get("metrics", {}).get(head) if head else None
            shown = f"{head} {value:.4f}" if isinstance(value, float) else entry.get("status", "?")
            print(f"{cid} {name}: {shown} ({entry.get('num_samples', 0)} samples)")
    for line in failures:
        sys.stderr.write(f"awml merge: {line}\n")
    print(f"awml metrics JSON: {out}")
    return 1 if failures else 0


def _log(settings: Any, doc: dict[str, Any], out: Path) -> list[str]:
    """The merged run into MLflow (report/mlflow_client.py): the JSON names the runs; a
    failure is the run's too (exit 1, in run.failures and run.mlflow.error)."""
    from awml_harness.atomic import write_json
    from awml_harness.report.mlflow_client import Tracking, TrackingError
    from awml_harness.report.verdict import collect_failures

    def write() -> list[Path]:
        write_json(out, doc)
        return [out]

    try:
        Tracking.run(settings, doc, write)
    except TrackingError as exc:
        doc["run"]["mlflow"] = {**doc["run"].get("mlflow", {}), "tracking_uri": settings.tracking_uri, "error": str(exc)}
        doc["run"]["exitstatus"] = 1
        doc["run"]["failures"] = [*doc["run"].get("failures", []), *collect_failures([], [str(exc)])]
        write_json(out, doc)
        return [str(exc)]
    rec = doc["run"]["mlflow"]
    print(f"awml mlflow: run {rec['run_id']} in experiment {rec['experiment']!r} at {rec['tracking_uri']}")
    return []


def merge_files(paths: Sequence[Path], rootdir: Path, argv: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Shard files -> (metrics JSON document, gate failures). Loads each config from this
    checkout (as the shard jobs did) for its evaluator and tolerances."""
    doc, failures, _ = _merge(paths, rootdir, argv)
    return doc, failures


def _merge(paths: Sequence[Path], rootdir: Path, argv: Sequence[str] = ()) -> tuple[dict[str, Any], list[str], list[Any]]:
    from awml_harness.config.load import load_deploy_config
    from awml_harness.evaluation.merge import merge_chunks
    from awml_harness.evaluation.results import ERROR
    from awml_harness.report.document import SCHEMA_VERSION, _project_entry, jsonable, record_failures
    from awml_harness.report.machine import machine_info
    from awml_harness.report.provenance import git_info
    from awml_harness.session import ProjectContext, RunOptions
    from awml_harness.split import ShardError, _check_samples, check_shards, config_digest, read_shard
    from awml_harness.verification.judge import run_status

    started = time.time()
    if not paths:
        raise ShardError("no shard files given")
    shards = {str(p): read_shard(Path(p)) for p in paths}
    if len(shards) < len(paths):
        raise ShardError("the same shard file is given twice: " + ", ".join(map(str, paths)))
    count = check_shards(shards)
    first = next(iter(shards.values()))
    load = first["load"]
    root = Path(rootdir).resolve()

    def path_of(rel: str | None) -> str | None:
        return None if rel is None else str(root / rel)

    projects: dict[str, Any] = {}
    failures: list[str] = []
    configs: list[Any] = []
    for cid in sorted(first["configs"]):
        _check_samples(cid, shards, count)
        entry0 = first["configs"][cid]
        cfg = load_deploy_config(root / entry0["config"], overrides=load["cfg_options"], base_dir=root,
                                 work_dir=load["work_dir"], device=load["device"], unsafe_load=load["unsafe_load"],
                                 allow_python_in_yaml=load["allow_python_in_yaml"],
                                 model_cfg=path_of(load["model_cfg"]), checkpoint=path_of(load["checkpoint"]))
        if cfg.id != cid:  # two configs of one project: ids as the shard run made them
            import dataclasses

            cfg = dataclasses.replace(cfg, name=cid)
        configs.append(cfg)
        ctx = ProjectContext(cfg, RunOptions())
        here = config_digest(ctx, root)
        if here != entry0["config_digest"]:
            raise ShardError(f"config {cid}: the shards were made from another config, checkpoint or code than "
                             f"{root / entry0['config']} in {root} (digest {entry0['config_digest'][:12]}, here "
                             f"{here[:12]}); merge in the checkout the shard jobs ran")
        recs: list[Mapping[str, Any]] = [{"backends": s["configs"][cid]["backends"]} for s in shards.values()]
        merged = merge_chunks(ctx.adapter, recs, cfg.evaluation.reference, cfg.evaluation.tolerance_for)
        project = _project_entry(cfg)
        for name, res in merged.items():
            failures += [f"{cid} ({name}): {line.strip()}" for line in res.failures]
            if res.status == ERROR:
                failures.append(f"{cid} ({name}): evaluation failed on {res.reason}")
            entry = res.record()
            project["evaluation"]["directions"].update(entry.pop("directions", None) or {})
            project["evaluation"]["backends"][name] = entry
        results: dict[tuple[str, int], Any] = {}
        for s in shards.values():
            ver = s["configs"][cid].get("verification") or {}
            for r in ver.get("results", []):
                results.setdefault((r["scenario"], r["sample_index"]), r)
        ver = project["verification"]
        ver["results"] = [results[k] for k in sorted(results)]
        ver["passed"] = sum(1 for r in ver["results"] if r["passed"])
        ver["failed"] = len(ver["results"]) - ver["passed"]
        ver["status"], reason = run_status(cfg, ver["results"])
        if reason is not None:
            ver["reason"] = reason + " (merged shards: verification comes from the shard jobs' runs)"
        projects[cid] = project
    now = time.time()
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "duration_s": round(now - started, 3), "exitstatus": 1 if failures else 0, "argv": list(argv),
            "git": git_info(root), "xdist_workers": 0, "tests": {}, "problems": [],
            "unverified": [c for c, p in projects.items() if p["verification"]["status"] == "unverified"],
            "merged_shards": [{"file": name, "index": s["shard"]["index"], "count": s["shard"]["count"],
                               "created": s.get("created"), "machine": s.get("machine", {}).get("gpu") or
                               s.get("machine", {}).get("cpu")} for name, s in shards.items()],
        },
        "machine": machine_info(),
        "projects": projects,
    }
    record_failures(doc, [], failures)  # run.failures, as a pytest run's: `awml publish` and the reports read it
    return jsonable(doc), failures, configs
