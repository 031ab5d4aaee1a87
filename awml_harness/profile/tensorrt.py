"""TensorRT per-layer profiles: IProfiler times, engine-inspector precisions, ONNX nodes.

Written against TensorRT's documented Python API (10.x/11.x); the tests that need an
engine skip without TensorRT and a GPU, the parsing of layer names and inspector JSON is
tested on the formats NVIDIA documents.

- Times: a `tensorrt.IProfiler` subclass (its `__init__` called explicitly, as the
  pybind base requires) set as `IExecutionContext.profiler` on a context of its own
  (`enqueue_emits_profile` left True: `execute_async_v3` reports every layer's
  milliseconds before it returns), so one inference is one round. CUDA graphs are off
  for that runner (a replayed graph reports nothing without `report_to_profiler`).
- Precision and tactic per layer: `ICudaEngine.create_engine_inspector()`,
  `IEngineInspector.execution_context`, `get_engine_information(LayerInformationFormat.JSON)`.
  Full records (`LayerType`, `Inputs[i]["Format/Datatype"]`, `TacticName`, `Metadata`) need
  `ProfilingVerbosity.DETAILED` at build time, which the harness's engine builds set
  (export/trt_settings.py); an engine without it gives names only and no precision.
- Layer names -> ONNX nodes: `Metadata` (`[ONNX Layer: <node>]`, several joined by
  \\x1e or \\x1f) when present, else the name: members joined with " + ",
  `PWN(a, PWN(b))` pointwise fusions, `{ForeignNode[first...last]}` (Myelin/DLA regions:
  every node from first to last in graph order), `<node>_myl<n>_<m>` Myelin kernels,
  ` [profile N]` suffixes. A `Reformatting CopyNode for ... to <layer>` takes its time to
  that layer's node. The fused layer's time goes to its principal node (PRIORITY), the
  others are marked fused into it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from awml_harness.profile.nodes import NodeGraph, principal, split_members
from awml_harness.profile.rows import GraphTimes

METHOD = "tensorrt-iprofiler"
_PROFILE_SUFFIX = re.compile(r" \[profile \d+\]$")
_FOREIGN = re.compile(r"\{ForeignNode\[(.*)\]\}")
_REFORMAT = re.compile(r"Reformatting CopyNode for (?:Input|Output) Tensor \d+ to (.+)")
_MYELIN = re.compile(r"(.+)_myl\d+_\d+")
_ONNX_LAYER = re.compile(r"\[ONNX Layer: ([^\]]+)\]")
_PRECISIONS = (("int8", "int8"), ("fp8", "fp8"), ("int4", "int4"), ("bf16", "bf16"), ("fp16", "fp16"),
               ("half", "fp16"), ("fp32", "fp32"), ("float", "fp32"), ("int32", "int32"), ("int64", "int64"),
               ("bool", "bool"))


def datatype_precision(text: str | None) -> str | None:
    """An inspector `Format/Datatype` ("Row major linear FP32", "Channel major FP16 format
    where channel % 8 == 0", "Thirty-two wide channel vectorized row major Int8 format",
    "Half") -> fp32/fp16/int8/..."""
    if not text:
        return None
    low = text.lower()
    return next((p for key, p in _PRECISIONS if key in low), None)


def layer_information(data: str | Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The inspector's engine JSON -> layer name -> type, precision, tactic, ONNX nodes."""
    doc = json.loads(data) if isinstance(data, str) else data
    out: dict[str, dict[str, Any]] = {}
    for layer in doc.get("Layers", []):
        if isinstance(layer, str):  # built without ProfilingVerbosity.DETAILED: names only
            out[_PROFILE_SUFFIX.sub("", layer)] = {}
            continue
        name = _PROFILE_SUFFIX.sub("", str(layer.get("Name", "")))
        inputs = layer.get("Inputs") or []
        fmt = next((str(i.get("Format/Datatype")) for i in inputs if isinstance(i, dict) and i.get("Format/Datatype")),
                   None)
        outputs = layer.get("Outputs") or []
        fmt = fmt or next((str(o.get("Format/Datatype")) for o in outputs if isinstance(o, dict)), None)
        meta = str(layer.get("Metadata") or "")
        out[name] = {"type": layer.get("LayerType"), "tactic": layer.get("TacticName") or layer.get("TacticValue"),
                     "precision": datatype_precision(str(layer.get("Precision") or "")) or datatype_precision(fmt),
                     "onnx": _ONNX_LAYER.findall(meta.replace("\x1e", "\x1f"))}
    return out


