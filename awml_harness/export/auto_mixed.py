"""Automatic mixed precision (`precision_policy="auto_mixed"`): the fewest nodes kept in
fp32 so that the fp16 graphs still pass the harness's own verification.

Why a search of our own rather than a converter's default: the criterion must be the
one CI gates on. The caller hands it in (`judge`): the verification verdict
(`awml_harness/verification/judge.py`) of the fp16 scenario on every verification
sample, through the project's own pipeline (`adapter.forward` / `postprocess`, so a
two-graph project is judged end to end); this module only writes the candidates. The engine that writes each candidate is
onnxconverter-common's `convert_float_to_float16(node_block_list=...)`, the same converter
the plain `onnx-fp16` backend falls back to, with the same always-fp32 operators.

Search (deterministic, every step is one candidate evaluated on all samples):
  1. plain fp16 (no node blocked) passes -> nothing is kept in fp32;
  2. every candidate node blocked must pass, else no mixed graph can: one error naming the
     tolerance that fails even in fp32;
  3. nodes ordered outputs-first (reverse topological order): binary search for the
     shortest prefix whose blocking passes (error of a detector head is dominated by its
     last layers, so this prefix is usually short);
  4. within that prefix, release halves / single nodes back to fp16 while the result still
     passes (the divide-and-conquer of onnxconverter-common's auto_convert_mixed_precision),
     giving a set where no single kept node can be released.
The result, its node names per graph, the evaluation count and the search time are in
`auto_mixed.json` beside the converted graphs (one artifact, cached by key: the source
graphs, the tolerances, the verification samples, the search code).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from awml_harness.backends.base import BackendUnavailable
from awml_harness.export.fp16 import FP32_OPS, isolate_outputs
from awml_harness.export.onnx import ExportError, check_loads

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig, Scenario
    from awml_harness.protocols import ContextLike

SUMMARY_FILE = "auto_mixed.json"
SEARCH_VERSION = 1  # bump when the search changes what it chooses
# ops whose outputs are integers whatever the precision: nothing to keep in fp32
INTEGER_OPS = frozenset({"Shape", "Size", "NonZero", "Equal", "Less", "Greater", "Not", "And", "Or", "ArgMax",
                         "ArgMin"})

#: blocked node names per graph -> (passed, detail of the worst failing check or "")
Criterion = Callable[[Mapping[str, frozenset[str]]], "tuple[bool, str]"]


class AutoMixedError(ExportError):
    """No mixed-precision graph can meet the tolerances (not even with every node in fp32)."""


@dataclass(frozen=True)
class SearchResult:
    """What `search` chose: per graph the candidates it keeps out of the reduced precision
    (fp32 for auto_mixed, unquantized for auto_int8)."""

    fp32_nodes: dict[str, tuple[str, ...]]  # graph -> node names kept (auto_mixed: in fp32, beyond FP32_OPS)
    candidates: dict[str, int]  # graph -> nodes the search could choose from
    evaluations: int
    seconds: float
    plain_fp16_passed: bool  # nothing kept passed (plain fp16 / plain int8)
    history: tuple[tuple[int, bool], ...] = field(default=())  # (nodes blocked, passed) per evaluation
    plain_detail: str = ""  # what failed with nothing kept ("" when it passed)

    @property
    def count(self) -> int:
        return sum(len(v) for v in self.fp32_nodes.values())

    def as_dict(self, kept: str = "fp32_nodes", plain: str = "plain_fp16_passed") -> dict[str, Any]:
        """JSON keys as auto_mixed writes them; auto_int8 names its own (`kept`, `plain`)."""
        return {kept: {g: list(v) for g, v in self.fp32_nodes.items()}, kept.removesuffix("s") + "_count": self.count,
                "candidates": dict(self.candidates), "evaluations": self.evaluations,
                "search_seconds": round(self.seconds, 3), plain: self.plain_fp16_passed}


# -- conversion ------------------------------------------------------------------------------
def prepare_source(path: Path) -> Any:
    """The fp32 model ready for conversion: outputs isolated (see fp16.isolate_outputs) and
    every node named, since the block list and TensorRT's layer names go by node name."""
    import onnx

    model = onnx.load(str(path))
    isolate_outputs(model)
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"awml_node_{i}_{node.op_type}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)
    return model


