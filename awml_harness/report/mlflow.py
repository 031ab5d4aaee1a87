"""What a run's metrics JSON says to MLflow: params, metrics and tags, by pure functions.

`plan(doc)` turns a finished metrics JSON document into one `RunLog` for the run (the
parent MLflow run) and one per project (a nested run each), so what is logged can be
tested without MLflow and is the same whether the run is logged at its end or from
`awml merge`. The MLflow side (client, experiment, runs, artifacts, registry) is
`report/mlflow_client.py`; mlflow is imported there only, and only when asked for.

MLflow's rules, and what the harness does about each (MLflow 3.x, mlflow/utils/validation.py):

* Keys (params, metrics, tags) may hold letters, digits, `_ - . / :` and spaces, must not
  resolve to another path (`a//b`, `a/./b`, `../x`, a leading or trailing `/`), and are at
  most 250 characters. `mlflow_key` keeps a key that follows the rules as it is; any other
  becomes deterministic: every other character is replaced by `_`, empty, `.` and `..`
  segments by `_`, and the key gets `_` + the first 8 hex digits of the sha1 of the original
  (so two keys that differ only in replaced characters stay apart); one longer than 250
  keeps its first 241 characters and the same suffix. The colon is kept (MLflow on Windows
  refuses it; the harness targets Linux hosts).
* Values: MLflow cuts a param beyond 6000 characters and a run tag beyond 8000 with only a
  warning. The harness never lets it: a longer value is split into chunks, logged as
  `<key>`, `<key>/part2`, `<key>/part3`, ... (config keys never hold a `/`, so these cannot
  meet a real key), and the run's tag `awml.split_values` names every key that was split.
  The metrics JSON, logged with the run, holds every value whole.
* Metrics are finite numbers; NaN/Inf (None in the JSON) and non-numbers are not logged.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig

MAX_KEY = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
#: model-registry tags take 100,000 characters in MLflow 3; 5000 was the limit of 2.x servers
MAX_VERSION_TAG_VALUE = 5000
_NOT_ALLOWED = re.compile(r"[^A-Za-z0-9_\-. /:]")

#: tags every run of the harness carries (parent and project runs alike)
KIND_TAG = "awml.kind"


def mlflow_key(key: str) -> str:
    """`key` as MLflow accepts it: unchanged when it already is, else deterministically
    repaired (module docstring)."""
    clean = _NOT_ALLOWED.sub("_", key)
    clean = "/".join("_" if seg in ("", ".", "..") else seg for seg in clean.split("/"))
    if clean.startswith(".."):
        clean = "_" + clean
    if clean == key and len(key) <= MAX_KEY:
        return key
    suffix = "_" + hashlib.sha1(key.encode("utf-8")).hexdigest()[:8]
    return clean[: MAX_KEY - len(suffix)] + suffix


def split_value(key: str, value: str, limit: int) -> list[tuple[str, str]]:
    """(key, value) pairs holding `value` whole: itself, or its chunks of `limit` characters
    as `key`, `key/part2`, ..."""
    if len(value) <= limit:
        return [(key, value)]
    chunks = [value[i:i + limit] for i in range(0, len(value), limit)]
    return [(key if i == 0 else mlflow_key(f"{key}/part{i + 1}"), c) for i, c in enumerate(chunks)]


def param_value(value: Any) -> str:
    """A config value as a param: strings as they are, everything else in Python literal
    syntax (`True`, `None`, `0.0001`, `[3, 192, 192]`), the syntax `--cfg-options` takes."""
    return value if isinstance(value, str) else repr(value)


def flatten(data: Any, prefix: str = "", sep: str = ".") -> dict[str, Any]:
    """Nested mappings (and lists of mappings) -> {dotted key: leaf}. Lists of plain values
    stay one leaf; list items that are mappings are numbered (`scenarios.onnx.0.ref_backend`);
    an empty mapping is a leaf `{}`, so an unset table still shows. With the `.` separator a
    `/` inside a mapping key (an output pattern `aux[0]/score`) becomes `|`, which `mlflow_key`
    repairs, so a dotted key never holds a `/`."""
    out: dict[str, Any] = {}

    def walk(node: Any, key: str) -> None:
        if isinstance(node, Mapping) and node:
            for k, v in node.items():
                part = str(k) if sep != "." else str(k).replace("/", "|")  # mlflow_key repairs it
                walk(v, f"{key}{sep}{part}" if key else part)
        elif isinstance(node, (list, tuple)) and any(isinstance(v, (Mapping, list, tuple)) for v in node):
            for i, v in enumerate(node):
                walk(v, f"{key}{sep}{i}" if key else str(i))
        else:
            out[key] = dict(node) if isinstance(node, Mapping) else (list(node) if isinstance(node, tuple) else node)

    walk(data, prefix)
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


@dataclass(frozen=True)
class RunLog:
    """One MLflow run's params, metrics and tags, keys and values already as MLflow takes
    them (`RunLog.build`)."""

    name: str
    params: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def build(cls, name: str, params: Mapping[str, Any], metrics: Mapping[str, Any], tags: Mapping[str, Any]) -> RunLog:
        """Keys repaired, values split rather than cut, metrics kept only when finite.
        Two source keys that repair to the same key keep the first (sorted) value."""
        split: list[str] = []

        def entries(items: Mapping[str, Any], limit: int, convert: Any) -> dict[str, str]:
            out: dict[str, str] = {}
            for k in sorted(items):
                key, text = mlflow_key(k), convert(items[k])
                parts = split_value(key, text, limit)
                if len(parts) > 1:
                    split.append(key)
                for pk, pv in parts:
                    out.setdefault(pk, pv)
            return out

        p = entries(params, MAX_PARAM_VALUE, param_value)
        m: dict[str, float] = {}
        for k in sorted(metrics):
            v = _number(metrics[k])
            if v is not None:
                m.setdefault(mlflow_key(k), v)
        t = entries(tags, MAX_TAG_VALUE, str)
        if split:
            t.update(entries({"awml.split_values": ",".join(split)}, MAX_TAG_VALUE, str))
        return cls(name=name, params=p, metrics=m, tags=t)


@dataclass(frozen=True)
class Plan:
    """The parent run and one nested run per project (keyed by config id)."""

    run: RunLog
    projects: Mapping[str, RunLog]


def plan(doc: Mapping[str, Any]) -> Plan:
    """The metrics JSON document -> what each MLflow run gets (module docstring)."""
    from awml_harness.report.verdict import verdict

    shared = _shared_tags(doc, verdict(dict(doc)))
    projects = {cid: _project_log(cid, entry, shared) for cid, entry in sorted(doc.get("projects", {}).items())}
    return Plan(run=_run_log(doc, shared), projects=projects)


def _shared_tags(doc: Mapping[str, Any], judged: Mapping[str, Any]) -> dict[str, Any]:
    run, machine = doc.get("run", {}), doc.get("machine", {})
    git = run.get("git") or {}
    tags: dict[str, Any] = {
        "awml.verdict": judged["label"], "awml.exitstatus": run.get("exitstatus"),
        "awml.harness_version": machine.get("awml_harness", ""), "awml.schema_version": doc.get("schema_version"),
    }
    if git.get("commit"):
        tags.update({"awml.git.commit": git["commit"], "mlflow.source.git.commit": git["commit"]})
    if git.get("branch"):
        tags.update({"awml.git.branch": git["branch"], "mlflow.source.git.branch": git["branch"]})
    if git.get("dirty") is not None:
        tags["awml.git.dirty"] = git["dirty"]
    return tags


def _run_log(doc: Mapping[str, Any], shared: Mapping[str, Any]) -> RunLog:
    run, machine = doc.get("run", {}), doc.get("machine", {})
    params: dict[str, Any] = {"run.command": run.get("command") or " ".join(map(str, run.get("argv", []))),
                              "run.xdist_workers": run.get("xdist_workers", 0)}
    if run.get("merged_shards"):
        params["run.merged_shards"] = len(run["merged_shards"])
    params.update({f"machine.{k}": v for k, v in machine.items() if v is None or isinstance(v, (str, int, float))})
    metrics: dict[str, Any] = {"run/duration_s": run.get("duration_s"), "run/failures": len(run.get("failures", []))}
    metrics.update({f"run/tests/{k}": n for k, n in (run.get("tests") or {}).items()})
    tags = {**shared, KIND_TAG: "run", "awml.projects": ",".join(sorted(doc.get("projects", {}))),
            "awml.failures": len(run.get("failures", [])), "awml.unverified": ",".join(run.get("unverified", []))}
    names = sorted(doc.get("projects", {}))
    return RunLog.build("awml " + (", ".join(names) if len(names) <= 4 else f"{len(names)} projects"),
                        params, metrics, tags)


def artifact_folder(art: Mapping[str, Any]) -> str:
    """Where a deployed artifact's files go in its project run: `deployed/<name>-<variant>`."""
    name = str(art["name"]) + (f"-{art['variant']}" if art.get("variant") else "")
    return "deployed/" + mlflow_key(name).replace("/", "_")


