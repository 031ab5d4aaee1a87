"""ONNX Runtime runner: full graph optimizations (the seed disabled them), CPU or CUDA EP.

Intra-op thread spinning is off by default: ORT's pool otherwise keeps busy-waiting on
every core after a run, and the other backends in the same process (PyTorch on CPU
between ONNX calls in verification and evaluation) ran 6-10x slower on a 2-core machine
(benchmarks/, P1). `spinning=True` restores ORT's default (lowest ORT-only latency)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable, check_feeds


def providers_for(device: str) -> list:
    import onnxruntime as ort

    available = ort.get_available_providers()
    if device == "cpu":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise BackendUnavailable(
            f"onnx on {device} needs onnxruntime's CUDAExecutionProvider (install the [gpu] extra: "
            f"onnxruntime-gpu); this onnxruntime {ort.__version__} offers {available}"
        )
    index = int(device.split(":")[1]) if ":" in device else 0
    return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]


# Inputs this large mean activations of hundreds of MB: ONNX Runtime's CPU arena then
# grows in powers of two and keeps its peak for the session's life (full-size CenterPoint
# backbone: 1.7 GB peak with the arena, 1.0 GB without; several sessions alive at once
# took the run to 4.6 GB, issue 16 P8). Inputs with dynamic axes (CenterPoint's voxel
# count) can be that large too and reuse the arena poorly. Small static models keep it.
ARENA_MAX_INPUT_BYTES = 32 << 20


def static_input_bytes(path: Path) -> int:
    """Bytes of the graph inputs (read without weights); -1 when an axis is dynamic."""
    import onnx
    from onnx import helper

    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}
    total = 0
    for v in model.graph.input:
        if v.name in init:
            continue
        t = v.type.tensor_type
        n = 1
        for d in t.shape.dim:
            if d.dim_value <= 0:
                return -1
            n *= d.dim_value
        total += n * helper.tensor_dtype_to_np_dtype(t.elem_type).itemsize
    return total


def session_options(threads: int = 0, spinning: bool = False, inter_op: int = 0, mem_arena: bool = True) -> Any:
    """Full graph optimizations; the thread policy's pool sizes (0: ORT's default);
    no idle-thread spinning unless asked (spinning ORT threads steal the cores a
    PyTorch backend in the same process needs)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        opts.intra_op_num_threads = threads
    if inter_op:
        opts.inter_op_num_threads = inter_op
    opts.enable_cpu_mem_arena = mem_arena
    opts.log_severity_level = 3
    if not spinning:
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        opts.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return opts


class OnnxRuntimeRunner:
    def __init__(self, path: Path, device: str = "cpu", threads: int = 0, name: str = "onnx",
                 spinning: bool = False, inter_op: int = 0) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed") from None
        self.name = f"{name}:{device}"
        arena = 0 <= static_input_bytes(path) < ARENA_MAX_INPUT_BYTES
        self.session = ort.InferenceSession(str(path), sess_options=session_options(threads, spinning, inter_op, arena),
                                            providers=providers_for(device))
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self._input_types = {i.name: i.type for i in self.session.get_inputs()}

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        check_feeds(self.name, self.input_names, feeds)
        inputs = {}
        for n in self.input_names:
            arr = feeds[n]
            if self._input_types[n] == "tensor(float16)" and arr.dtype != np.float16:
                arr = arr.astype(np.float16)
            inputs[n] = arr
        outs = self.session.run(list(self.output_names), inputs)
        return dict(zip(self.output_names, outs, strict=False))

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
