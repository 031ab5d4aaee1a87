"""ONNX graphs as the profiles see them, and what a backend timed attributed to their nodes.

A backend reports time under its own names: ONNX Runtime under the nodes of its
*optimized* graph, TensorRT under layers that fuse several ONNX nodes (`a + b`,
`{ForeignNode[a...b]}`), PyTorch under modules. Everything is brought back to the nodes of
the ONNX file the backend ran, then (`onto_reference`) to the fp32 ONNX graph's, so every
backend's profile has the same rows.

ONNX Runtime's renames (onnxruntime 1.32, measured; README "Per-node profiles"):
- kept names: a node that ran as it is, and a fused node named after its anchor (FusedConv
  keeps the Conv's name, the Relu it absorbed leaves no event);
- `<tensor>_nchwc`: a node of the NCHWc layout region (x86, ORT_ENABLE_ALL) named after the
  output tensor it computes, e.g. a Conv+Relu named after the Relu's output;
- `<node>_token_<n>`: QDQ fusion (QLinearConv from DequantizeLinear -> Conv -> QuantizeLinear);
- `InsertedPrecisionFreeCast_<tensor>`: an fp16 graph on a provider without fp16 kernels,
  upcast to fp32 (the fp16 Convs of an fp16 graph run in fp32 on CPU);
- inserted nodes with no ONNX counterpart (ReorderInput/ReorderOutput, Transpose,
  QuantizeLinear): their time goes to the nearest node that has one, found in the
  optimized graph ORT saves.

Which ONNX nodes a kernel covered: the nodes between tensors that are still visible
(graph inputs, initializers, tensors of the optimized graph, the tensors the kernels are
named after, the outputs of nodes that ran as themselves) form groups; a group's time goes to its principal node (the member whose op
the kernel runs, e.g. the Conv of a FusedConv, else the heaviest op by PRIORITY) and the
others are marked fused into it.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# ops that carry a fused group's time, heaviest first (a group without the kernel's own op)
PRIORITY = ("Conv", "ConvTranspose", "Gemm", "MatMul", "Einsum", "Attention", "LSTM", "GRU", "RNN",
            "ConvInteger", "MatMulInteger", "QLinearConv", "QLinearMatMul", "Resize", "GridSample",
            "MaxPool", "AveragePool", "GlobalAveragePool", "LpPool", "Softmax", "LayerNormalization",
            "InstanceNormalization", "BatchNormalization", "ReduceMean", "ReduceSum", "TopK", "NonMaxSuppression")

#: ONNX Runtime kernels that compute on integers (an int8 node that ran as such)
INTEGER_KERNELS = frozenset({
    "QLinearConv", "QGemm", "QLinearMatMul", "MatMulInteger", "ConvInteger", "QLinearAdd", "QLinearMul",
    "QLinearGlobalAveragePool", "QLinearAveragePool", "QLinearConcat", "QLinearSigmoid", "QLinearLeakyRelu",
    "QLinearSoftmax", "QLinearReduceMean", "QLinearWhere", "QAttention", "DynamicQuantizeMatMul",
    "MatMulIntegerToFloat", "DynamicQuantizeLSTM", "QOrderedMatMul", "QLinearConvTranspose"})
#: layout, cast and quantization kernels a runtime inserts: never a node's own work
CONVERSIONS = frozenset({"Cast", "ReorderInput", "ReorderOutput", "Transpose", "QuantizeLinear",
                         "DequantizeLinear", "DynamicQuantizeLinear", "Reformat", "MemcpyToHost", "MemcpyFromHost"})
#: ops a kernel can absorb after its output (ORT's NCHWc Conv takes a following Add and Relu)
ELEMENTWISE = frozenset({"Add", "Sub", "Mul", "Div", "Sum", "Relu", "LeakyRelu", "Sigmoid", "HardSigmoid", "Tanh",
                         "Clip", "HardSwish", "Elu", "Selu", "Softplus", "PRelu", "Gelu", "Erf", "Neg", "Abs"})
_FAMILY = {"Upsample": "Resize", "NhwcMaxPool": "MaxPool", "QGemm": "Gemm", "DynamicQuantizeMatMul": "MatMul",
           "MatMulIntegerToFloat": "MatMul", "MatMulInteger": "MatMul", "ConvInteger": "Conv",
           "QAttention": "Attention", "QOrderedMatMul": "MatMul"}
_TOKEN = re.compile(r"(.+)_token_\d+")
_CAST_PREFIX = "InsertedPrecisionFreeCast_"
_DTYPES = {"float": "fp32", "float32": "fp32", "double": "fp64", "float16": "fp16", "bfloat16": "bf16",
           "int8": "int8", "uint8": "int8", "int32": "int32", "int64": "int64", "bool": "bool",
           "float8e4m3fn": "fp8", "float8e5m2": "fp8", "int4": "int4", "uint4": "int4"}


def family(op: str) -> str:
    """The ONNX op a kernel runs: FusedConv, QLinearConv, NhwcFusedConv -> Conv; Upsample -> Resize."""
    if op in _FAMILY:
        return _FAMILY[op]
    for prefix in ("QLinear", "Nhwc", "Fused"):
        op = op.removeprefix(prefix)
    return _FAMILY.get(op, op)


def is_integer_kernel(op: str, input_dtype: str | None = None) -> bool:
    """An integer kernel: ORT's QLinear*/QGemm/*Integer ops, or a compute op (not a
    conversion) reading 8-bit integers (NhwcMaxPool on uint8)."""
    if op in INTEGER_KERNELS:
        return True
    return input_dtype in ("int8", "uint8") and op not in CONVERSIONS


def precision_of(dtype: str | None) -> str | None:
    """An ONNX Runtime profile dtype name (`float`, `float16`, `uint8`) -> fp32/fp16/int8/..."""
    if dtype is None:
        return None
    return _DTYPES.get(dtype.lower(), dtype.lower())


@dataclass(frozen=True)
class OnnxNode:
    name: str
    op_type: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class NodeGraph:
    """The nodes of one ONNX graph in file (topological) order, Constants left out (their
    outputs count as initializers), with producer/consumer look-ups. Unnamed nodes are
    named `<op_type>_<index in the file>`."""

    nodes: tuple[OnnxNode, ...]
    inputs: frozenset[str] = frozenset()
    outputs: frozenset[str] = frozenset()
    initializers: frozenset[str] = frozenset()
    index: Mapping[str, int] = field(init=False, repr=False)
    producer: Mapping[str, str] = field(init=False, repr=False)
    consumers: Mapping[str, tuple[str, ...]] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        index = {n.name: i for i, n in enumerate(self.nodes)}
        producer: dict[str, str] = {}
        consumers: dict[str, list[str]] = {}
        for n in self.nodes:
            for t in n.outputs:
                producer.setdefault(t, n.name)
            for t in n.inputs:
                if t:
                    consumers.setdefault(t, []).append(n.name)
        object.__setattr__(self, "index", index)
        object.__setattr__(self, "producer", producer)
        object.__setattr__(self, "consumers", {t: tuple(c) for t, c in consumers.items()})

    @classmethod
    def from_onnx(cls, model: Any) -> NodeGraph:
        g = model.graph
        nodes: list[OnnxNode] = []
        constants: set[str] = set()
        seen: set[str] = set()
        for i, n in enumerate(g.node):
            if n.op_type == "Constant" and n.domain in ("", "ai.onnx"):
                constants.update(t for t in n.output if t)
                continue
            name = n.name or f"{n.op_type}_{i}"
            if name in seen:  # ONNX does not require unique names; rows must be
                name = f"{name}#{i}"
            seen.add(name)
            nodes.append(OnnxNode(name, n.op_type, tuple(n.input), tuple(t for t in n.output if t)))
        init = {t.name for t in g.initializer} | constants
        return cls(tuple(nodes), frozenset(i.name for i in g.input if i.name not in init),
                   frozenset(o.name for o in g.output), frozenset(init))

    @classmethod
    def load(cls, path: Any) -> NodeGraph:
        import onnx

        return cls.from_onnx(onnx.load(str(path), load_external_data=False))

    def op(self, name: str) -> str:
        return self.nodes[self.index[name]].op_type

    def neighbours(self, name: str, through: Collection[str] | None = None) -> list[tuple[str, bool]]:
        """(node, upstream?) next to `name` over its tensors (initializers excluded; with
        `through`, only over those tensors), producers first."""
        node = self.nodes[self.index[name]]
        out = [(self.producer[t], True) for t in node.inputs
               if t in self.producer and t not in self.initializers and (through is None or t in through)]
        out += [(c, False) for t in node.outputs if through is None or t in through
                for c in self.consumers.get(t, ())]
        return out


def principal(graph: NodeGraph, members: Iterable[str], families: Collection[str] = ()) -> str:
    """The member that carries a group's time: one whose op is a kernel's (`families`),
    else the heaviest op by PRIORITY, else the first in graph order."""
    ordered = sorted(dict.fromkeys(members), key=lambda m: graph.index.get(m, 1 << 30))
    for m in ordered:
        if graph.op(m) in families:
            return m
    rank = {op: i for i, op in enumerate(PRIORITY)}
    return min(ordered, key=lambda m: (rank.get(graph.op(m), len(PRIORITY)), graph.index[m]))


def resolve(graph: NodeGraph, name: str) -> tuple[str | None, bool]:
    """An ONNX Runtime kernel name -> (the ONNX node it names, whether it was named after a
    tensor that node produces). None when the name is an inserted node's."""
    if name in graph.index:
        return name, False
    base = name
    for _ in range(4):
        token = _TOKEN.fullmatch(base)
        base = token.group(1) if token else base
        base = base.removesuffix("/duplicated").removesuffix("_nchwc").removeprefix(_CAST_PREFIX)
        if base in graph.index:
            return base, False
        if base in graph.producer:
            return graph.producer[base], True
    return None, False


