"""Automatic int8 (`precision_policy="auto_int8"`): the fewest nodes left out of
quantization so that the int8 graphs pass the harness's own verification of the int8
scenario and the metric gate of the int8 backend on the search samples (the
verification samples and the calibration samples).

The search is auto_mixed's (`export/auto_mixed.search`): candidates are the nodes the
plain int8 graph quantized (outputs first), "blocked" means "left in float", the
criterion is handed in by the caller (`RunnerPool.verification_judge` and
`RunnerPool.metric_judge`). Each candidate graph is placed again by ONNX Runtime's
quantizer from the plain int8 artifact's calibrated ranges (`int8.quantize` with more
nodes excluded): no second calibration, and every node keeps its calibrated scale. The
config's own exclusions (`quantization.exclude_nodes`, e.g. AWML's voxel encoder and
first backbone block) are the starting point and stay excluded.

Files: `<stem>_int8.onnx` per graph (the chosen graph), the ranges and TensorRT cache
copied from the int8 artifact, and `auto_int8.json` (the choice, its count, the
evaluations, the search time, why plain int8 failed, and the metrics on the search
samples of plain int8 and of the choice).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from awml_harness.export import int8
from awml_harness.export.auto_mixed import CandidateCriterion, search
from awml_harness.export.int8_artifact import op_types
from awml_harness.export.onnx import ExportError, check_loads

SUMMARY_FILE = "auto_int8.json"
SEARCH_VERSION = 1  # bump when the search changes what it chooses

#: runners per graph -> (passed, what failed): the caller's verification and metric gate
Judge = Callable[[Mapping[str, Any]], "tuple[bool, str]"]


class AutoInt8Error(ExportError):
    """No partly quantized graph meets the criterion, not even with every candidate in float."""


def unreachable(count: int, detail: str) -> AutoInt8Error:
    return AutoInt8Error(
        f"precision_policy='auto_int8': even with all {count} quantized nodes left in float the int8 graph fails "
        f"its criterion:\n{detail}\n  -> the tolerance is tighter than the fp32 graph meets (compare pytorch vs "
        "onnx), or a graph-wide setting (quantization.graphs, op_types) is the cause; loosen the int8 pair's "
        "tolerance (verification.pair_outputs['pytorch->onnx-int8']) or the onnx-int8 metric_tolerance")


def code_version() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("auto_int8.py", "auto_mixed.py", "int8.py"):
        h.update((here / name).read_bytes())
    return f"{SEARCH_VERSION}:{h.hexdigest()[:16]}"


class Candidates:
    """Builds a graph with some of its quantized nodes left in float, from the plain
    int8 artifact's ranges; the float graphs of the int8 artifact pass through."""

    def __init__(self, sources: Mapping[str, Any], int8_folder: Path, summary: Mapping[str, Any], work: Path,
                 settings: Any) -> None:
        self.summary, self.work, self.settings = summary, work, settings
        self.prepared: dict[str, Path] = {}
        self.ranges: dict[str, dict[str, tuple[float, float]]] = {}
        self.fixed: dict[str, bytes] = {}
        for g, art in sources.items():
            entry = summary["graphs"][g]
            if not entry.get("quantized"):
                self.fixed[g] = (Path(int8_folder) / entry["file"]).read_bytes()
                continue
            self.prepared[g] = work / f".{Path(art.path).stem}.prepared.onnx"
            int8.prepare(art.path, self.prepared[g])
            raw = json.loads((Path(int8_folder) / entry["file"].replace(".onnx", ".ranges.json")).read_text())
            self.ranges[g] = {k: (float(v[0]), float(v[1])) for k, v in raw.items()}

    def order(self) -> dict[str, list[str]]:
        """Per quantized graph its quantized nodes, outputs first."""
        return {g: list(reversed(self.summary["graphs"][g]["quantized_nodes"])) for g in self.prepared}

    def __call__(self, graph: str, blocked: frozenset[str]) -> bytes:
        if graph in self.fixed:
            return self.fixed[graph]
        dst = self.work / f".{graph}.candidate.onnx"
        config = self.summary["graphs"][graph]["excluded_nodes"]
        int8.quantize(self.prepared[graph], dst, self.ranges[graph], exclude=[*config, *blocked],
                      op_types=op_types(self.settings))
        data = dst.read_bytes()
        dst.unlink()
        return data

    def close(self) -> None:
        for p in self.prepared.values():
            p.unlink(missing_ok=True)


def build_auto_int8(sources: Mapping[str, Any], int8_folder: Path, folder: Path, judge: Judge, *,
                    metrics: Any, settings: Any, criterion: str, samples: Mapping[str, Any],
                    tolerances: Mapping[str, Any], threads: int = 0) -> str:
    """Search, then write the chosen graphs and `auto_int8.json` into `folder`; returns the
    summary's file name. `metrics`: the metric judge (RunnerPool.metric_judge; None without
    one), run once more on plain int8 and on the choice to record what each scores."""
    from awml_harness.export.int8_artifact import read_summary

    plain = read_summary(int8_folder)
    build = Candidates(sources, int8_folder, plain, folder, settings)
    graphs = list(sources)
    criterion_runner = CandidateCriterion(graphs, build, judge, threads, name="onnx-int8-candidate")
    try:
        found = search(build.order(), criterion_runner, unreachable=unreachable)
        chosen = {g: frozenset(found.fp32_nodes.get(g, ())) for g in graphs}

        def measured(blocked: Mapping[str, frozenset[str]]) -> dict[str, Any]:
            if metrics is None:
                return {}
            metrics({g: criterion_runner.runner(g, blocked[g]) for g in graphs})
            return _scalars(metrics.last)

        plain_metrics, chosen_metrics = measured({g: frozenset() for g in graphs}), measured(chosen)
        files = {}
        for g, _art in sources.items():
            name = plain["graphs"][g]["file"]
            (folder / name).write_bytes(build(g, chosen[g]))
            check_loads(folder / name, "auto_int8 quantization (export/auto_int8.py)")
            for suffix in (".ranges.json", ".calibration.cache"):
                extra = Path(int8_folder) / name.replace(".onnx", suffix)
                if extra.is_file():
                    shutil.copyfile(extra, folder / extra.name)
            files[g] = name
    finally:
        criterion_runner.close()
        build.close()
    excluded = {g: list(e.get("excluded_nodes", [])) for g, e in plain["graphs"].items()}
    summary = {**found.as_dict("unquantized_nodes", "plain_int8_passed"), "policy": "auto_int8",
               "criterion": criterion, "config_excluded": excluded,
               "config_excluded_count": sum(len(v) for v in excluded.values()),
               "plain_failure": found.plain_detail, "search_samples": dict(samples), "files": files,
               "tolerances": dict(tolerances), "metrics_on_search_samples": {
                   "reference": _scalars(metrics.reference) if metrics is not None else {}, "plain_int8": plain_metrics,
                   "auto_int8": chosen_metrics},
               "int8_key": plain.get("key"), "calibration": plain.get("samples"), "method": plain.get("method")}
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
    return SUMMARY_FILE


def _scalars(metrics: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def read_summary(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / SUMMARY_FILE).read_text())
