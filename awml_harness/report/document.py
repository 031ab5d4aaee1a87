"""The metrics JSON: one versioned document per run, written atomically.

Built on the controller from the records tests attached to their reports, so a run
under pytest-xdist yields the same document as a serial one. The shape is fixed by
`metrics.schema.json` beside this module (SCHEMA_VERSION below).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig

#: 2: metric directions (`evaluation.directions`) and the gate's per-metric record
#: (`evaluation.backends.<name>.gate`); `awml diff` still reads version 1 files
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
SCHEMA_FILE = Path(__file__).with_name("metrics.schema.json")


def jsonable(obj: Any) -> Any:
    """numpy scalars/arrays, tuples, Paths, NaN -> JSON-safe builtins (NaN/Inf become None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, bool) or obj is None or isinstance(obj, str):
        return obj
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if hasattr(obj, "tolist"):  # numpy
        return jsonable(obj.tolist())
    if hasattr(obj, "item"):
        return jsonable(obj.item())
    return str(obj)


def _project_entry(cfg: DeployConfig) -> dict[str, Any]:
    return {
        "project": cfg.project, "task_type": cfg.task_type, "config": cfg.source,
        "export_mode": cfg.export.mode, "artifacts": [],
        "verification": {"passed": 0, "failed": 0, "results": []},
        "evaluation": {"reference": cfg.evaluation.reference, "directions": {}, "backends": {}},
        "latency": {},
        "shapes": [],
    }


def _resolved_config(cfg: DeployConfig) -> Any:
    """The deploy config after _base_, --cfg-options and the loader's defaults, as data."""
    import dataclasses

    try:
        data = dataclasses.asdict(cfg)
    except Exception as exc:  # an odd model_cfg object: say so instead of failing the run
        return {"error": f"could not serialise the config: {type(exc).__name__}: {exc}"}
    for key in ("raw", "model_settings"):
        data.pop(key, None)
    return data


def _tolerances(cfg: DeployConfig, entry: dict[str, Any]) -> dict[str, Any]:
    """The tolerances in force, resolved: per verification scenario and output (atol, rtol
    as the comparison used them) and per evaluation backend and metric (the gate's own
    record: the allowed change in the metric's units, the rule as written, one-sided or
    not; None for a metric the gate does not hold, such as a count)."""
    ver: dict[str, dict[str, dict[str, float]]] = {}
    for res in entry["verification"]["results"]:
        for leaf in res["leaves"]:
            ver.setdefault(res["scenario"], {})[leaf["path"]] = {"atol": leaf["atol"], "rtol": leaf["rtol"]}
    metrics: dict[str, dict[str, Any]] = {}
    for name, be in entry["evaluation"]["backends"].items():
        if name == cfg.evaluation.reference:
            continue
        metrics[name] = {m: ({"allowed": check["allowed"], "rule": check["rule"], "one_sided": check["one_sided"]}
                             if check["gated"] else None)
                         for m, check in (be.get("gate") or {}).items()}
    return {"verification": ver, "metrics": metrics}


