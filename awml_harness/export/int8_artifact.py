"""One int8 artifact: every graph of a config quantized (or left float) from its recorded
calibration feeds, with what TensorRT and a reader of the report need beside it.

Files, per graph `<stem>` of its fp32 ONNX: `<stem>_int8.onnx` (the Q/DQ graph; a copy of
the fp32 one for a graph `quantization.graphs` leaves float), `<stem>_int8.ranges.json`
(tensor -> [lo, hi], what the scales were made from) and `<stem>_int8.calibration.cache`
(the same as a TensorRT calibration cache); `int8.json`: the calibration (method,
samples and their overlap with evaluation, seconds, ranges digest) and per graph the
quantized and excluded nodes. Keyed by the caller (context/quantized.py).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from awml_harness.export import int8
from awml_harness.export.onnx import check_loads

SUMMARY_FILE = "int8.json"


def int8_name(source: Path) -> str:
    return Path(source).name.replace(".onnx", "_int8.onnx")


def resolve_exclusions(model: Any, settings: Any) -> list[str]:
    """Node names `quantization.exclude_nodes` (regexes) and `exclude_op_types` leave float."""
    return int8.matching_nodes(model, settings.exclude_nodes, settings.exclude_op_types)


def op_types(settings: Any) -> tuple[str, ...]:
    return tuple(settings.op_types) or int8.TRT_OP_TYPES


def quantize_graph(src: Path, folder: Path, feeds: Sequence[Mapping[str, np.ndarray]], settings: Any,
                   cache_scales: Mapping[str, float] | None = None) -> dict[str, Any]:
    """Prepare, calibrate, place one graph into `folder`; its entry of the summary."""
    import onnx

    name = int8_name(src)
    prepared = folder / f".{Path(src).stem}.prepared.onnx"
    model = int8.prepare(src, prepared)
    exclude = resolve_exclusions(model, settings)
    entry: dict[str, Any] = {"quantized": True, "file": name, "source_nodes": len(model.graph.node)}
    try:
        if settings.quantizer == "modelopt":
            from awml_harness.export.int8_modelopt import quantize_modelopt

            placement, ranges = quantize_modelopt(prepared, folder / name, feeds, method=settings.method,
                                                  exclude=exclude, op_types=op_types(settings),
                                                  calibration_cache=settings.calibration_cache)
            entry["calibration_seconds"] = round(placement.seconds, 3)  # ModelOpt calibrates and places at once
        else:
            cal = int8.calibrate(prepared, feeds, folder, method=settings.method, op_types=op_types(settings),
                                 percentile=settings.percentile, bins=settings.bins)
            ranges = cal.ranges
            if cache_scales is not None:
                ranges, entry["calibration_cache"] = int8.apply_trt_cache(ranges, cache_scales)
            placement = int8.quantize(prepared, folder / name, ranges, exclude=exclude, op_types=op_types(settings))
            entry["calibration_seconds"] = round(cal.seconds, 3)
            entry["quantize_seconds"] = round(placement.seconds, 3)
    finally:
        prepared.unlink(missing_ok=True)
    out = onnx.load(str(folder / name))
    problems = int8.check_trt_form(out)
    if problems:
        raise int8.QuantizationError(f"{name}: not in the form TensorRT builds: {problems[:5]}")
    check_loads(folder / name, "int8 quantization (export/int8.py)")
    stem = name.removesuffix(".onnx")
    (folder / f"{stem}.ranges.json").write_text(json.dumps({k: [float(lo), float(hi)] for k, (lo, hi)
                                                            in sorted(ranges.items())}, indent=0))
    (folder / f"{stem}.calibration.cache").write_text(int8.trt_cache_text(ranges))
    entry.update(qdq_nodes=placement.qdq_nodes, quantized_nodes=list(placement.quantized),
                 quantized_count=len(placement.quantized), excluded_nodes=list(placement.excluded),
                 ranges=len(ranges), ranges_digest=int8.ranges_digest(ranges),
                 samples=len(feeds), ops=_op_counts(out))
    return entry


def _op_counts(model: Any) -> dict[str, int]:
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))


def build_int8(sources: Mapping[str, Any], folder: Path, feeds: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
               settings: Any, plan: Mapping[str, Any]) -> str:
    """Every graph of `sources` (fp32 Artifacts) into `folder`; returns the summary file."""
    from awml_harness.config.validation import to_builtin

    wanted = settings.graphs
    unknown = sorted(set(wanted or ()) - set(sources))
    if unknown:
        raise int8.QuantizationError(f"quantization.graphs names {unknown}: the graphs are {list(sources)}")
    scales = int8.read_trt_cache(settings.calibration_cache) if settings.calibration_cache else None
    graphs: dict[str, Any] = {}
    for gname, art in sources.items():
        if wanted is not None and gname not in wanted:
            shutil.copyfile(art.path, folder / int8_name(art.path))
            graphs[gname] = {"quantized": False, "file": int8_name(art.path),
                             "reason": f"quantization.graphs={list(wanted)} leaves it float"}
            continue
        if not feeds.get(gname):
            raise int8.QuantizationError(f"graph {gname!r}: the pipeline never ran it on the calibration samples, "
                                         "so there is nothing to calibrate it with")
        graphs[gname] = quantize_graph(art.path, folder, feeds[gname], settings,
                                       scales if settings.quantizer != "modelopt" else None)
    digests = {g: e["ranges_digest"] for g, e in graphs.items() if e.get("quantized")}
    summary = {"policy": "int8", "quantizer": int8.quantizer_versions(settings.quantizer), "method": settings.method,
               "settings": to_builtin(settings), "samples": dict(plan), "graphs": graphs,
               "calibration_seconds": round(sum(e.get("calibration_seconds", 0.0) for e in graphs.values()), 3),
               "ranges_digest": _combined(digests), "files": {g: e["file"] for g, e in graphs.items()}}
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, sort_keys=True, default=str))
    return SUMMARY_FILE


def _combined(digests: Mapping[str, str]) -> str | None:
    """One digest over every quantized graph's ranges digest (None: nothing quantized)."""
    import hashlib

    if not digests:
        return None
    return hashlib.sha256(json.dumps(dict(sorted(digests.items()))).encode()).hexdigest()


def read_summary(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / SUMMARY_FILE).read_text())
