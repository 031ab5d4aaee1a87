"""Mismatch localisation (`--awml-localize`): where do two backends' graphs part ways?

A failing verification says *that* an output differs; this says *where*. The anchor is
Polygraphy's `--onnx-outputs mark all`: every intermediate tensor becomes a graph
output, both sides run on the failing sample, and the tensors are compared one by one in
the reference graph's topological order. The first nodes whose output is beyond the
verification tolerance are the suspects.

Done with onnx + onnxruntime directly rather than Polygraphy: both are already
dependencies, marking outputs is a loop over `graph.node`, and the part Polygraphy
cannot do for us is the mapping between graphs anyway (the fp16 converter keeps tensor
names but inserts Cast nodes and renames graph outputs; PyTorch modules are matched by
the name scopes the exporter writes). No extra package for an opt-in debugging aid.

Sides, per graph and keyed by the fp32 ONNX graph's tensor names:
- ONNX (fp32 or fp16 variant): the file with every node output marked, in ONNX Runtime.
- TensorRT: an engine built from the same ONNX with the same build plan, every layer
  output marked (`INetworkDefinition.mark_output`), run by the TensorRT runner. The
  ONNX parser names layer outputs after the ONNX tensors, so the names line up.
- PyTorch: forward hooks on the graph module's named submodules; a module maps to the
  output tensor of the last ONNX node inside its name scope (`/backbone/layer1/...`,
  TorchScript exporter), when shapes agree. The share of modules that map is reported.

Every graph of a multi-graph project is fed the reference backend's own inputs for that
graph (recorded while running the reference pipeline), so a divergence found in the
second graph is that graph's own, not carried over from the first.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import BackendSpec, Scenario
    from awml_harness.protocols import ContextLike

DEFAULT_LIMIT = 3  # first diverging nodes reported
# (atol, rtol[, max_mismatch_share]): the verification's own per-output function; a share is
# an argmax-output rule, so intermediate tensors are held to atol/rtol alone
ToleranceFn = Callable[[str], "tuple[float, ...]"]


@dataclass(frozen=True)
class Divergence:
    """One tensor beyond tolerance: the node that wrote it and by how much."""

    graph: str
    node: str
    op_type: str
    tensor: str
    max_abs_diff: float
    atol: float
    rtol: float
    mismatches: int = 0
    numel: int = 0
    ref_value: float = 0.0
    test_value: float = 0.0
    problem: str = ""  # shape/dtype problem instead of values
    module: str = ""  # PyTorch module path, when the reference side is PyTorch

    def describe(self) -> str:
        where = f"{self.graph}: node {self.node!r} ({self.op_type})"
        if self.module:
            where += f" = module {self.module!r}"
        if self.problem:
            return f"{where}, tensor {self.tensor!r}: {self.problem}"
        return (f"{where}, tensor {self.tensor!r}: max abs diff {self.max_abs_diff:.4g} "
                f"(ref {self.ref_value:.6g}, test {self.test_value:.6g}) beyond atol={self.atol:g} rtol={self.rtol:g}; "
                f"{self.mismatches} of {self.numel} elements")

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for k in ("max_abs_diff", "ref_value", "test_value"):
            if not math.isfinite(d[k]):
                d[k] = None if math.isnan(d[k]) else str(d[k])
        return d


@dataclass(frozen=True)
class Localization:
    """The outcome of one localisation: first divergences, and how much could be compared."""

    ref: str
    test: str
    method: str  # "onnx-mark-all", "tensorrt-mark-all", "torch-module-hooks" joined by "+"
    compared: int  # tensors compared on both sides
    candidates: int  # tensors of the reference graph(s) (or hooked modules) that could have been
    first: tuple[Divergence, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def message(self) -> str:
        unit = "modules" if "torch-module-hooks" in self.method else "tensors"
        head = (f"localisation ({self.method}, {self.compared} of {self.candidates} {unit} compared, "
                f"{self.ref} vs {self.test}):")
        if not self.first:
            lines = [head, "  no intermediate tensor differs beyond tolerance; the difference arises in the "
                           "outputs or the code between graphs"]
        else:
            lines = [head, f"  first diverging node{'s' if len(self.first) > 1 else ''}:"]
            lines += [f"  {i + 1}. {d.describe()}" for i, d in enumerate(self.first)]
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {"ref": self.ref, "test": self.test, "method": self.method, "compared": self.compared,
                "candidates": self.candidates, "first": [d.as_dict() for d in self.first], "notes": list(self.notes)}


# -- ONNX: mark every tensor ------------------------------------------------------------
def graph_nodes(model: Any) -> list[tuple[str, str, str]]:
    """(node name, op type, output tensor) for every node output, in the file's order
    (ONNX requires topological order). Unnamed nodes are named after their output."""
    out = []
    for node in model.graph.node:
        for tensor in node.output:
            if tensor:
                out.append((node.name or tensor, node.op_type, tensor))
    return out


def mark_all_outputs(model: Any) -> list[str]:
    """Make every node output a graph output, in place (Polygraphy's `mark all`); returns
    the names added. Types are left to the runtime: ONNX Runtime accepts untyped outputs."""
    from onnx import helper

    have = {o.name for o in model.graph.output}
    added = []
    for _, _, tensor in graph_nodes(model):
        if tensor not in have:
            model.graph.output.append(helper.make_empty_tensor_value_info(tensor))
            have.add(tensor)
            added.append(tensor)
    return added


def onnx_all_tensors(path: Path, feeds: Mapping[str, np.ndarray], device: str = "cpu",
                     threads: int = 1) -> dict[str, np.ndarray]:
    """Run `path` with every intermediate tensor marked as an output."""
    import onnx

    from awml_harness.backends.onnxruntime import OnnxRuntimeRunner

    model = onnx.load(str(path))  # external data next to the file is loaded with it
    mark_all_outputs(model)
    if model.ByteSize() < 1_500_000_000:  # fits a protobuf: straight from memory
        with OnnxRuntimeRunner(model.SerializeToString(), device, threads) as runner:
            return runner.infer(feeds)
    with tempfile.TemporaryDirectory(prefix="awml-localize-") as tmp:
        marked = Path(tmp) / path.name
        onnx.save(model, str(marked), save_as_external_data=True)
        with OnnxRuntimeRunner(marked, device, threads) as runner:
            return runner.infer(feeds)


# -- TensorRT: mark every layer output -----------------------------------------------------
def tensorrt_all_tensors(ctx: ContextLike, spec: BackendSpec, graph_name: str, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Build a debug engine of `graph_name` with every layer output marked (same ONNX
    file and build plan as the deployed engine, never cached) and run it on `feeds`."""
    from awml_harness.backends.tensorrt import TensorRTRunner, cuda_index, require_tensorrt
    from awml_harness.export.tensorrt import build_engine
    from awml_harness.export.trt_settings import plan_builds, trt_major

    trt = require_tensorrt(spec.device)
    policy = ctx.cfg.backend_config.common_config.precision_policy
    plan = plan_builds(policy, trt_major(str(trt.__version__)), ctx.cfg.backend_config, [ctx.graphs[graph_name]],
                       precision=spec.precision)[graph_name]
    onnx_path = ctx.onnx_artifacts(plan.onnx_precision)[graph_name].path
    with tempfile.TemporaryDirectory(prefix="awml-localize-") as tmp:
        name = build_engine(trt, onnx_path, plan, Path(tmp), f"{graph_name}-marked.engine", None,
                            cuda_index(spec.device), mark_all=True)
        with TensorRTRunner(Path(tmp) / name, spec.device) as runner:
            return runner.infer(feeds)


# -- PyTorch: module boundaries ----------------------------------------------------------------
def module_scopes(module: Any) -> list[str]:
    """Dotted paths of the named submodules (the root excluded)."""
    return [name for name, _ in module.named_modules() if name]


def _resolve_scope(parts: list[str], paths: list[str]) -> str | None:
    """A node's name scope (`["backbone", "blocks.0", "blocks.0.0"]`) -> the module path
    (`backbone.blocks.0.0`). The TorchScript exporter names a scope level after the module
    as its nearest non-container ancestor knows it (`blocks.0.0`, or `a` for
    `head["a"]`), so each level is the shortest descendant of the previous one whose path
    ends with it; an ambiguous or unknown level (a wrapper such as `inner`) stops there."""
    cur = ""
    for part in parts:
        found = [p for p in paths if (not cur or p.startswith(cur + ".")) and (p == part or p.endswith("." + part))]
        if not found:
            if not cur:
                continue  # a wrapper around the module (export/onnx.py's `inner`)
            return cur
        best = min(len(p) for p in found)
        shortest = [p for p in found if len(p) == best]
        if len(shortest) > 1:
            return cur or None
        cur = shortest[0]
    return cur or None


def node_owners(node_names: list[str], module: Any) -> dict[str, str]:
    """ONNX node name -> the path of the module whose name scope holds it (TorchScript
    exporter scopes, resolved as module_tensor_map does); "" for the root module (a node
    outside every scope, or whose scope names no module). What the per-node profiles
    (awml_harness/profile/torch.py) time a node's work under."""
    import re

    paths = [p for p, _ in module.named_modules() if p]
    tails = {p.rpartition(".")[2] for p in paths} | set(paths)
    resolved: dict[str, str] = {}
    out = {}
    for node in node_names:
        key = "/".join(node.split("/")[1:-1]) if node.startswith("/") else ""
        if key not in resolved:
            # a module called again gets the scope `<name>_<n>` (TorchScript exporter): its own
            parts = [p if p in tails else re.sub(r"_\d+$", "", p) for p in key.split("/")]
            resolved[key] = (_resolve_scope(parts, paths) if key else None) or ""
        out[node] = resolved[key]
    return out


def module_tensor_map(model: Any, module: Any) -> dict[str, tuple[str, str, str]]:
    """module path -> (node, op type, tensor) of the last ONNX node inside its name scope.

    Scopes come from the TorchScript exporter's node names; the dynamo exporter names nodes
    differently and its modules simply do not map (the reported share says so). A module
    with parameters and no node of its own (a BatchNorm the exporter folded into the
    preceding Conv) makes the module before it unmappable: that node's output is no longer
    the earlier module's alone."""
    named = list(module.named_modules())
    paths = [p for p, _ in named if p]
    nodes = graph_nodes(model)
    owner: dict[str, str | None] = {}
    for node, _, _ in nodes:
        scope = node.split("/")[1:-1] if node.startswith("/") else []
        key = "/".join(scope)
        if key not in owner:
            owner[key] = _resolve_scope(scope, paths) if scope else None
    out: dict[str, tuple[str, str, str]] = {}
    for node, op, tensor in nodes:
        if op == "Constant":
            continue
        path = owner["/".join(node.split("/")[1:-1])] if node.startswith("/") else None
        while path:
            out[path] = (node, op, tensor)  # later nodes overwrite: the last one is the output
            path = path.rpartition(".")[0]
    leaves = [(p, m) for p, m in named if p and not any(True for _ in m.children())]
    for i, (path, mod) in enumerate(leaves):
        has_params = any(True for _ in mod.parameters(recurse=False))
        if path not in out and has_params and i > 0:
            out.pop(leaves[i - 1][0], None)
    return out


def torch_module_outputs(module: Any, input_names: tuple[str, ...], feeds: Mapping[str, np.ndarray],
                         paths: list[str]) -> dict[str, np.ndarray]:
    """module path -> its output on `feeds` (first tensor of a tuple). A module called more
    than once is left out: which call an ONNX tensor belongs to is ambiguous."""
    import torch

    seen: dict[str, list[np.ndarray]] = {}
    named = dict(module.named_modules())

    def hook_for(path: str) -> Any:
        def hook(_mod: Any, _inp: Any, out: Any) -> None:
            while isinstance(out, (tuple, list)) and out:
                out = out[0]
            if isinstance(out, torch.Tensor):
                seen.setdefault(path, []).append(out.detach().float().cpu().numpy())
        return hook

    handles = [named[p].register_forward_hook(hook_for(p)) for p in paths]
    try:
        with torch.inference_mode():
            module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in input_names])
    finally:
        for h in handles:
            h.remove()
    return {p: v[0] for p, v in seen.items() if len(v) == 1}