def project_gates(entry: Mapping[str, Any]) -> list[str]:
    """What failed in one project, from the document alone: verification, each backend's
    metric gate or evaluation, the shape sweep, latency budgets. Empty: every gate passed."""
    out = []
    ver = entry.get("verification", {})
    if ver.get("failed"):
        out.append(f"verification: {ver['failed']} of {ver['failed'] + ver.get('passed', 0)} comparisons failed")
    for name, be in sorted(entry.get("evaluation", {}).get("backends", {}).items()):
        if be.get("passed") is False or be.get("status") == "error":
            failed = sorted(m for m, c in (be.get("gate") or {}).items() if not c.get("passed", True))
            out.append(f"evaluation {name}: " + (f"metric gate failed on {', '.join(failed)}" if failed
                                                 else f"status {be.get('status')} {be.get('reason', '')}".strip()))
    bad_shapes = [f"{s.get('scenario')} {s.get('which')}" for s in entry.get("shapes", []) if not s.get("passed", True)]
    if bad_shapes:
        out.append("shape sweep failed: " + ", ".join(bad_shapes))
    for name, lat in sorted(entry.get("latency", {}).items()):
        if lat.get("budget_violations"):
            out.append(f"latency {name}: " + "; ".join(lat["budget_violations"]))
    return out