def build_document(configs: Mapping[str, Any], run: Any, *, threads: Mapping[str, Any], exitstatus: int,
                   argv: list[str], workers: int, rootdir: Path | None = None) -> dict[str, Any]:
    """The metrics JSON of a run from its records (`run`: a RunRecord, chunked evaluations
    already merged and judged into evaluation records): assembled, nothing judged here."""
    from awml_harness.report.machine import machine_info
    from awml_harness.report.provenance import command_line, git_info
    from awml_harness.verification.judge import run_status

    projects: dict[str, dict[str, Any]] = {}
    artifacts: dict[str, dict[str, dict[str, Any]]] = {}
    profiles: dict[str, list[dict[str, Any]]] = {}
    for rec in run.records:
        cid = rec.get("config")
        if cid not in configs:
            continue
        entry = projects.setdefault(cid, _project_entry(configs[cid]))
        for art in rec.get("artifacts", []):
            seen = artifacts.setdefault(cid, {})
            k = f"{art['name']}:{art['key']}"
            if k in seen:
                seen[k]["reused"] = seen[k]["reused"] and art["reused"]
            else:
                seen[k] = dict(art)
        kind = rec.get("kind")
        if kind == "verification":
            ver = entry["verification"]
            ver["passed" if rec["passed"] else "failed"] += 1
            ver["results"].append({k: v for k, v in rec.items() if k not in ("kind", "config", "artifacts")})
        elif kind == "evaluation":
            entry["evaluation"]["directions"].update(rec.get("directions") or {})
            entry["evaluation"]["backends"][rec["backend"]] = {
                k: v for k, v in rec.items() if k not in ("kind", "config", "artifacts", "backend", "directions")}
        elif kind == "latency":
            entry["latency"][rec["backend"]] = {k: v for k, v in rec.items() if k not in ("kind", "config", "artifacts", "backend")}
        elif kind == "package":
            pkg = entry.setdefault("package", {"folder": rec["folder"], "written": rec["written"], "checks": []})
            pkg["checks"].append({k: rec[k] for k in ("file", "key", "passed", "found", "expected", "source", "message")})
        elif kind == "profile":
            profiles.setdefault(cid, []).append(rec)
        elif kind == "shapes":
            entry["shapes"].append({"which": rec["which"], "scenario": rec["scenario"],
                                    "passed": all(c["passed"] for c in rec["checked"]), "checked": rec["checked"]})
    for cid, arts in artifacts.items():
        found = [a.pop("auto_mixed") for a in arts.values() if "auto_mixed" in a]
        quantized = [a.pop("int8") for a in arts.values() if "int8" in a]
        projects[cid]["artifacts"] = sorted(arts.values(), key=lambda a: (a["name"], a.get("variant", "")))
        if found:
            projects[cid]["auto_mixed"] = auto_mixed_entry(found[0], projects[cid]["evaluation"]["backends"])
        if quantized:
            projects[cid]["int8"] = int8_entry(quantized[-1], projects[cid]["evaluation"]["backends"],
                                               projects[cid]["latency"])
    if profiles:
        from awml_harness.profile.join import profile_entry

        for cid, recs in profiles.items():
            projects[cid]["profile"] = profile_entry(recs, configs[cid].evaluation.profile.top)
    unverified = []
    for cid, entry in projects.items():
        ver = entry["verification"]
        ver["results"].sort(key=lambda r: (r["scenario"], r["sample_index"]))
        ver["status"], reason = run_status(configs[cid], ver["results"])
        if reason is not None:
            ver["reason"] = reason
        if ver["status"] == "unverified":
            unverified.append(cid)
        entry["shapes"].sort(key=lambda s: (s["scenario"], s["which"]))
        if "package" in entry:
            entry["package"]["checks"].sort(key=lambda c: (c["file"], c["key"]))
        entry["tolerances"] = _tolerances(configs[cid], entry)
        entry["resolved_config"] = _resolved_config(configs[cid])
    now = time.time()
    doc = {
        "schema_version": SCHEMA_VERSION,
        "run": {
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(run.started)),
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(now)),
            "duration_s": round(now - run.started, 3),
            "exitstatus": exitstatus,
            "argv": argv,
            "command": command_line(argv),
            "git": git_info(rootdir) if rootdir is not None else None,
            "xdist_workers": workers,
            "tests": dict(run.outcomes),
            "problems": list(run.problems),
            "unverified": unverified,
            # CPU thread policy per config (awml_harness/threads.py) and what this
            # process's torch really had; each latency entry records its own process's
            "threads": dict(threads),
        },
        "machine": machine_info(),
        "projects": projects,
    }
    return jsonable(doc)


