"""Deploy config -> TensorRT build settings, as plain data (no tensorrt, no torch).

Everything that decides *what* engine gets built lives here, so it can be unit-tested
on a CPU machine and hashed into the engine's artifact key; `export/tensorrt.py` only
replays a `BuildPlan` against the TensorRT API.

Precision policies (seed names) per TensorRT major version. Builder flags are the
`tensorrt.BuilderFlag` member names:

    policy          TensorRT 10.x                        TensorRT 11.x
    auto            weakly typed fp32, no flags           strongly typed fp32 network
    fp16            BuilderFlag FP16 (weak typing)        fp16 ONNX conversion, then strongly typed
    fp32_tf32       BuilderFlag TF32                      strongly typed + TF32
    strongly_typed  STRONGLY_TYPED network, no flags      strongly typed (the only mode in 11)
    int8            Q/DQ ONNX (export/int8.py), strongly typed, no flags   the same
    auto_int8       auto_int8's Q/DQ ONNX, strongly typed, no flags        the same

Why these rules:
- TensorRT 11 removed every weak-typing flag (FP16, BF16, INT8, FP8, INT4, FP4,
  OBEY/PREFER_PRECISION_CONSTRAINTS); a network's precision comes from the tensor types in
  the ONNX graph. Mixed precision therefore needs an fp16 ONNX file first (NVIDIA's
  migration guide names ModelOpt AutoCast; `export/fp16.py` falls back to
  onnxconverter-common with fp32 I/O). In 11 the STRONGLY_TYPED creation flag is accepted
  and ignored, so setting it is harmless there and keeps the plan explicit.
- TF32 is not a weak-typing type but a math mode; `BuilderFlag.TF32` exists in 10 and 11
  and is *enabled by default* in both ("Allow (but not require) ... TF32 ... Enabled by
  default"). `auto` means "TensorRT decides" (the seed's wording), so it keeps that
  default and may use TF32 kernels on Ampere and newer; verification tolerances for
  tensorrt should allow for that. `fp32_tf32` sets the flag explicitly so the intent
  survives a change of TensorRT's default and shows in the artifact key.
- A backend spec with precision "fp16" (evaluation backend `tensorrt-fp16`) asks for an
  fp16 engine whatever the configured policy: auto/fp32_tf32 become fp16, and
  strongly_typed becomes "fp16 ONNX + strongly typed build" on both majors.
- int8 is explicit quantization only: the engine is built from the Q/DQ ONNX the harness
  verified on CPU (its key holds that artifact's key), never with an implicit calibrator
  (deprecated in 10.1, removed in 11 with BuilderFlag.INT8). Strongly typed on 10.x too,
  because TensorRT's explicit-quantization guide says to use strong typing and no
  precision flags, and because then the engine computes what the verified ONNX states:
  int8 where the Q/DQ pairs are, fp32 elsewhere. The weakly typed alternative
  (INT8 + FP16 flags, as AWML's "int8" policy sets FP16) would let TensorRT move the
  unquantized layers to fp16 unverified, and weak typing is deprecated since 10.12. A
  spec with precision "int8" (`tensorrt-int8`) asks for it whatever the policy (auto_int8
  keeps its own graphs); an "int8"/"auto_int8" policy builds int8 for a plain `tensorrt`.

Optimization profiles come from `backend_config.model_inputs` (one entry per profile).
Names are matched per graph, so one entry may list inputs of several graphs (a two-graph
pillar detector: its voxel encoder's and its backbone's inputs); a key may also be qualified `<graph>.<input>`
when two graphs share an input name. An entry naming none of a graph's inputs is for
another graph. Inputs an entry does not name take the graph's own profile entry
(`Graph.profiles`), else the static example shape. Without any entry for a graph the
graph's profiles are used, else one static profile from the example inputs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

# moved to backends/ (the runner checks the installed version too); still importable from here
from awml_harness.backends.trt_version import SUPPORTED_MAJORS as SUPPORTED_MAJORS
from awml_harness.backends.trt_version import UnsupportedTensorRT as UnsupportedTensorRT
from awml_harness.backends.trt_version import check_major as check_major
from awml_harness.backends.trt_version import trt_major as trt_major
from awml_harness.config.errors import ConfigError

POLICIES = ("auto", "fp16", "fp32_tf32", "strongly_typed", "auto_mixed", "int8", "auto_int8")
INT8_POLICIES = ("int8", "auto_int8")

Shape = tuple[int, ...]
ShapeTriple = tuple[Shape, Shape, Shape]


@dataclass(frozen=True)
class BuildPlan:
    """Everything the engine builder is told, for one graph."""

    graph: str
    policy: str  # the effective policy, after the backend precision was applied
    trt_major: int
    flags: tuple[str, ...]  # tensorrt.BuilderFlag member names to set
    strongly_typed: bool  # create the network with NetworkDefinitionCreationFlag.STRONGLY_TYPED
    convert_fp16: bool  # build from the mixed-precision fp16 ONNX instead of the fp32 one
    workspace_bytes: int  # MemoryPoolType.WORKSPACE limit
    optimization_level: int  # IBuilderConfig.builder_optimization_level
    # one mapping per optimization profile: input name -> (min, opt, max)
    profiles: tuple[Mapping[str, ShapeTriple], ...] = field(default=())
    # auto_mixed on a weakly typed build: ONNX node names whose layers must run in fp32
    # (export/auto_mixed.py's choice plus the always-fp32 operators); filled by build_engines
    fp32_layers: tuple[str, ...] = ()
    quantized: bool = False  # build from the int8 Q/DQ ONNX (policies int8, auto_int8)
    # IBuilderConfig.profiling_verbosity (tensorrt.ProfilingVerbosity member): DETAILED keeps
    # each layer's type, formats, tactic and ONNX origin in the engine, which the engine
    # inspector reports and the per-node profiles read (awml_harness/profile/tensorrt.py);
    # TensorRT's default, LAYER_NAMES_ONLY, keeps names only. It changes what the engine
    # records, not the kernels TensorRT picks.
    profiling_verbosity: str = "DETAILED"

    @property
    def onnx_precision(self) -> str:
        """Which ONNX artifact the build starts from (`ProjectContext.onnx_artifacts`)."""
        return "int8" if self.quantized else "fp16" if self.convert_fp16 else "fp32"

    def as_dict(self) -> dict[str, Any]:
        """JSON data for the artifact key and the metrics JSON."""
        return {
            "graph": self.graph, "policy": self.policy, "trt_major": self.trt_major, "flags": list(self.flags),
            "strongly_typed": self.strongly_typed, "convert_fp16": self.convert_fp16,
            "workspace_bytes": self.workspace_bytes, "optimization_level": self.optimization_level,
            "profiles": [{n: [list(s) for s in triple] for n, triple in p.items()} for p in self.profiles],
            "fp32_layers": list(self.fp32_layers), "quantized": self.quantized,
            "profiling_verbosity": self.profiling_verbosity,
        }


def _precision_settings(policy: str, major: int, precision: str) -> tuple[str, tuple[str, ...], bool, bool]:
    """(effective policy, flags, strongly_typed, convert_fp16)."""
    if policy not in POLICIES:
        raise ConfigError("backend_config.common_config.precision_policy", policy, f"one of {list(POLICIES)}")
    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"backend precision must be 'fp32', 'fp16' or 'int8', got {precision!r}")
    check_major(major)
    if precision == "int8" and policy not in INT8_POLICIES:
        policy = "int8"
    if precision == "fp16" and policy != "auto_mixed":  # auto_mixed is fp16 already, with its fp32 nodes
        if policy == "strongly_typed":
            return "strongly_typed", (), True, True
        policy = "fp16"
    if policy in INT8_POLICIES:  # explicit quantization: the Q/DQ ONNX, strongly typed (module docstring)
        return policy, (), True, False
    if major == 10:
        table: dict[str, tuple[tuple[str, ...], bool, bool]] = {
            "auto": ((), False, False),
            "fp16": (("FP16",), False, False),
            "fp32_tf32": (("TF32",), False, False),
            "strongly_typed": ((), True, False),
            "auto_mixed": (("FP16", "OBEY_PRECISION_CONSTRAINTS"), False, False),
        }
    else:  # 11: no weak typing left; every network is strongly typed
        table = {
            "auto": ((), True, False),
            "fp16": ((), True, True),
            "fp32_tf32": (("TF32",), True, False),
            "strongly_typed": ((), True, False),
            "auto_mixed": ((), True, True),
        }
    flags, strongly_typed, convert = table[policy]
    return policy, flags, strongly_typed, convert


def _graph_inputs(graph: Any) -> dict[str, Shape]:
    return {n: tuple(int(d) for d in graph.example_inputs[n].shape) for n in graph.input_names}


def _entry_shapes(entry: Any, graph: Any) -> dict[str, tuple[str, Any]]:
    """The shapes of `entry` (a ModelInputs) that belong to `graph`: input -> (config key, ProfileShape)."""
    from awml_harness.graph import profile_input

    out: dict[str, tuple[str, Any]] = {}
    for key, shape in entry.input_shapes.items():
        name = profile_input(key, graph.name, graph.input_names)
        if name is not None:
            out[name] = (key, shape)
    return out


def _check_triple(key: str, triple: ShapeTriple, rank: int, where: str) -> ShapeTriple:
    lo, mid, hi = triple
    value = {"min": list(lo), "opt": list(mid), "max": list(hi)}
    if not len(lo) == len(mid) == len(hi) == rank:
        raise ConfigError(key, value, f"min/opt/max shapes of rank {rank}, the rank of {where}")
    for a, b, c in zip(lo, mid, hi, strict=True):
        if not 0 < a <= b <= c:
            raise ConfigError(key, value, "0 < min <= opt <= max in every dimension")
    return triple


def resolve_profiles(backend_config: Any, graph: Any) -> tuple[dict[str, ShapeTriple], ...]:
    """Optimization profiles of one graph, every input filled (see the module docstring)."""
    inputs = _graph_inputs(graph)
    graph_profiles = [
        {n: (tuple(r.min), tuple(r.opt), tuple(r.max)) for n, r in p.items()} for p in graph.profiles
    ]

    def fallback(index: int, name: str) -> ShapeTriple:
        if graph_profiles:
            p = graph_profiles[min(index, len(graph_profiles) - 1)]
            if name in p:
                return p[name]
        s = inputs[name]
        return (s, s, s)

    profiles: list[dict[str, ShapeTriple]] = []
    for i, entry in enumerate(backend_config.model_inputs):
        mine = _entry_shapes(entry, graph)
        if not mine:
            continue
        prof: dict[str, ShapeTriple] = {}
        for name in graph.input_names:
            if name in mine:
                key, ps = mine[name]
                triple = (tuple(ps.min_shape), tuple(ps.opt_shape), tuple(ps.max_shape))
                prof[name] = _check_triple(f"backend_config.model_inputs[{i}].input_shapes.{key}", triple,
                                           len(inputs[name]), f"input {name!r} of graph {graph.name!r} {list(inputs[name])}")
            else:
                prof[name] = fallback(len(profiles), name)
        profiles.append(prof)
    if not profiles:
        count = max(1, len(graph_profiles))
        profiles = [{name: fallback(k, name) for name in graph.input_names} for k in range(count)]
    for k, prof in enumerate(profiles):  # graph-derived shapes: a project bug, reported as such
        for name, triple in prof.items():
            try:
                _check_triple(name, triple, len(inputs[name]), "its example input")
            except ConfigError as exc:
                raise ValueError(f"graph {graph.name!r} profile {k} input {name!r}: {exc.allowed}, got {exc.value}") from None
    return tuple(profiles)


def check_profile_names(backend_config: Any, graphs: Iterable[Any]) -> None:
    """A profile key that names no input of any graph is a typo: say which inputs exist."""
    graphs = list(graphs)
    from awml_harness.graph import profile_input

    for i, entry in enumerate(backend_config.model_inputs):
        for key in entry.input_shapes:
            if not any(profile_input(key, g.name, g.input_names) for g in graphs):
                raise ConfigError(f"backend_config.model_inputs[{i}].input_shapes.{key}", key,
                                  f"an input of the exported graphs {sorted(n for g in graphs for n in g.input_names)} "
                                  "(or '<graph>.<input>')")


def plan_build(policy: str, trt_major: int, backend_config: Any, graph: Any, *, precision: str = "fp32") -> BuildPlan:
    """The build settings for `graph`: precision rules, workspace, level, profiles."""
    effective, flags, strongly_typed, convert = _precision_settings(policy, trt_major, precision)
    quantized = effective in INT8_POLICIES
    common = backend_config.common_config
    if common.max_workspace_size <= 0:
        raise ConfigError("backend_config.common_config.max_workspace_size", common.max_workspace_size,
                          "a positive byte count")
    return BuildPlan(
        graph=graph.name, policy=effective, trt_major=trt_major, flags=flags, strongly_typed=strongly_typed,
        convert_fp16=convert, quantized=quantized, workspace_bytes=int(common.max_workspace_size),
        optimization_level=int(common.builder_optimization_level),
        profiles=resolve_profiles(backend_config, graph),
    )


def plan_builds(policy: str, trt_major: int, backend_config: Any, graphs: Iterable[Any], *,
                precision: str = "fp32") -> dict[str, BuildPlan]:
    """`plan_build` for every graph, after checking that each profile key names a real input."""
    graphs = list(graphs)
    check_profile_names(backend_config, graphs)
    return {g.name: plan_build(policy, trt_major, backend_config, g, precision=precision) for g in graphs}
