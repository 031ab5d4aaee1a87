"""Runs split across machines: `--awml-shard I/N` and `awml merge`.

A CI matrix job runs `pytest suites --awml-shard I/N`: its evaluation tests run every
backend on the samples with `index % N == I - 1` (the same interleaved slice on every
machine, since sample order is the dataset's) and, instead of metrics, the run writes a
shard file with the compact predictions and targets per backend. `awml merge SHARD...`
checks that the shards belong together, feeds one evaluator per backend in sample order,
exactly as a serial run (and the pytest-xdist merge, `evaluation.merge_shards`) does,
and writes a metrics JSON whose evaluation values equal a serial run's.

Lossless by construction: arrays travel as their raw bytes with dtype and shape
(`evaluation.encode`), Python floats as JSON numbers (shortest repr, read back to the same
double). Written atomically (`atomic.atomic_open`).

"Belong together" is a digest of everything that decides the metrics: the validated
config (paths relative to the rootdir, so checkouts in different folders agree), the
checkpoint's sha256, the project's and exporter's code, the number of evaluated samples.
The merge recomputes it from its own checkout and refuses shards made from another.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

SHARD_FORMAT = "awml-shard"
SHARD_VERSION = 1
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """Shard files that cannot be merged (missing, duplicate, from another config)."""


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (1, 3): zero-based index, count. Shards are numbered 1..N on the command line."""
    m = _SHARD.match(str(text))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"--awml-shard expects I/N with 1 <= I <= N (e.g. 2/3), got {text!r}")
    return int(m.group(1)) - 1, int(m.group(2))


def shard_file_name(index: int, count: int) -> str:
    return f"shard-{index + 1}of{count}.json"


def _relative(obj: Any, root: str) -> Any:
    if isinstance(obj, str) and obj.startswith(root + "/"):
        return obj[len(root) + 1:]
    if isinstance(obj, Mapping):
        return {k: _relative(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative(v, root) for v in obj]
    return obj


def config_digest(ctx: Any, rootdir: Path) -> str:
    """sha256 of what decides a config's metrics (see the module docstring). Work dir,
    metrics path and the config file's own location are left out: they differ per machine."""
    from awml_harness.config.validation import to_builtin

    cfg = to_builtin(ctx.cfg)
    for key in ("source", "project_dir", "raw", "report", "name"):
        cfg.pop(key, None)
    cfg.get("export", {}).pop("work_dir", None)
    data = {"config": _relative(cfg, str(Path(rootdir).resolve())), "checkpoint": ctx.checkpoint_digest,
            "code": ctx.code_digests, "num_samples": ctx.num_eval_samples()}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def load_options(option: Any, rootdir: Path) -> dict[str, Any]:
    """How the configs were loaded (pytest options), for the merge to load them the same way."""
    root = str(Path(rootdir).resolve())

    def rel(path: str | None) -> str | None:
        return None if path is None else _relative(str(Path(path).resolve()), root)

    return {"cfg_options": list(option.cfg_options), "work_dir": option.work_dir, "device": option.device,
            "unsafe_load": bool(option.awml_unsafe_load),
            "allow_python_in_yaml": bool(option.awml_allow_python_in_yaml),
            "model_cfg": rel(option.model_cfg), "checkpoint": rel(option.checkpoint)}


def shard_document(harness: Any, records: Sequence[Mapping[str, Any]], doc: Mapping[str, Any],
                   load: Mapping[str, Any], rootdir: Path) -> dict[str, Any]:
    """The shard file of one run: per config, its slice's predictions and its verification."""
    index, count = harness.options.split
    root = str(Path(rootdir).resolve())
    configs: dict[str, Any] = {}
    for rec in records:
        if rec.get("kind") != "evaluation-split":
            continue
        cid = rec["config"]
        cfg = harness.configs[cid]
        configs[cid] = {
            "config": _relative(str(Path(cfg.source).resolve()), root), "config_digest": rec["config_digest"],
            "num_samples": rec["num_samples"], "reference": cfg.evaluation.reference, "backends": rec["backends"],
            "verification": doc.get("projects", {}).get(cid, {}).get("verification"),
        }
    return {"format": SHARD_FORMAT, "version": SHARD_VERSION, "shard": {"index": index + 1, "count": count},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": doc.get("run", {}).get("argv", []),
            "load": dict(load), "machine": doc.get("machine", {}), "configs": configs}


def write_shard(path: Path, data: Mapping[str, Any]) -> None:
    from awml_harness.atomic import atomic_open

    with atomic_open(path) as fh:
        json.dump(data, fh, allow_nan=True)
        fh.write("\n")


def read_shard(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ShardError(f"{path}: no such shard file") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: not a readable shard file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
        raise ShardError(f"{path}: not an awml shard file (written by `pytest --awml-shard I/N`)")
    if data.get("version") != SHARD_VERSION:
        raise ShardError(f"{path}: shard format version {data.get('version')!r}; this awml reads {SHARD_VERSION}")
    return data


def check_shards(shards: Mapping[str, Mapping[str, Any]]) -> int:
    """Same count, every index exactly once, same configs and digests; returns the count.
    Every problem found is named in one ShardError (file names included)."""
    problems: list[str] = []
    counts = {name: s["shard"]["count"] for name, s in shards.items()}
    if len(set(counts.values())) > 1:
        raise ShardError("shards of different splits: " + ", ".join(
            f"{n} is {shards[n]['shard']['index']}/{c}" for n, c in counts.items()))
    count = next(iter(counts.values()))
    seen: dict[int, list[str]] = {}
    for name, s in shards.items():
        seen.setdefault(s["shard"]["index"], []).append(name)
    for index, files in sorted(seen.items()):
        if len(files) > 1:
            problems.append(f"shard {index}/{count} given {len(files)} times: {', '.join(files)}")
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        problems.append(f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)} "
                        f"(run `pytest ... --awml-shard {missing[0]}/{count}` and pass its shard file)")
    names = {name: sorted(s["configs"]) for name, s in shards.items()}
    first = next(iter(names))
    for name, cids in names.items():
        if cids != names[first]:
            problems.append(f"{name} holds configs {cids}, {first} holds {names[first]} "
                            "(was a config deselected or did its evaluation not run in one job?)")
    for cid in names[first]:
        digests = {name: s["configs"][cid]["config_digest"] for name, s in shards.items() if cid in s["configs"]}
        if len(set(digests.values())) > 1:
            problems.append(f"config {cid}: the shards were made from different configs, checkpoints or code "
                            f"(digests {', '.join(f'{n}: {d[:12]}' for n, d in digests.items())})")
    if problems:
        raise ShardError("these shards do not belong together:\n  " + "\n  ".join(problems))
    return count


