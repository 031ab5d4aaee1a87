"""PyTorch per-node profiles: every module call timed on its own, mapped to ONNX nodes.

Why not timers in forward hooks during the forward: measured on the small YOLOX
(320 modules, 217 of them owning ONNX nodes or leaves), hooks on them made the forward
+74 % slower, so the profile would describe a model that does not exist. Instead one
forward runs with pre/post hooks that record the call tree and each call's arguments;
then every call is replayed alone (no hooks: the module's fast path), warm-up first,
`rounds` times each. A call's self time is its time minus its children's; the self
times of all calls add up to the root call, the whole forward (replays are paired by
rank, the fastest of each call with the fastest of its children, so noise does not
make self times negative).

Self time -> ONNX node: through the exporter's name scopes (`awml_harness.localize.
node_owners`), the nodes a module owns directly; the module's principal node carries
its time and the other nodes are `grouped` with it. A leaf module without a node of its
own (a BatchNorm the exporter folded into the Conv before it, a Dropout) adds its time
to the previous leaf's node; a container's own time is spread over the nodes of its
subtree in proportion to their time (replayed alone, children run on warm caches: the
difference is theirs as much as the container's Python), else it is unmapped. A module called twice owns the second call's scope (`upsample_1`). Captured arguments are kept for the replays (one forward's activations) and
replayed in place: an in-place op sees its own output again, which changes values but
not the work done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from awml_harness.profile.nodes import NodeGraph, principal
from awml_harness.profile.rows import GraphTimes

METHOD = "torch-module-replay"


@dataclass
class Call:
    path: str
    parent: int | None
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    children: list[int] = field(default_factory=list)


def capture_calls(module: Any, args: tuple[Any, ...]) -> list[Call]:
    """One forward of `module` with every module call recorded: path, arguments, children."""
    import torch

    calls: list[Call] = []
    stack: list[int] = []

    def pre_for(path: str) -> Callable[..., None]:
        def pre(_mod: Any, a: tuple[Any, ...], kw: dict[str, Any]) -> None:
            parent = stack[-1] if stack else None
            calls.append(Call(path, parent, a, dict(kw)))
            if parent is not None:
                calls[parent].children.append(len(calls) - 1)
            stack.append(len(calls) - 1)
        return pre

    def post(_mod: Any, _a: Any, _kw: Any, _out: Any) -> None:
        stack.pop()

    handles = []
    try:
        for path, mod in module.named_modules():
            handles.append(mod.register_forward_pre_hook(pre_for(path), with_kwargs=True))
            handles.append(mod.register_forward_hook(post, with_kwargs=True))
        with torch.inference_mode():
            module(*args)
    finally:
        for h in handles:
            h.remove()
    return calls


def time_calls(module: Any, calls: list[Call], rounds: int, warmup: int, sync: Callable[[], None]) -> list[list[float]]:
    """Milliseconds of each call replayed alone, `rounds` times after `warmup`, sorted."""
    import torch

    named = dict(module.named_modules())
    out = []
    with torch.inference_mode():
        for c in calls:
            mod = named[c.path]
            for _ in range(warmup):
                mod(*c.args, **c.kwargs)
            times = []
            for _ in range(rounds):
                sync()
                start = time.perf_counter()
                mod(*c.args, **c.kwargs)
                sync()
                times.append((time.perf_counter() - start) * 1e3)
            out.append(sorted(times))
    return out


def call_targets(calls: list[Call], owners: Mapping[str, str], graph: NodeGraph, leaves: set[str]
                 ) -> tuple[list[str | None], dict[str, tuple[str, str]]]:
    """Per call, the node that carries its self time (None for a container without a
    node of its own: spread over its subtree), and the nodes grouped with another
    module's principal node."""
    direct: dict[str, list[str]] = {}
    for node, path in owners.items():
        direct.setdefault(path, []).append(node)
    heads = {path: principal(graph, nodes) for path, nodes in direct.items()}
    merged = {n: (heads[p], "grouped") for p, nodes in direct.items() for n in nodes if n != heads[p]}
    targets: list[str | None] = [None] * len(calls)
    pending: list[int] = []  # leaves without a node before any leaf with one
    last_leaf: str | None = None
    for i, c in enumerate(calls):
        if c.path in heads:
            targets[i] = heads[c.path]
            if c.path in leaves:
                last_leaf = targets[i]
                for j in pending:
                    targets[j] = last_leaf
                pending.clear()
        elif c.path in leaves:
            if last_leaf is None:
                pending.append(i)
            targets[i] = last_leaf
        # else a container: its own time is spread over its subtree (graph_times)
    return targets, merged