def precisions(entry: Mapping[str, Any]) -> list[str]:
    """Every precision the project's evaluated backends and artifacts ran in."""
    found = {be.get("precision") for be in entry.get("evaluation", {}).get("backends", {}).values()}
    found |= {a.get("variant") for a in entry.get("artifacts", []) if a.get("variant") in ("fp32", "fp16", "int8")}
    return sorted(p for p in found if p)


def _project_log(cid: str, entry: Mapping[str, Any], shared: Mapping[str, Any]) -> RunLog:
    ver = entry.get("verification", {})
    params = {k: v for k, v in flatten(entry.get("resolved_config") or {}).items()}
    metrics: dict[str, Any] = {"verification/passed": ver.get("passed"), "verification/failed": ver.get("failed")}
    for res in ver.get("results", []):  # the worst leaf of each scenario over its samples
        for leaf in res.get("leaves", []):
            for stat in ("max_abs_diff", "max_rel_diff", "mismatch_share"):
                v, key = _number(leaf.get(stat)), f"verification/{res.get('scenario')}/{stat}"
                if v is not None and (key not in metrics or v > metrics[key]):
                    metrics[key] = v
    backends = entry.get("evaluation", {}).get("backends", {})
    for name, be in backends.items():
        metrics.update({f"{name}/{k}": v for k, v in flatten(be.get("metrics") or {}, sep="/").items()})
        metrics.update({f"{name}/delta/{k}": v for k, v in (be.get("deltas") or {}).items()})
        metrics[f"{name}/eval_seconds"] = be.get("seconds")
        metrics.update({f"{name}/memory/{k}": v for k, v in (be.get("memory") or {}).items() if k != "method"})
    for name, lat in entry.get("latency", {}).items():
        for stat in ("mean", "std", "min", "max", "median", "p50", "p90", "p95", "p99"):
            metrics[f"{name}/latency/{stat}_ms"] = lat.get(stat)
        metrics[f"{name}/latency/p95_over_p50"] = lat.get("p95_over_p50")
        metrics[f"{name}/latency/outlier_share"] = lat.get("outlier_share")
        metrics.update({f"{name}/latency/stage/{k}_ms": v for k, v in (lat.get("stages_median_ms") or {}).items()})
        metrics.update({f"{name}/latency/device/{k}_ms": v for k, v in (lat.get("device_time_ms") or {}).items()})
    shapes = entry.get("shapes", [])
    if shapes:
        metrics["shapes/passed"] = sum(1 for s in shapes if s.get("passed"))
        metrics["shapes/failed"] = sum(1 for s in shapes if not s.get("passed"))
    for art in entry.get("artifacts", []):
        folder = artifact_folder(art).removeprefix("deployed/")
        metrics[f"artifact/{folder}/size_bytes"] = art.get("size_bytes")
        metrics[f"artifact/{folder}/build_seconds"] = art.get("build_seconds")
    if entry.get("auto_mixed"):
        metrics["auto_mixed/fp32_node_count"] = entry["auto_mixed"].get("fp32_node_count")
    gates = project_gates(entry)
    tags: dict[str, Any] = {
        **shared, KIND_TAG: "project", "awml.project": cid, "awml.project_name": entry.get("project", ""),
        "awml.task_type": entry.get("task_type", ""), "awml.config": entry.get("config", ""),
        "awml.export_mode": entry.get("export_mode", ""), "awml.verification.status": ver.get("status", ""),
        "awml.gates": "failed" if gates else "passed", "awml.precision": ",".join(precisions(entry)),
        "awml.backends": ",".join(sorted(backends)),
    }
    if ver.get("reason"):
        tags["awml.verification.reason"] = ver["reason"]
    if gates:
        tags["awml.gates.failed"] = "; ".join(gates)
    for art in entry.get("artifacts", []):
        tags[f"awml.artifact.{artifact_folder(art).removeprefix('deployed/')}.key"] = art.get("key", "")
    return RunLog.build(cid, params, metrics, tags)