def _check_samples(cid: str, shards: Mapping[str, Mapping[str, Any]], count: int) -> None:
    """Every backend's predictions cover samples 0..n-1 exactly once, each in its own slice."""
    total = {s["configs"][cid]["num_samples"] for s in shards.values()}
    if len(total) > 1:
        raise ShardError(f"config {cid}: shards disagree on the number of samples {sorted(total)}")
    n = total.pop()
    for name, s in shards.items():
        k = s["shard"]["index"] - 1
        for backend, entry in s["configs"][cid]["backends"].items():
            if "unavailable" in entry or "error" in entry:
                continue
            got = [row["index"] for row in entry["samples"]]
            want = list(range(k, n, count))
            if got != want:
                raise ShardError(f"{name}: config {cid} backend {backend} holds samples {got[:8]}... but shard "
                                 f"{k + 1}/{count} of {n} samples is {want[:8]}... (edited or truncated file?)")


def merge(paths: Sequence[Path], rootdir: Path, argv: Sequence[str] = ()) -> tuple[dict[str, Any], list[str]]:
    """Shard files -> (metrics JSON document, gate failures). Loads each config from this
    checkout (as the shard jobs did) for its evaluator and tolerances."""
    from awml_harness.config.load import load_deploy_config
    from awml_harness.evaluation.merge import merge_shards
    from awml_harness.report.machine import machine_info
    from awml_harness.report.metrics import SCHEMA_VERSION, _project_entry, jsonable, verification_status
    from awml_harness.session import ProjectContext, RunOptions

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
        ctx = ProjectContext(cfg, RunOptions())
        here = config_digest(ctx, root)
        if here != entry0["config_digest"]:
            raise ShardError(f"config {cid}: the shards were made from another config, checkpoint or code than "
                             f"{root / entry0['config']} in {root} (digest {entry0['config_digest'][:12]}, here "
                             f"{here[:12]}); merge in the checkout the shard jobs ran")
        recs: list[Mapping[str, Any]] = [{"backends": s["configs"][cid]["backends"]} for s in shards.values()]
        merged = merge_shards(ctx.adapter, recs, cfg.evaluation.reference, cfg.evaluation.tolerance_for)
        project = _project_entry(cfg)
        for name, entry in merged.items():
            for line in entry.pop("failures", []):
                failures.append(f"{cid} ({name}): {line.strip()}")
            if entry.get("status") == "error":
                failures.append(f"{cid} ({name}): evaluation failed on {entry['error']}")
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
        ver["status"], reason = verification_status(cfg, ver["results"])
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
            "xdist_workers": 0, "tests": {}, "problems": [],
            "unverified": [c for c, p in projects.items() if p["verification"]["status"] == "unverified"],
            "merged_shards": [{"file": name, "index": s["shard"]["index"], "count": s["shard"]["count"],
                               "created": s.get("created"), "machine": s.get("machine", {}).get("gpu") or
                               s.get("machine", {}).get("cpu")} for name, s in shards.items()],
        },
        "machine": machine_info(),
        "projects": projects,
    }
    return jsonable(doc), failures