# -- comparison ------------------------------------------------------------------------
def first_divergences(graph: str, nodes: list[tuple[str, str, str]], ref: Mapping[str, np.ndarray],
                      test: Mapping[str, np.ndarray], tolerance: ToleranceFn, limit: int = DEFAULT_LIMIT,
                      modules: Mapping[str, str] | None = None) -> tuple[list[Divergence], int]:
    """Walk `nodes` in order; return the first `limit` tensors beyond tolerance and how many
    tensors both sides had. fp16 tensors are compared in float64, like the outputs are."""
    from awml_harness.compare import compare_arrays

    found: list[Divergence] = []
    compared = 0
    for node, op, tensor in nodes:
        if tensor not in ref or tensor not in test:
            continue
        r, t = np.asarray(ref[tensor]), np.asarray(test[tensor])
        compared += 1
        if len(found) >= limit:
            continue
        if r.dtype.kind not in "fiub" or t.dtype.kind not in "fiub":
            continue
        atol, rtol = tolerance(tensor)[:2]
        leaf = compare_arrays(tensor, r, t, atol, rtol)
        if leaf.passed:
            continue
        found.append(Divergence(graph=graph, node=node, op_type=op, tensor=tensor, max_abs_diff=leaf.max_abs_diff,
                                atol=atol, rtol=rtol, mismatches=leaf.mismatches, numel=leaf.numel,
                                ref_value=leaf.worst_ref, test_value=leaf.worst_test, problem=leaf.problem,
                                module=(modules or {}).get(tensor, "")))
    return found, compared