def auto_mixed_entry(summary: dict[str, Any], backends: dict[str, Any]) -> dict[str, Any]:
    """precision_policy="auto_mixed": the nodes the search kept in fp32 and what that cost,
    with the metric deltas (vs the reference backend) of every evaluated fp16 ONNX backend."""
    keys = ("fp32_nodes", "fp32_node_count", "candidates", "evaluations", "search_seconds", "plain_fp16_passed",
            "criterion", "verify_samples", "tolerances", "reused")
    deltas = {name: b["deltas"] for name, b in backends.items()
              if b.get("precision") == "fp16" and name.startswith("onnx") and "deltas" in b}
    return {**{k: summary[k] for k in keys if k in summary}, "metric_deltas": deltas}


def int8_entry(summary: dict[str, Any], backends: dict[str, Any], latency: dict[str, Any]) -> dict[str, Any]:
    """The int8 deployment: its calibration (quantizer, method, samples and their overlap
    with evaluation, seconds, ranges digest), per graph what was quantized, the metric
    deltas of every int8 backend, its p50 latency against the fp32 backend of the same
    runtime, and auto_int8's choice when the policy searched."""
    keys = ("quantizer", "method", "samples", "calibration_seconds", "ranges_digest", "build_seconds", "reused",
            "key", "handed_over", "qdq_nodes")
    out: dict[str, Any] = {k: summary[k] for k in keys if k in summary}
    out["graphs"] = {g: {k: v for k, v in e.items() if k != "ops"} for g, e in summary.get("graphs", {}).items()}
    out["metric_deltas"] = {n: b["deltas"] for n, b in backends.items() if b.get("precision") == "int8" and "deltas" in b}
    speed = {}
    for name, lat in latency.items():
        if lat.get("precision") != "int8" or "p50" not in lat:
            continue
        runtime = name.partition("-")[0]
        base = next((lat2 for n2, lat2 in latency.items() if n2.partition("-")[0] == runtime
                     and lat2.get("precision") == "fp32" and "p50" in lat2), None)
        speed[name] = {"p50_ms": lat["p50"], "fp32_p50_ms": base["p50"] if base else None,
                       "ratio": lat["p50"] / base["p50"] if base and base["p50"] else None}
    out["latency"] = speed
    auto = summary.get("auto_int8")
    if auto:
        keys = ("unquantized_nodes", "unquantized_node_count", "config_excluded", "config_excluded_count", "candidates",
                "evaluations", "search_seconds", "plain_int8_passed", "plain_failure", "criterion",
                "metrics_on_search_samples", "search_samples", "reused")
        out["auto_int8"] = {k: auto[k] for k in keys if k in auto}
    return out


def record_failures(doc: dict[str, Any], problems: Sequence[dict[str, Any]], gate_failures: Sequence[str]) -> None:
    """run.failures: every failing test's node id and one-line message, then the end-of-run
    gate failures; called once the gates have run."""
    from awml_harness.report.verdict import collect_failures

    doc["run"]["failures"] = jsonable(collect_failures(list(problems), list(gate_failures)))


def metrics_path(configs: Mapping[str, Any], option: str | None, rootdir: Path, doc_projects: Any = ()) -> Path:
    if option:
        p = Path(option)
        return p if p.is_absolute() else rootdir / p
    # the configs that ran come first, so `-k <project>` writes beside that project's artifacts
    ran = [configs[c] for c in doc_projects if c in configs]
    ordered = ran + [c for c in configs.values() if c not in ran]
    for cfg in ordered:
        if cfg.report.metrics_json is not None:
            return Path(cfg.report.metrics_json)
    return Path(ordered[0].export.work_dir) / "metrics.json"


def markdown_path(configs: Mapping[str, Any], option: str | None, rootdir: Path, doc_projects: Any = ()) -> Path | None:
    """--awml-markdown, else the first report.markdown among the configs that ran, else none."""
    if option:
        p = Path(option)
        return p if p.is_absolute() else rootdir / p
    ran = [configs[c] for c in doc_projects if c in configs]
    return next((Path(c.report.markdown) for c in ran if c.report.markdown is not None), None)


def validate_document(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError when `doc` does not follow the shipped schema."""
    import jsonschema

    jsonschema.validate(doc, json.loads(SCHEMA_FILE.read_text()))