@dataclass(frozen=True)
class Attribution:
    """Kernel -> the node whose row carries its time (None: no ONNX node found); node ->
    (the node it was merged into, how: "fused" into a kernel, "folded": no kernel ran it)."""

    target: Mapping[str, str | None]
    merged: Mapping[str, tuple[str, str]]


def attribute(graph: NodeGraph, kernels: Mapping[str, str], visible: Collection[str] | None = None,
              optimized: NodeGraph | None = None) -> Attribution:
    """Attribute ONNX Runtime kernels (name -> op_name) to the nodes of `graph`, the file
    the session loaded. `visible`: the tensor names left in the optimized graph (ORT's
    `optimized_model_filepath`), `optimized`: that graph, for inserted kernels."""
    anchors: dict[str, list[str]] = {}  # node -> kernels named after it
    attached: dict[str, str] = {}  # inserted kernel named after a node's tensor -> that node
    boundary = set(graph.inputs | graph.outputs | graph.initializers)
    boundary.update(_strip(t) for t in (visible or ()))
    for k, op in kernels.items():
        node, by_tensor = resolve(graph, k)
        if node is None:
            continue
        if by_tensor and op in CONVERSIONS and graph.op(node) != op:
            attached[k] = node  # e.g. an InsertedPrecisionFreeCast_<tensor> Cast
            continue
        anchors.setdefault(node, []).append(k)
        if by_tensor:
            boundary.add(_strip(k.removesuffix("_nchwc")))
        elif op == graph.op(node):  # ran as itself (not FusedConv, QLinearConv): its outputs exist
            boundary.update(graph.nodes[graph.index[node]].outputs)
    owner = _nearest_anchor(graph, set(anchors), boundary)
    _absorbed(graph, owner, boundary)
    groups: dict[str, list[str]] = {}
    for node, anchor in owner.items():
        groups.setdefault(anchor, []).append(node)
    head: dict[str, str] = {}
    merged: dict[str, tuple[str, str]] = {}
    for anchor, members in groups.items():
        fams = {family(kernels[k]) for k in anchors[anchor]} - CONVERSIONS
        best = principal(graph, members, fams)
        head[anchor] = best
        merged.update({m: (best, "fused") for m in members if m != best})
    for n in graph.nodes:
        if n.name not in owner:
            merged[n.name] = (n.name, "folded")
    target: dict[str, str | None] = {}
    for anchor, ks in anchors.items():
        target.update({k: head[anchor] for k in ks})
    for k, node in attached.items():
        target[k] = head.get(owner.get(node, ""), node)
    for k in kernels:
        if k not in target:
            target[k] = _via_optimized(k, optimized, target)
    return Attribution(target, merged)