def record_feeds(ctx: ContextLike, spec: BackendSpec, prepared: Any) -> dict[str, dict[str, np.ndarray]]:
    """Run the reference pipeline once, keeping each graph's first feeds (call order)."""
    from awml_harness.project import NullTimer

    runners = ctx.runners(spec)
    feeds: dict[str, dict[str, np.ndarray]] = {}

    def run_graph(name: str, inputs: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        feeds.setdefault(name, {k: np.array(v, copy=True) for k, v in inputs.items()})
        return runners[name].infer(inputs)

    ctx.adapter.forward(prepared, run_graph, NullTimer())
    return feeds


def supported(scenario: Scenario) -> str | None:
    """None when the pair can be localised, else why not."""
    kinds = {scenario.ref_backend.value, scenario.test_backend.value}
    if kinds <= {"pytorch", "onnx", "tensorrt"} and kinds != {"pytorch"}:
        return None
    return f"no localisation for {scenario.label}"


def localize(ctx: ContextLike, scenario: Scenario, prepared: Any, tolerance: ToleranceFn, limit: int = DEFAULT_LIMIT) -> Localization:
    """Compare every intermediate tensor of both sides of `scenario` on `prepared`."""
    import onnx

    why = supported(scenario)
    if why is not None:
        return Localization(scenario.ref.label, scenario.test.label, "none", 0, 0, notes=(why,))
    feeds_by_graph = record_feeds(ctx, scenario.ref, prepared)
    threads = max(1, ctx.thread_policy.intra_op)
    fp32 = ctx.onnx_artifacts("fp32")
    methods: list[str] = []
    notes: list[str] = []
    found: list[Divergence] = []
    compared = candidates = 0
    for graph_name, feeds in feeds_by_graph.items():
        model = onnx.load(str(fp32[graph_name].path), load_external_data=False)
        nodes = graph_nodes(model)
        modules: dict[str, str] = {}
        sides = []
        for spec in (scenario.ref, scenario.test):
            kind = spec.backend.value
            if kind == "onnx":
                sides.append(onnx_all_tensors(ctx.onnx_artifacts(spec.precision)[graph_name].path, feeds,
                                              spec.device, threads))
                methods.append("onnx-mark-all")
            elif kind == "tensorrt":
                sides.append(tensorrt_all_tensors(ctx, spec, graph_name, feeds))
                methods.append("tensorrt-mark-all")
            else:
                graph = ctx.graphs[graph_name]
                paths = module_scopes(graph.module)
                mapping = module_tensor_map(model, graph.module)
                outputs = torch_module_outputs(graph.module, graph.input_names, feeds, list(mapping))
                keyed = {}
                for path, value in outputs.items():
                    tensor = mapping[path][2]
                    keyed[tensor] = value
                    modules[tensor] = path
                sides.append(keyed)
                methods.append("torch-module-hooks")
                notes.append(f"{graph_name}: {len(keyed)} of {len(paths)} PyTorch modules map to an ONNX tensor "
                             "(by exporter name scope, called once)")
        ref, test = sides
        if "torch-module-hooks" in methods[-2:]:
            common = [n for n in nodes if n[2] in modules]
            shape_ok = {t for _, _, t in common if t in ref and t in test and np.shape(ref[t]) == np.shape(test[t])}
            nodes = [n for n in common if n[2] in shape_ok]
            candidates += len(module_scopes(ctx.graphs[graph_name].module))
        else:
            candidates += len(nodes)
        div, n = first_divergences(graph_name, nodes, ref, test, tolerance, limit - len(found), modules)
        found += div
        compared += n
        del sides, ref, test
    method = "+".join(dict.fromkeys(methods))
    return Localization(scenario.ref.label, scenario.test.label, method, compared, candidates, tuple(found),
                        tuple(notes))


def localize_failure(ctx: ContextLike, scenario: Scenario, prepared: Any) -> Localization:
    """--awml-localize after a failed verification: the first diverging nodes under the
    scenario's own tolerances; a localisation that cannot run says why instead (the
    verification failure stays the verdict)."""
    from awml_harness.verification.tolerance import resolve

    try:
        return localize(ctx, scenario, prepared, lambda path: resolve(ctx.cfg.verification, scenario, path).as_tuple())
    except Exception as exc:
        return Localization(scenario.ref.label, scenario.test.label, "none", 0, 0,
                            notes=(f"localisation could not run: {type(exc).__name__}: {exc}",))
