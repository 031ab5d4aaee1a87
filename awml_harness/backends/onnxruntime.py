"""ONNX Runtime runner: full graph optimizations (the seed disabled them), CPU or CUDA EP.

Intra-op thread spinning is off by default: ORT's pool otherwise keeps busy-waiting on
every core after a run, and the other backends in the same process (PyTorch on CPU
between ONNX calls in verification and evaluation) ran 6-10x slower on a 2-core machine
(benchmarks/, P1). `spinning=True` restores ORT's default (lowest ORT-only latency)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable, BaseRunner

if TYPE_CHECKING:  # pragma: no cover
    from onnxruntime import InferenceSession


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


def static_input_bytes(model: Path | bytes) -> int:
    """Bytes of the graph inputs (read without weights); -1 when an axis is dynamic."""
    import onnx
    from onnx import helper

    loaded = (onnx.load_from_string(model) if isinstance(model, bytes)
              else onnx.load(str(model), load_external_data=False))
    init = {i.name for i in loaded.graph.initializer}
    total = 0
    for v in loaded.graph.input:
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


class OnnxRuntimeRunner(BaseRunner):
    """One ONNX model in ONNX Runtime. `model` is a file path, the model's bytes, an
    `InferenceSession` already made (used as is, and not closed here), or a callable
    returning one (called on activation)."""

    def __init__(self, model: Path | str | bytes | Any, device: str = "cpu", threads: int = 0, name: str = "onnx",
                 spinning: bool = False, inter_op: int = 0) -> None:
        super().__init__(f"{name}:{device}")
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendUnavailable("onnxruntime is not installed") from None
        self._ort = ort
        self.model = Path(model) if isinstance(model, str) else model
        self.device, self.threads, self.spinning, self.inter_op = device, threads, spinning, inter_op
        self.session: InferenceSession | None = None
        self._owned = False

    def activate_impl(self) -> None:
        ort, model = self._ort, self.model
        if isinstance(model, (Path, bytes)):
            arena = 0 <= static_input_bytes(model) < ARENA_MAX_INPUT_BYTES
            opts = session_options(self.threads, self.spinning, self.inter_op, arena)
            source = str(model) if isinstance(model, Path) else model
            self.session = ort.InferenceSession(source, sess_options=opts, providers=providers_for(self.device))
            self._owned = True
        elif isinstance(model, ort.InferenceSession):
            self.session, self._owned = model, False
        elif callable(model):
            self.session, self._owned = model(), True
        else:
            raise TypeError(f"{self.name}: a model path, model bytes, an InferenceSession or a loader; "
                            f"got {type(model).__name__}")
        self.input_names = tuple(i.name for i in self.session.get_inputs())
        self.output_names = tuple(o.name for o in self.session.get_outputs())
        self._input_types = {i.name: i.type for i in self.session.get_inputs()}

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        inputs = {}
        for n in self.input_names:
            arr = feeds[n]
            if self._input_types[n] == "tensor(float16)" and arr.dtype != np.float16:
                arr = arr.astype(np.float16)
            inputs[n] = arr
        outs = self.session.run(list(self.output_names), inputs)
        return dict(zip(self.output_names, outs, strict=False))

    def deactivate_impl(self) -> None:
        self.session = None  # an owned session is freed with its last reference