def layer_nodes(name: str, graph: NodeGraph, info: Mapping[str, Mapping[str, Any]] | None = None) -> list[str]:
    """The ONNX nodes a layer ran (see the module docstring); [] when none can be named."""
    name = _PROFILE_SUFFIX.sub("", name)
    meta = ((info or {}).get(name) or {}).get("onnx") or []
    found = split_members(graph, meta)
    if found:
        return found
    if name in graph.index:
        return [name]
    foreign = _FOREIGN.fullmatch(name)
    if foreign:
        first, _, last = foreign.group(1).partition("...")
        ends = [graph.index[n] for n in (first, last or first) if n in graph.index]
        if len(ends) == 2:
            lo, hi = sorted(ends)
            return [n.name for n in graph.nodes[lo:hi + 1]]
        return [graph.nodes[i].name for i in ends]
    parts = [p.strip() for p in name.split(" + ")]
    names: list[str] = []
    for part in parts:
        for token in re.split(r"PWN\(|\)|, ", part):
            token = token.strip()
            myelin = _MYELIN.fullmatch(token)
            names += [token] + ([myelin.group(1)] if myelin else [])
    return split_members(graph, names)


def graph_times(graph_name: str, variant: NodeGraph, rounds: list[list[tuple[str, float]]],
                info: Mapping[str, Mapping[str, Any]]) -> GraphTimes:
    """IProfiler rounds ([(layer, ms)] per inference) on the nodes of the ONNX file the
    engine was built from; the timeline is synthesized (layers end to end in report order)."""
    heads: dict[str, str | None] = {}
    merged: dict[str, tuple[str, str]] = {}
    layer_info: dict[str, dict[str, Any]] = {}
    for layer in dict.fromkeys(name for r in rounds for name, _ in r):
        members = layer_nodes(layer, variant, info)
        reformat = _REFORMAT.fullmatch(_PROFILE_SUFFIX.sub("", layer))
        if not members and reformat:
            members = layer_nodes(reformat.group(1), variant, info)
        head = principal(variant, members) if members else None
        heads[layer] = head
        if head is not None and not reformat:
            merged.update({m: (head, "fused") for m in members if m != head})
        layer_info[layer] = dict(info.get(_PROFILE_SUFFIX.sub("", layer)) or {})
    for n in variant.nodes:
        if n.name not in merged and n.name not in heads.values():
            merged[n.name] = (n.name, "folded")
    per_round, lost, totals, events = [], [], [], []
    kernels: dict[str, list[str]] = {}
    precision: dict[str, str | None] = {}
    for r, reports in enumerate(rounds):
        per: dict[str, float] = {}
        unmapped: dict[str, float] = {}
        cursor = 0.0
        for layer, ms in reports:
            head = heads[layer]
            meta = layer_info[layer]
            if head is None:
                unmapped[layer] = unmapped.get(layer, 0.0) + ms
            else:
                per[head] = per.get(head, 0.0) + ms
                kind = str(meta.get("type") or "layer")
                if kind not in kernels.setdefault(head, []):
                    kernels[head].append(kind)
                if meta.get("precision") and kind != "Reformat":
                    precision.setdefault(head, meta["precision"])
            events.append((r, layer, meta.get("type") or "layer", head, cursor, ms * 1e3, meta.get("precision")))
            cursor += ms * 1e3
        per_round.append(per)
        lost.append(unmapped)
        totals.append(sum(ms for _, ms in reports))
    node_info = {n: {"kernels": k, "precision": precision.get(n), "integer": precision.get(n) == "int8"}
                 for n, k in kernels.items()}
    return GraphTimes(graph_name, variant, tuple(per_round), tuple(totals), tuple(lost), merged, node_info,
                      tuple(events), len(rounds[-1]) if rounds else 0)