def graph_times(graph_name: str, reference: NodeGraph, module: Any, args: tuple[Any, ...], rounds: int, warmup: int,
                sync: Callable[[], None] = lambda: None, precision: str = "fp32") -> GraphTimes:
    from awml_harness.localize import node_owners

    calls = capture_calls(module, args)
    times = time_calls(module, calls, rounds, warmup, sync)
    named = dict(module.named_modules())
    leaves = {p for p, m in named.items() if p and not any(True for _ in m.children())}
    owners = node_owners([n.name for n in reference.nodes], module)
    targets, merged = call_targets(calls, owners, reference, leaves)
    kinds: dict[str, list[str]] = {}
    for i, c in enumerate(calls):
        target = targets[i]
        kind = type(named[c.path]).__name__
        if target is not None and kind not in kinds.setdefault(target, []):
            kinds[target].append(kind)
    per_round, lost = [], []
    for r in range(rounds):
        spread, unplaced = _spread([t[r] for t in times], calls, targets)
        per_round.append(spread)
        lost.append({"<python outside any module with a node>": unplaced} if unplaced > 0 else {})
    info = {n: {"kernels": k, "precision": precision, "integer": False} for n, k in kinds.items()}
    totals = tuple(times[0][r] for r in range(rounds)) if calls else ()
    events = _events(calls, times, targets, named, precision, rounds)
    return GraphTimes(graph_name, reference, tuple(per_round), totals, tuple(lost), merged, info, events, len(calls))


def _spread(ms: list[float], calls: list[Call], targets: list[str | None]) -> tuple[dict[str, float], float]:
    """One round: node -> ms. A call's self time goes to its target; a container's (no
    target) is spread over the nodes of its subtree in proportion to their time: replayed
    alone, children run on warm caches, so the parent's excess is theirs as much as its
    own Python. Children replayed alone can also sum to more than their parent took (noise
    on a loaded machine): the parent's time is the measured whole, so they are scaled down
    to it and a round's nodes always add up to the root call. What has no node anywhere
    below it is returned as unplaced."""
    dist: list[dict[str, float]] = [{} for _ in calls]
    lost = [0.0 for _ in calls]
    for i in range(len(calls) - 1, -1, -1):  # pre-order: children after their parent
        c = calls[i]
        d: dict[str, float] = {}
        away = 0.0
        for j in c.children:
            for node, v in dist[j].items():
                d[node] = d.get(node, 0.0) + v
            away += lost[j]
            dist[j] = {}
        below = sum(ms[j] for j in c.children)
        if below > ms[i] > 0:
            scale = ms[i] / below
            d = {node: v * scale for node, v in d.items()}
            away *= scale
        own = max(0.0, ms[i] - below)
        target = targets[i]
        if target is not None:
            d[target] = d.get(target, 0.0) + own
        elif d:
            total = sum(d.values())
            for node in d:
                d[node] += own * (d[node] / total if total > 0 else 1.0 / len(d))
        else:
            away += own
        dist[i], lost[i] = d, away
    return (dist[0] if calls else {}), (lost[0] if calls else 0.0)


def _events(calls: list[Call], times: list[list[float]], targets: list[str | None], named: Mapping[str, Any],
            precision: str, rounds: int) -> tuple[tuple[Any, ...], ...]:
    """A synthesized timeline per round (the replays ran apart): each call from its
    parent's start, children one after the other, nested as they were called."""
    out = []
    for r in range(rounds):
        starts = {0: 0.0}
        for i, c in enumerate(calls):
            start = starts.get(i, 0.0)
            cursor = start
            for j in c.children:
                starts[j] = cursor
                cursor += times[j][r] * 1e3
            out.append((r, c.path or "<root>", type(named[c.path]).__name__, targets[i], start, times[i][r] * 1e3,
                        precision))
    return tuple(out)


class TorchProfiler:
    """The project's pipeline runs once on the latency runners to capture each graph's
    inputs; `finish` replays each graph module's calls (see the module docstring)."""

    method = METHOD
    forwards = 1

    def __init__(self, runners: Mapping[str, Any], graphs: Mapping[str, NodeGraph], rounds: int, warmup: int) -> None:
        self.runners, self.graphs, self.rounds, self.warmup = runners, graphs, rounds, warmup
        self.feeds: dict[str, dict[str, np.ndarray]] = {}
        self.notes = ["each module call replayed alone with its captured inputs; a module's self time is its "
                      "time minus its children's"]

    def __enter__(self) -> TorchProfiler:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.feeds.clear()

    def begin_forward(self) -> None:
        pass

    def run_graph(self, name: str, feeds: Mapping[str, Any]) -> Mapping[str, Any]:
        self.feeds.setdefault(name, {k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.runners[name].infer(feeds)

    def finish(self, skip: int) -> dict[str, GraphTimes]:
        import torch

        out = {}
        for g, feeds in self.feeds.items():
            runner = self.runners[g]
            device = runner.device
            args = tuple(torch.from_numpy(np.ascontiguousarray(feeds[n])).to(device) for n in runner.input_names)

            def sync(d: Any = device) -> None:
                if d.type == "cuda":
                    torch.cuda.synchronize(d)

            out[g] = graph_times(g, self.graphs[g], runner.module, args, self.rounds, self.warmup, sync)
        return out