def keys_of(logs: Iterable[RunLog]) -> dict[str, list[str]]:
    """Every key the runs get, by kind (for docs and tests)."""
    out: dict[str, set[str]] = {"params": set(), "metrics": set(), "tags": set()}
    for log in logs:
        out["params"] |= set(log.params)
        out["metrics"] |= set(log.metrics)
        out["tags"] |= set(log.tags)
    return {k: sorted(v) for k, v in out.items()}


# -- where the run goes ---------------------------------------------------------------------
DEFAULT_EXPERIMENT = "awml"
#: tracking stores that keep artifacts themselves (the server proxies them, or Databricks)
_SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")


@dataclass(frozen=True)
class TrackingSettings:
    """Where and how a run is logged; `artifact_location` None: the server decides."""

    tracking_uri: str
    experiment: str = DEFAULT_EXPERIMENT
    log_models: bool = False
    artifact_location: str | None = None


def settings_for(configs: Sequence[DeployConfig], option_uri: str | None, option_models: bool = False,
                 env: Mapping[str, str] | None = None) -> TrackingSettings | None:
    """None when nothing asks for MLflow. `option_uri`: None without --awml-mlflow, "" for the
    bare option. The URI: the option's, else report.mlflow.tracking_uri (the first config
    with report.mlflow enabled), else $MLFLOW_TRACKING_URI, else a SQLite store in the first
    config's export.work_dir. The experiment gets its artifacts beside a SQLite store, under
    the work dir for other databases, and where the server keeps them for http(s)."""
    from awml_harness.config.schema import absolute_sqlite

    chosen = next((c.report.mlflow for c in configs if c.report.mlflow is not None and c.report.mlflow.enabled), None)
    if option_uri is None and chosen is None and not option_models:
        return None
    env = os.environ if env is None else env
    work_dir = Path(configs[0].export.work_dir).resolve()
    uri = (option_uri or (chosen.tracking_uri if chosen else None)
           or (absolute_sqlite(env["MLFLOW_TRACKING_URI"], Path.cwd()) if env.get("MLFLOW_TRACKING_URI") else None)
           or f"sqlite:///{work_dir / 'mlflow.db'}")
    location = chosen.artifact_location if chosen is not None else None
    if location is not None and location.startswith("/"):
        location = Path(location).as_uri()
    elif location is None:
        location = default_artifact_location(uri, work_dir)
    return TrackingSettings(tracking_uri=uri, experiment=chosen.experiment if chosen else DEFAULT_EXPERIMENT,
                            log_models=option_models or bool(chosen and chosen.log_models), artifact_location=location)