def _strip(tensor: str) -> str:
    return tensor.removeprefix(_CAST_PREFIX)


def _nearest_anchor(graph: NodeGraph, anchors: set[str], boundary: set[str]) -> dict[str, str]:
    """node -> the anchor it belongs to: breadth first from every anchor over tensors that
    are not visible (the inside of a fused kernel); at equal distance the upstream anchor."""
    internal = {t for t in graph.producer if t not in boundary}
    owner = {a: a for a in anchors}
    frontier = sorted(anchors, key=lambda a: graph.index[a])
    while frontier:
        nxt: list[str] = []
        for node in frontier:
            for other, _ in graph.neighbours(node, internal):
                if other not in owner:
                    owner[other] = owner[node]
                    nxt.append(other)
        frontier = nxt
    return owner


def _absorbed(graph: NodeGraph, owner: dict[str, str], boundary: set[str]) -> None:
    """Elementwise nodes no kernel was named after, reading an attributed node's output: the
    kernel that produced that output absorbed them (an NCHWc Conv named after its own
    output also ran the Add and Relu after it). The latest such producer takes them, in
    graph order; anything else left unowned was folded away."""
    for n in graph.nodes:
        if n.name in owner or n.op_type not in ELEMENTWISE:
            continue
        producers = [graph.producer[t] for t in n.inputs if t in graph.producer and graph.producer[t] in owner]
        if producers:
            owner[n.name] = owner[max(producers, key=lambda p: graph.index[p])]