def candidate_nodes(model: Any) -> list[str]:
    """Nodes the search may keep in fp32, outputs first (reverse topological order). Data
    movement ops (Concat, Reshape, Slice ...) are candidates too: in fp16 they round what
    passes through them, so an fp32 path needs them as well."""
    return [n.name for n in reversed(model.graph.node) if n.op_type not in INTEGER_OPS and n.op_type not in FP32_OPS]


def convert_mixed(model_bytes: bytes, blocked: Sequence[str]) -> Any:
    """fp16 model with `blocked` nodes (and FP32_OPS) left in fp32, fp32 inputs/outputs."""
    import onnx

    try:
        from onnxconverter_common import float16  # type: ignore[import-not-found]
    except ImportError:
        raise BackendUnavailable("precision_policy='auto_mixed' needs onnxconverter-common "
                                 "(pip install onnxconverter-common)") from None
    model = onnx.load_from_string(model_bytes)
    fp32_outputs = [o.name for o in model.graph.output if o.type.tensor_type.elem_type == onnx.TensorProto.FLOAT]
    converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=list(FP32_OPS),
                                                 node_block_list=sorted(blocked))
    restore_fp32_outputs(converted, fp32_outputs)
    skip_round_trips(converted)
    return converted


def restore_fp32_outputs(model: Any, names: Sequence[str]) -> None:
    """Keep fp32 outputs fp32, in place. When a blocked (fp32) node writes a graph output,
    the converter still ends it with a Cast to fp16 and retypes the output, breaking its
    own keep_io_types; that Cast becomes a Cast to fp32 (a no-op on an fp32 tensor), and
    any other fp16 output gets a Cast to fp32 of its own."""
    from onnx import TensorProto, helper

    graph = model.graph
    producers = {o: n for n in graph.node for o in n.output}
    for out in graph.output:
        if out.name not in names or out.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        node = producers.get(out.name)
        if node is not None and node.op_type == "Cast":
            for attr in node.attribute:
                if attr.name == "to":
                    attr.i = TensorProto.FLOAT
        else:
            inner = f"{out.name}__awml_fp16"
            for n in graph.node:
                n.output[:] = [inner if o == out.name else o for o in n.output]
                n.input[:] = [inner if i == out.name else i for i in n.input]
            graph.node.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT,
                                               name=f"{out.name}__awml_fp32_out"))
        out.type.tensor_type.elem_type = TensorProto.FLOAT


def skip_round_trips(model: Any) -> int:
    """Remove fp32 -> fp16 -> fp32 cast pairs, in place; returns how many were bypassed.

    The converter casts a blocked node's output to fp16 whenever it cannot see that every
    reader is blocked too, and each blocked reader casts it back: the value is rounded to
    fp16 between two fp32 nodes, so even "every node in fp32" would not reach fp32
    accuracy. A reader `Cast(to=float)` of such a `Cast(to=float16)` of an fp32 tensor
    reads the fp32 tensor instead (exact, and cheaper); a Cast left without readers goes."""
    from onnx import TensorProto, shape_inference

    graph = model.graph
    inferred = shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type
             for v in (*inferred.graph.value_info, *inferred.graph.input, *inferred.graph.output)}

    def cast_to(node: Any) -> int | None:
        if node.op_type != "Cast":
            return None
        return next((a.i for a in node.attribute if a.name == "to"), None)

    down = {n.output[0]: n for n in graph.node if cast_to(n) == TensorProto.FLOAT16
            and types.get(n.input[0]) == TensorProto.FLOAT}
    outputs = {o.name for o in graph.output}
    rename: dict[str, str] = {}
    dropped = []
    for node in graph.node:
        if cast_to(node) == TensorProto.FLOAT and node.input[0] in down and node.output[0] not in outputs:
            rename[node.output[0]] = down[node.input[0]].input[0]
            dropped.append(node)
    if not dropped:
        return 0
    for node in dropped:
        graph.node.remove(node)
    for node in graph.node:
        node.input[:] = [rename.get(n, n) for n in node.input]
    readers = {n for node in graph.node for n in node.input}
    for node in [n for n in graph.node if n.output[0] in down and n.output[0] not in readers | outputs]:
        graph.node.remove(node)
    return len(dropped)