def default_artifact_location(uri: str, work_dir: Path) -> str | None:
    scheme = uri.partition(":")[0].lower()
    if scheme in _SERVER_SCHEMES:
        return None
    if uri.startswith("sqlite:///") and len(uri) > len("sqlite:///"):
        return (Path(uri[len("sqlite:///"):].partition("?")[0]).parent / "mlartifacts").as_uri()
    return (Path(work_dir) / "mlartifacts").as_uri()


# -- what may be published --------------------------------------------------------------------
def publish_refusals(doc: Mapping[str, Any], cid: str) -> list[str]:
    """Why project `cid` of this run may not become a model version (empty: it may): the
    run must have ended with exit status 0 and no failure, the project's deployed artifacts
    must be verified (verification.status "verified") and every gate of it must have passed."""
    from awml_harness.report.verdict import failures_of

    run = doc.get("run", {})
    out = []
    if run.get("exitstatus") != 0:
        out.append(f"the run ended with exit status {run.get('exitstatus')}, not 0")
    failures = failures_of(dict(doc))
    if failures:
        shown = "; ".join(str(f.get("message", "")) for f in failures[:3])
        out.append(f"the run has {len(failures)} failure(s): {shown}" + (" ..." if len(failures) > 3 else ""))
    entry = doc["projects"][cid]
    ver = entry.get("verification", {})
    if ver.get("status") != "verified":
        why = f" ({ver['reason']})" if ver.get("reason") else ""
        out.append(f"verification status of {cid} is {ver.get('status')!r}, not 'verified'{why}")
    out += [f"{cid}: {line}" for line in project_gates(entry)]
    if not entry.get("artifacts"):
        out.append(f"{cid} records no deployed artifact (a merged --awml-shard run carries none: publish the run that "
                   "exported and verified them)")
    return out


def version_tags(doc: Mapping[str, Any], cid: str) -> dict[str, str]:
    """A model version's tags: the runs it came from, what was verified, each backend's
    metric deltas vs the reference (and headline value), each artifact's key and sha256."""
    run, entry = doc.get("run", {}), doc["projects"][cid]
    record = run.get("mlflow") or {}
    tags: dict[str, Any] = {
        "awml.run_id": record.get("run_id", ""), "awml.project_run_id": (record.get("projects") or {}).get(cid, ""),
        "awml.experiment_id": record.get("experiment_id", ""), "awml.project": cid,
        "awml.project_name": entry.get("project", ""), "awml.config": entry.get("config", ""),
        "awml.verification.status": entry.get("verification", {}).get("status", ""),
        "awml.verification.passed": entry.get("verification", {}).get("passed", 0),
        "awml.precision": ",".join(precisions(entry)), "awml.export_mode": entry.get("export_mode", ""),
        "awml.harness_version": doc.get("machine", {}).get("awml_harness", ""),
        "awml.reference": entry.get("evaluation", {}).get("reference", ""),
    }
    git = run.get("git") or {}
    if git.get("commit"):
        tags["awml.git.commit"] = git["commit"]
    for name, be in sorted(entry.get("evaluation", {}).get("backends", {}).items()):
        for metric, delta in sorted((be.get("deltas") or {}).items()):
            if _number(delta) is not None:
                tags[f"delta.{name}.{metric}"] = repr(float(delta))
        head = be.get("headline")
        if head and _number((be.get("metrics") or {}).get(head)) is not None:
            tags[f"metric.{name}.{head}"] = repr(float(be["metrics"][head]))
    for art in entry.get("artifacts", []):
        folder = artifact_folder(art).removeprefix("deployed/")
        tags[f"artifact.{folder}.key"] = art.get("key", "")
        main = Path(art.get("path", "")).name
        sha = ((art.get("files") or {}).get(main) or {}).get("sha256")
        if sha:
            tags[f"artifact.{folder}.sha256"] = sha
    return {mlflow_key(k): str(v) for k, v in tags.items()}
