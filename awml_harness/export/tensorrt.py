"""ONNX -> serialized TensorRT engine, one per graph, cached in the artifact store.

`build_engines(ctx, spec)` plans every graph's build with `trt_settings` (pure data:
precision policy x TensorRT major, workspace, optimization level, profiles), then
builds each plan through `ArtifactStore.get_or_build`. The key holds the source ONNX
artifact's key, the plan, the TensorRT version and the GPU name: an engine is only
valid for the TensorRT version and GPU model that built it, so either changing makes a
new artifact instead of a deserialization failure at run time.

The timing cache (layer tactic timings) is shared by every build of one TensorRT
version on one GPU model: `<work_dir>/artifacts/timing-<trt version>-<gpu>.cache`. It
is read before a build and merged back after it under a file lock, so xdist workers
building different graphs at once keep each other's timings.

Parser failures name the ONNX node that failed (index, name, operator) and the
parser's description, because "In node 17 (parseGraph): INVALID_NODE" alone sends
people to Netron for an hour.

TensorRT Python API used here (present in the 10.x and 11.x references):
    tensorrt.__version__, tensorrt.ILogger (subclassed: __init__, log),
    tensorrt.ILogger.Severity (ERROR, INTERNAL_ERROR, WARNING), tensorrt.Builder,
    Builder.create_network, tensorrt.NetworkDefinitionCreationFlag.STRONGLY_TYPED,
    Builder.create_builder_config, Builder.create_optimization_profile,
    Builder.build_serialized_network, tensorrt.OnnxParser, OnnxParser.parse_from_file,
    OnnxParser.num_errors, OnnxParser.get_error, IParserError.desc, IParserError.node,
    IParserError.node_name, IParserError.node_operator, IParserError.code,
    INetworkDefinition.num_inputs, INetworkDefinition.get_input, ITensor.name, ITensor.shape,
    IBuilderConfig.set_flag, tensorrt.BuilderFlag (TF32; FP16 on 10.x only),
    IBuilderConfig.set_memory_pool_limit, tensorrt.MemoryPoolType.WORKSPACE,
    IBuilderConfig.builder_optimization_level, IBuilderConfig.add_optimization_profile,
    IBuilderConfig.profiling_verbosity, tensorrt.ProfilingVerbosity.DETAILED,
    IOptimizationProfile.set_shape, IBuilderConfig.create_timing_cache,
    IBuilderConfig.set_timing_cache, ITimingCache.combine, ITimingCache.serialize,
    IHostMemory (buffer protocol); for auto_mixed on 10.x: INetworkDefinition.num_layers,
    INetworkDefinition.get_layer, ILayer.name, ILayer.metadata, ILayer.num_outputs,
    ILayer.get_output, ITensor.dtype, ILayer.precision, ILayer.set_output_type,
    tensorrt.float32 / float16, BuilderFlag.OBEY_PRECISION_CONSTRAINTS; for localisation
    builds (mark_all) also ITensor.is_network_output, ITensor.is_shape_tensor, INetworkDefinition.mark_output.
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from awml_harness.export.store import Artifact
from awml_harness.export.trt_settings import BuildPlan, plan_builds, trt_major

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import BackendSpec
    from awml_harness.protocols import ContextLike

ENGINE_FORMAT = 1  # bump when this module changes what it writes


class EngineBuildError(RuntimeError):
    """TensorRT could not parse or build a graph; the message says where and what to change."""


def gpu_name(device: str) -> str:
    import torch

    from awml_harness.backends.tensorrt import cuda_index

    return torch.cuda.get_device_name(cuda_index(device))


def timing_cache_path(root: Path, version: str, gpu: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", gpu).strip("_") or "gpu"
    return Path(root) / f"timing-{version}-{safe}.cache"


def build_engines(ctx: ContextLike, spec: BackendSpec) -> dict[str, Artifact]:
    """Engines for every graph of `ctx` under backend spec `spec` (device, precision)."""
    from awml_harness.backends.tensorrt import cuda_index, require_tensorrt
    from awml_harness.progress import step

    trt = require_tensorrt(spec.device)
    version = str(trt.__version__)
    major = trt_major(version)
    gpu = gpu_name(spec.device)
    policy = ctx.cfg.backend_config.common_config.precision_policy
    plans = plan_builds(policy, major, ctx.cfg.backend_config, ctx.graphs.values(), precision=spec.precision)
    cache = timing_cache_path(ctx.store.root, version, gpu)
    index = cuda_index(spec.device)
    out: dict[str, Artifact] = {}
    if policy == "auto_mixed" and any(not p.convert_fp16 for p in plans.values()):
        ctx.onnx_artifacts("fp16")  # runs (or reuses) the search; its choice pins layers to fp32
        chosen = ctx.auto_mixed
        plans = {n: dataclasses.replace(p, fp32_layers=tuple(chosen["fp32_nodes"].get(n, ()))
                                        + tuple(chosen.get("always_fp32", {}).get(n, ())))
                 for n, p in plans.items()}
    for name, plan in plans.items():
        onnx_art = ctx.onnx_artifacts(plan.onnx_precision)[name]
        key = {"kind": "trt-engine", "format": ENGINE_FORMAT, "onnx": onnx_art.key, "plan": plan.as_dict(),
               "tensorrt": version, "gpu": gpu}
        out[name] = ctx.store.get_or_build(
            f"{name}-trt-{plan.policy}", key,
            step(f"export {ctx.cfg.id} {name} tensorrt {plan.policy} {spec.device}",
                 lambda tmp, a=onnx_art, p=plan: build_engine(trt, a.path, p, tmp, f"{p.graph}.engine", cache, index)),
            rebuild_before=ctx.options.rebuild_before,
        )
    return out


def _collecting_logger(trt: Any) -> Any:
    """A TensorRT logger that prints warnings and keeps errors for the exception message."""

    class CollectingLogger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.Severity.ERROR, trt.ILogger.Severity.INTERNAL_ERROR):
                self.errors.append(msg)
            if severity <= trt.ILogger.Severity.WARNING:
                print(f"[TensorRT] {msg}", flush=True)

    return CollectingLogger()


def parser_errors(parser: Any, onnx_path: Path, version: str) -> str:
    lines = []
    for i in range(parser.num_errors):
        err = parser.get_error(i)
        node = err.node()
        node_name = err.node_name() if hasattr(err, "node_name") else ""
        op = err.node_operator() if hasattr(err, "node_operator") else ""
        where = f"node #{node}" if node >= 0 else "the graph"
        if node_name or op:
            where += f" {node_name!r}" + (f" ({op})" if op else "")
        lines.append(f"  {where}: {err.desc()} [{err.code()}]")
    return (f"TensorRT {version} could not parse {onnx_path}:\n" + "\n".join(lines or ["  (no parser error recorded)"])
            + "\n  check onnx_config.opset_version and whether TensorRT supports these operators "
              "(`polygraphy inspect model --show layers` helps)")


def build_engine(trt: Any, onnx_path: Path, plan: BuildPlan, folder: Path, file_name: str,
                 cache_path: Path | None, device_index: int = 0, *, mark_all: bool = False) -> str:
    """Parse `onnx_path`, apply `plan`, write the serialized engine to `folder/file_name`.
    `mark_all`: every layer output becomes an engine output (mismatch localisation,
    awml_harness/localize.py; Polygraphy's `--trt-outputs mark all`)."""
    import torch

    version = str(trt.__version__)
    logger = _collecting_logger(trt)
    builder = trt.Builder(logger)
    flags = 0
    if plan.strongly_typed:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # from a file, not bytes: external weight files next to the ONNX resolve relative to it
    if not parser.parse_from_file(str(onnx_path)):
        raise EngineBuildError(parser_errors(parser, onnx_path, version))
    if mark_all:
        mark_all_layer_outputs(network)

    config = builder.create_builder_config()
    for flag in plan.flags:
        if not hasattr(trt.BuilderFlag, flag):
            raise EngineBuildError(f"TensorRT {version} has no BuilderFlag.{flag} (policy {plan.policy!r})")
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if plan.fp32_layers:
        pin_fp32_layers(trt, network, plan.fp32_layers, onnx_path)
    if plan.profiling_verbosity and hasattr(trt, "ProfilingVerbosity"):
        config.profiling_verbosity = getattr(trt.ProfilingVerbosity, plan.profiling_verbosity)
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    config.builder_optimization_level = plan.optimization_level

    inputs = {network.get_input(i).name: tuple(network.get_input(i).shape) for i in range(network.num_inputs)}
    for k, prof in enumerate(plan.profiles):
        missing = sorted(set(inputs) - set(prof))
        if missing:
            raise EngineBuildError(f"{onnx_path.name}: inputs {missing} have no shapes in optimization profile {k}; "
                                   f"add them to backend_config.model_inputs[{k}].input_shapes")
        profile = builder.create_optimization_profile()
        for name, (lo, mid, hi) in prof.items():
            if name in inputs:
                profile.set_shape(name, lo, mid, hi)
        config.add_optimization_profile(profile)

    timing = config.create_timing_cache(_read_cache(cache_path))
    config.set_timing_cache(timing, False)
    with torch.cuda.device(device_index):
        serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = "\n".join(f"  {m}" for m in logger.errors[-10:]) or "  (no error logged)"
        raise EngineBuildError(
            f"TensorRT {version} could not build {onnx_path.name} (policy {plan.policy}, profiles "
            f"{[{n: [list(s) for s in t] for n, t in p.items()} for p in plan.profiles]}):\n{detail}\n"
            "  check the profile shapes against the ONNX input shapes and "
            "backend_config.common_config.max_workspace_size")
    (Path(folder) / file_name).write_bytes(memoryview(serialized))
    if cache_path is not None:
        _merge_cache(config, timing, cache_path)
    return file_name


def pin_fp32_layers(trt: Any, network: Any, nodes: tuple[str, ...], onnx_path: Path) -> int:
    """auto_mixed on a weakly typed (TensorRT 10) fp16 build: every layer the ONNX parser
    made from one of `nodes` computes in fp32 (`ILayer.precision`) and writes fp32 float
    outputs (`ILayer.set_output_type`); BuilderFlag.OBEY_PRECISION_CONSTRAINTS in the plan
    makes TensorRT honour both instead of treating them as hints. A layer is the node's
    when its name is the node name or its `metadata` (TensorRT 10 parsers record
    "[ONNX Layer: <node>]") names it. Returns how many layers were pinned."""
    wanted = set(nodes)
    pinned, seen = 0, set()
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        meta = str(getattr(layer, "metadata", "") or "")
        owner = layer.name if layer.name in wanted else next(
            (n for n in re.findall(r"\[ONNX Layer: ([^\]]+)\]", meta) if n in wanted), None)
        if owner is None:
            continue
        seen.add(owner)
        floats = [j for j in range(layer.num_outputs)
                  if layer.get_output(j).dtype in (trt.float32, trt.float16)]
        if not floats:
            continue  # shape/index layers: nothing to pin
        layer.precision = trt.float32
        for j in floats:
            layer.set_output_type(j, trt.float32)
        pinned += 1
    missing = sorted(wanted - seen)
    if missing:
        print(f"[awml] auto_mixed: {len(missing)} fp32 node(s) of {onnx_path.name} have no TensorRT layer of that "
              f"name (folded by the parser?): {missing[:5]}", flush=True)
    return pinned


def mark_all_layer_outputs(network: Any) -> int:
    """Mark every layer's output tensor as a network output; shape tensors (host values,
    which the runner does not feed or fetch) are left alone. Returns how many were marked."""
    marked = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        for j in range(layer.num_outputs):
            tensor = layer.get_output(j)
            if tensor is None or tensor.is_network_output or tensor.is_shape_tensor:
                continue
            network.mark_output(tensor)
            marked += 1
    return marked


def _read_cache(path: Path | None) -> bytes:
    if path is None or not path.is_file():
        return b""
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        return path.read_bytes()


def _merge_cache(config: Any, timing: Any, path: Path) -> None:
    """Merge timings another process saved meanwhile into ours, then replace the file atomically."""
    from filelock import FileLock

    with FileLock(str(path) + ".lock"):
        if path.is_file():
            other = config.create_timing_cache(path.read_bytes())
            timing.combine(other, False)  # False: a cache of another TensorRT/GPU is skipped, not mixed
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        tmp.write_bytes(memoryview(timing.serialize()))
        os.replace(tmp, path)