# -- search ----------------------------------------------------------------------------------
def search(candidates: Mapping[str, Sequence[str]], criterion: Criterion,
           unreachable: Callable[[int, str], Exception] | None = None) -> SearchResult:
    """The fewest candidates to block so that `criterion` passes (see the module docstring).
    `candidates` per graph, each outputs first; graphs are searched jointly. When even
    blocking every candidate fails, `unreachable(count, detail)` is raised (default: the
    auto_mixed error); auto_int8 (export/auto_int8.py) searches with its own."""
    start = time.perf_counter()
    history: list[tuple[int, bool]] = []
    order = [(g, n) for g, names in candidates.items() for n in names]

    def passes(nodes: Sequence[tuple[str, str]]) -> tuple[bool, str]:
        blocked = {g: frozenset(n for gg, n in nodes if gg == g) for g in candidates}
        ok, detail = criterion(blocked)
        history.append((len(nodes), ok))
        return ok, detail

    def result(nodes: Sequence[tuple[str, str]], plain: bool) -> SearchResult:
        chosen = set(nodes)
        return SearchResult(
            fp32_nodes={g: tuple(n for n in names if (g, n) in chosen) for g, names in candidates.items()},
            candidates={g: len(v) for g, v in candidates.items()}, evaluations=len(history),
            seconds=time.perf_counter() - start, plain_fp16_passed=plain, history=tuple(history),
            plain_detail=plain_detail)

    ok, plain_detail = passes([])
    if ok:
        return result([], True)
    ok, detail = passes(order)
    if not ok:
        if unreachable is not None:
            raise unreachable(len(order), detail)
        raise AutoMixedError(
            f"precision_policy='auto_mixed': even with all {len(order)} candidate nodes in fp32 the fp16 graph "
            f"fails verification:\n{detail}\n  -> the tolerance is tighter than fp32 rounding of the remaining casts "
            "allows; loosen the fp16 pair's tolerance (verification.pair_outputs['pytorch->onnx-fp16'] or "
            "verification.pairs['pytorch->onnx-fp16']) or use precision_policy='auto' (fp32)")
    # 3. shortest outputs-first prefix that passes: passes(order[:hi]) holds, passes(order[:lo]) fails
    lo, hi = 0, len(order)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if passes(order[:mid])[0]:
            hi = mid
        else:
            lo = mid
    kept = list(order[:hi])

    # 4. release chunks back to fp16 while it still passes
    def release(chunk: list[tuple[str, str]], kept: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if not chunk:
            return kept
        gone = set(chunk)
        trial = [x for x in kept if x not in gone]
        if passes(trial)[0]:
            return trial
        if len(chunk) == 1:
            return kept
        half = len(chunk) // 2
        kept = release(chunk[:half], kept)
        return release(chunk[half:], kept)

    # order[:hi-1] failed, so try the rest as chunks first, then the last node alone:
    # afterwards no single kept node can go back to fp16 without failing
    kept = release(kept[:-1], kept)
    if len(kept) > 1 and passes(kept[:-1])[0]:
        kept = kept[:-1]
    return result(kept, False)


# -- the harness side: criterion = verification of the fp16 scenario -------------------------
def fp16_scenario(cfg: DeployConfig) -> Scenario:
    """The verification scenario whose tolerances the search must meet: the configured one
    testing onnx fp16 (first for this export mode), else pytorch:cpu vs onnx-fp16:cpu."""
    from awml_harness.config.schema import Backend, Scenario

    for sc in cfg.scenarios():
        if sc.test_backend is Backend.ONNX and sc.test_precision == "fp16":
            return sc
    for scenarios in cfg.verification.scenarios.values():
        for sc in scenarios:
            if sc.test_backend is Backend.ONNX and sc.test_precision == "fp16":
                return sc
    return Scenario(Backend.PYTORCH, Backend.ONNX, test_precision="fp16")


def tolerance_key(cfg: DeployConfig, scenario: Scenario) -> dict[str, Any]:
    """What of the config decides the criterion (for the artifact key)."""
    from awml_harness.config.validation import to_builtin

    ver = cfg.verification
    return {"scenario": scenario.label, "default": to_builtin(ver.default), "tolerance": ver.tolerance,
            "pairs": to_builtin(ver.pairs), "outputs": to_builtin(ver.outputs),
            "pair_outputs": to_builtin(ver.pair_outputs), "detection": to_builtin(ver.detection),
            "pair_detection": to_builtin(ver.pair_detection)}


def samples_digest(ctx: ContextLike, indices: Sequence[int]) -> str:
    """sha256 over the verification samples' ids and preprocessed input arrays."""
    from awml_harness.export.calibration import inputs_digest

    return inputs_digest(ctx.prepared(i) for i in indices)


def code_version() -> str:
    here = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for name in ("auto_mixed.py", "fp16.py"):
        h.update((here / name).read_bytes())
    return f"{SEARCH_VERSION}:{h.hexdigest()[:16]}"


#: runners per graph (the candidate graphs) -> (passed, what failed): the caller's
#: verification of the fp16 scenario on its samples (verification.judge), end to end
Judge = Callable[[Mapping[str, Any]], "tuple[bool, str]"]


class CandidateCriterion:
    """A Criterion: blocked nodes -> each graph's candidate model (`build(graph, blocked)`
    -> ONNX bytes: the mixed fp16 graph here, the partly quantized one for auto_int8), run
    by ONNX Runtime runners (cached per block list; every runner made is deactivated by
    `close`) -> the caller's `judge`."""

    def __init__(self, graphs: Sequence[str], build: Callable[[str, frozenset[str]], bytes], judge: Judge,
                 threads: int = 0, name: str = "onnx-fp16-candidate") -> None:
        self.graphs, self.build, self.judge, self.threads, self.name = list(graphs), build, judge, threads, name
        self._runners: dict[tuple[str, frozenset[str]], Any] = {}

    def runner(self, graph: str, blocked: frozenset[str]) -> Any:
        from awml_harness.backends.onnxruntime import OnnxRuntimeRunner

        key = (graph, blocked)
        if key not in self._runners:
            if len(self._runners) > 64:
                self.close()
            made = OnnxRuntimeRunner(self.build(graph, blocked), "cpu", self.threads, name=self.name)
            made.activate()
            self._runners[key] = made
        return self._runners[key]

    def __call__(self, blocked: Mapping[str, frozenset[str]]) -> tuple[bool, str]:
        return self.judge({name: self.runner(name, blocked[name]) for name in self.graphs})

    def close(self) -> None:
        for made in self._runners.values():
            made.deactivate()
        self._runners.clear()


def build_auto_mixed(sources: Mapping[str, Any], folder: Path, judge: Judge, *, scenario: str,
                     indices: Sequence[int], tolerances: Mapping[str, Any], threads: int = 0) -> str:
    """Search, then write `<graph>_fp16.onnx` per graph and `auto_mixed.json` into `folder`;
    returns the summary's file name (the artifact's main file). `judge` is the criterion
    the mixed graphs must meet (the verification of `scenario` on `indices`)."""
    import onnx

    models = {name: prepare_source(art.path) for name, art in sources.items()}
    blobs = {name: m.SerializeToString() for name, m in models.items()}
    if not indices:
        raise AutoMixedError("precision_policy='auto_mixed' needs verification samples to search with "
                             "(verification.num_verify_samples is 0 or the dataset is empty)")
    criterion = CandidateCriterion(list(blobs), lambda g, b: convert_mixed(blobs[g], sorted(b)).SerializeToString(),
                                   judge, threads)
    try:
        found = search({name: candidate_nodes(m) for name, m in models.items()}, criterion)
    finally:
        criterion.close()
    files = {}
    for name, art in sources.items():
        file_name = Path(art.path).name.replace(".onnx", "_fp16.onnx")
        converted = convert_mixed(blobs[name], found.fp32_nodes[name])
        onnx.save(converted, str(folder / file_name))
        onnx.checker.check_model(str(folder / file_name))
        check_loads(folder / file_name, "auto_mixed fp16 conversion (export/auto_mixed.py)")
        files[name] = file_name
    always = {name: [n.name for n in m.graph.node if n.op_type in FP32_OPS] for name, m in models.items()}
    summary = {**found.as_dict(), "policy": "auto_mixed", "criterion": scenario, "always_fp32": always,
               "verify_samples": list(indices), "files": files, "tolerances": dict(tolerances)}
    (folder / SUMMARY_FILE).write_text(json.dumps(summary, indent=1, sort_keys=True))
    return SUMMARY_FILE


def read_summary(folder: Path) -> dict[str, Any]:
    return json.loads((Path(folder) / SUMMARY_FILE).read_text())