def _layer_times(trt: Any) -> Any:
    """An IProfiler collecting (layer, ms) of the current inference (class built here:
    its base needs tensorrt)."""

    class LayerTimes(trt.IProfiler):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IProfiler.__init__(self)
            self.reports: list[tuple[str, float]] = []

        def report_layer_time(self, layer_name: str, ms: float) -> None:
            self.reports.append((str(layer_name), float(ms)))

    return LayerTimes()


class TrtProfiler:
    """A profiled runner per graph over the very engine files the latency tests run."""

    method = METHOD
    forwards = None

    def __init__(self, engines: Mapping[str, Path], sources: Mapping[str, Path], device: str) -> None:
        from awml_harness.backends.tensorrt import require_tensorrt

        self.trt = require_tensorrt(device)
        self.sources = dict(sources)
        self.profilers = {g: _layer_times(self.trt) for g in engines}
        self.runners = {g: _profiled_runner(path, device, self.profilers[g]) for g, path in engines.items()}
        self.rounds: dict[str, list[list[tuple[str, float]]]] = {g: [] for g in engines}
        self.notes = ["TensorRT IProfiler layer times; the timeline in the trace is synthesized (layers end to end)"]

    def __enter__(self) -> TrtProfiler:
        for r in self.runners.values():
            r.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        for r in self.runners.values():
            r.deactivate()

    def begin_forward(self) -> None:
        for g in self.rounds:
            self.rounds[g].append([])

    def run_graph(self, name: str, feeds: Mapping[str, Any]) -> Mapping[str, Any]:
        prof = self.profilers[name]
        prof.reports = []
        out = self.runners[name].infer(feeds)
        self.rounds[name][-1].extend(prof.reports)
        return out

    def engine_information(self, graph: str) -> dict[str, dict[str, Any]]:
        runner = self.runners[graph]
        inspector = runner.engine.create_engine_inspector()
        contexts = [s.context for s in runner._slots.values()]
        if contexts:
            try:
                inspector.execution_context = contexts[0]
            except AttributeError:  # older bindings name it `context`
                inspector.context = contexts[0]
        return layer_information(inspector.get_engine_information(self.trt.LayerInformationFormat.JSON))

    def finish(self, skip: int) -> dict[str, GraphTimes]:
        out = {}
        for g, rounds in self.rounds.items():
            info = self.engine_information(g)
            if info and not any(v for v in info.values()):
                self.notes.append(f"{g}: the engine was built without ProfilingVerbosity.DETAILED: no per-layer "
                                  "precision (rebuild it with --awml-rebuild)")
            out[g] = graph_times(g, NodeGraph.load(self.sources[g]), rounds[skip:], info)
        return out


def _profiled_runner(path: Path, device: str, profiler: Any) -> Any:
    """A TensorRTRunner whose execution contexts report to `profiler` (a runner of its own:
    a profiled context runs slower and must never be the latency tests')."""
    from awml_harness.backends.tensorrt import TensorRTRunner

    class ProfiledRunner(TensorRTRunner):
        def _slot(self, k: int) -> Any:
            fresh = k not in self._slots
            slot = super()._slot(k)
            if fresh:
                slot.context.profiler = profiler
                slot.context.enqueue_emits_profile = True
            return slot

    return ProfiledRunner(path, device, cuda_graph=False, name="tensorrt-profile")