def _via_optimized(kernel: str, optimized: NodeGraph | None, target: Mapping[str, str | None]) -> str | None:
    """An inserted kernel (a layout reorder, a Transpose) -> the nearest kernel in the
    optimized graph that has a node, upstream first at equal distance."""
    if optimized is None or kernel not in optimized.index:
        return None
    seen = {kernel}
    queue = deque([kernel])
    while queue:
        node = queue.popleft()
        for other, _ in optimized.neighbours(node):
            if other in seen:
                continue
            if target.get(other) is not None:
                return target[other]
            seen.add(other)
            queue.append(other)
    return None


def onto_reference(variant: NodeGraph, reference: NodeGraph) -> dict[str, str | None]:
    """Each node of a variant graph (the fp16 or int8 file) -> the reference (fp32) node it
    stands for: the node of the same name, else (a Cast, a Q/DQ node the conversion
    inserted) the nearest node that has one, upstream first at equal distance."""
    out: dict[str, str | None] = {n.name: n.name for n in variant.nodes if n.name in reference.index}
    for n in variant.nodes:
        if n.name in out:
            continue
        seen, frontier, found = {n.name}, [n.name], None
        while frontier and found is None:
            nxt = []
            for node in frontier:
                for other, _ in variant.neighbours(node):
                    if other in seen:
                        continue
                    if other in reference.index:
                        found = other
                        break
                    seen.add(other)
                    nxt.append(other)
                if found is not None:
                    break
            frontier = nxt
        out[n.name] = found
    return out


def split_members(graph: NodeGraph, names: Sequence[str]) -> list[str]:
    """The nodes of `graph` among `names`, in graph order, once each."""
    return sorted({n for n in names if n in graph.index}, key=lambda n: graph.index[n])
