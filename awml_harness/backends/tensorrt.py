"""TensorRT runner: a serialized engine run with torch-owned CUDA memory and a private stream.

Design, and why:
- The engine is deserialized once. Each optimization profile gets its own execution
  context, created on first use (a context owns activation memory, so profiles nobody
  feeds cost nothing). An input shape selects the first profile whose min/max admit it.
- Device buffers are torch CUDA tensors (no pycuda needed: torch is already there for
  the PyTorch backend, and its caching allocator is faster than cudaMalloc per call).
  pycuda being installed changes nothing; it is never imported. Buffers are flat byte
  tensors grown only when a larger shape arrives, so a steady shape never allocates.
- Work runs on a dedicated `torch.cuda.Stream`; `infer` orders it after the caller's
  current stream and the caller's stream after it, so CUDA events recorded around
  `infer` on the current stream bracket the engine's work, and synchronizes before
  returning host numpy arrays (the Runner contract: when `infer` returns, the device
  is done).
- Outputs whose shape depends on data (-1 left after all input shapes are set) get
  their memory from an `IOutputAllocator` subclass, which also receives the final shape.
- `cuda_graph=True` captures `execute_async_v3` into a CUDA graph and replays it when
  the engine has static shapes and no data-dependent outputs; otherwise it is ignored.
  The first call runs normally (TensorRT's advice: enqueue once before capturing).

TensorRT Python API used here (present in the 10.x and 11.x references):
    tensorrt.__version__, tensorrt.Logger, tensorrt.Logger.WARNING, tensorrt.Runtime,
    Runtime.deserialize_cuda_engine, ICudaEngine.num_io_tensors, ICudaEngine.get_tensor_name,
    ICudaEngine.get_tensor_mode, ICudaEngine.get_tensor_dtype, ICudaEngine.get_tensor_shape,
    ICudaEngine.is_shape_inference_io, ICudaEngine.num_optimization_profiles,
    ICudaEngine.get_tensor_profile_shape, ICudaEngine.create_execution_context,
    IExecutionContext.set_optimization_profile_async, IExecutionContext.set_input_shape,
    IExecutionContext.get_tensor_shape, IExecutionContext.set_tensor_address,
    IExecutionContext.set_output_allocator, IExecutionContext.execute_async_v3,
    tensorrt.TensorIOMode.INPUT, tensorrt.DataType member names (FLOAT, HALF, BF16, INT8,
    INT32, INT64, BOOL, UINT8), tensorrt.IOutputAllocator (__init__, reallocate_output,
    reallocate_output_async, notify_shape).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable, BaseRunner

INSTALL_HINT = ("install TensorRT 10.x or 11.x on a CUDA machine: pip install 'tensorrt>=10,<12' "
                "(or the awml-harness[tensorrt] extra), with a CUDA build of torch")


def cuda_index(device: str) -> int:
    if not device.startswith("cuda"):
        raise BackendUnavailable(f"tensorrt runs on CUDA devices only; got device {device!r} (use 'cuda:N')")
    return int(device.split(":")[1]) if ":" in device else 0


def require_tensorrt(device: str) -> Any:
    """The `tensorrt` module, once it is clear that it, CUDA torch and `device` can run an engine.

    Raises BackendUnavailable with the missing piece and how to install it; the suites
    turn that into a skip (a failure under --awml-strict).
    """
    index = cuda_index(device)
    try:
        import tensorrt as trt  # type: ignore[import-not-found]
    except ImportError as exc:
        raise BackendUnavailable(f"tensorrt is not installed ({exc}); {INSTALL_HINT}") from None
    try:
        import torch
    except ImportError:
        raise BackendUnavailable(f"the tensorrt backend needs torch for CUDA memory; {INSTALL_HINT}") from None
    if not torch.cuda.is_available():
        raise BackendUnavailable(
            f"tensorrt {trt.__version__} is installed but torch {torch.__version__} sees no CUDA device "
            "(CPU-only torch build, no driver, or CUDA_VISIBLE_DEVICES hides the GPU)")
    if index >= torch.cuda.device_count():
        raise BackendUnavailable(f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
    from awml_harness.backends.trt_version import trt_major

    trt_major(trt.__version__)  # UnsupportedTensorRT (a BackendUnavailable) for 8.x, 12.x, ...
    return trt


def _torch_dtype(trt_dtype: Any) -> Any:
    import torch

    table = {"FLOAT": torch.float32, "HALF": torch.float16, "BF16": torch.bfloat16, "INT8": torch.int8,
             "INT32": torch.int32, "INT64": torch.int64, "BOOL": torch.bool, "UINT8": torch.uint8}
    name = getattr(trt_dtype, "name", str(trt_dtype).rsplit(".", 1)[-1])
    if name not in table:
        raise BackendUnavailable(f"engine tensor type {name} has no torch equivalent in this runner")
    return table[name]


def _make_output_allocator(trt: Any, device: Any) -> Any:
    """An IOutputAllocator backed by torch byte tensors (class built here: its base needs tensorrt)."""
    import torch

    class TorchOutputAllocator(trt.IOutputAllocator):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.IOutputAllocator.__init__(self)  # required by the pybind base, per NVIDIA's docs
            self.buffers: dict[str, Any] = {}
            self.shapes: dict[str, tuple[int, ...]] = {}

        def reallocate_output(self, tensor_name: str, memory: int, size: int, alignment: int) -> int:
            buf = self.buffers.get(tensor_name)
            if buf is None or buf.numel() < size:
                # called during execute_async_v3, inside the runner's stream context, so the
                # caching allocator ties the block to that stream
                buf = torch.empty(max(int(size), 1), dtype=torch.uint8, device=device)
                self.buffers[tensor_name] = buf
            ptr = buf.data_ptr()
            if alignment and ptr % alignment:
                return 0  # TensorRT reports the failed allocation; torch blocks are 512-byte aligned
            return ptr

        def reallocate_output_async(self, tensor_name: str, memory: int, size: int, alignment: int,
                                    stream: int) -> int:
            return self.reallocate_output(tensor_name, memory, size, alignment)

        def notify_shape(self, tensor_name: str, shape: Any) -> None:
            self.shapes[tensor_name] = tuple(int(d) for d in shape)

    return TorchOutputAllocator()


def _numel(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


class _ProfileSlot:
    """One optimization profile: its context, buffers, current shapes and captured graph."""

    def __init__(self, index: int, context: Any) -> None:
        self.index = index
        self.context = context
        self.buffers: dict[str, Any] = {}  # name -> flat uint8 torch tensor (capacity in bytes)
        self.shapes: dict[str, tuple[int, ...]] | None = None  # input shapes the addresses were set for
        self.out_shapes: dict[str, tuple[int, ...]] = {}
        self.dynamic_outputs: set[str] = set()
        self.allocator: Any = None
        self.graph: Any = None


class TensorRTRunner(BaseRunner):
    """`infer(named host arrays) -> named host arrays` on one serialized engine. `engine`
    is the engine file, its bytes, a deserialized `ICudaEngine` (used as is), or a
    callable returning one; it is deserialized on activation and freed on deactivation."""

    def __init__(self, engine: Path | str | bytes | Any, device: str = "cuda:0", *, cuda_graph: bool = False,
                 name: str = "tensorrt") -> None:
        super().__init__(f"{name}:{device}")
        trt = require_tensorrt(device)
        import torch

        self._trt = trt
        self._torch = torch
        self.source = Path(engine) if isinstance(engine, str) else engine
        self.path = self.source if isinstance(self.source, Path) else Path("<in-memory engine>")
        self.device = torch.device("cuda", cuda_index(device))
        self._want_cuda_graph = cuda_graph
        self.engine: Any = None

    def activate_impl(self) -> None:
        trt, torch = self._trt, self._torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        with torch.cuda.device(self.device):
            source = self.source
            if isinstance(source, (Path, bytes)):
                data = source.read_bytes() if isinstance(source, Path) else source
                self.engine = self._runtime.deserialize_cuda_engine(data)
            elif callable(source) and not hasattr(source, "num_io_tensors"):
                self.engine = source()
            else:
                self.engine = source
            self.stream = torch.cuda.Stream(device=self.device)
        if self.engine is None:
            raise RuntimeError(
                f"{self.name}: TensorRT {trt.__version__} could not deserialize {self.path} (built by another "
                "TensorRT version or for another GPU?); rebuild it with --awml-rebuild")
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        self.input_names = tuple(n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT)
        self.output_names = tuple(n for n in names if n not in self.input_names)
        for n in self.input_names:
            if self.engine.is_shape_inference_io(n):
                raise BackendUnavailable(f"{self.name}: input {n!r} is a shape tensor (host values); "
                                         "this runner feeds device tensors only")
        self._dtypes = {n: _torch_dtype(self.engine.get_tensor_dtype(n)) for n in names}
        self._itemsize = {n: torch.empty((), dtype=d).element_size() for n, d in self._dtypes.items()}
        self._engine_shapes = {n: tuple(self.engine.get_tensor_shape(n)) for n in names}
        self._dynamic_inputs = {n for n in self.input_names if any(d < 0 for d in self._engine_shapes[n])}
        self._ranges = self._profile_ranges()
        self._slots: dict[int, _ProfileSlot] = {}
        static = not self._dynamic_inputs and all(d >= 0 for n in self.output_names for d in self._engine_shapes[n])
        self.cuda_graph = bool(self._want_cuda_graph and static)
        if self._want_cuda_graph and not static:
            warnings.warn(f"{self.name}: cuda_graph ignored; {self.path.name} has dynamic or data-dependent shapes",
                          RuntimeWarning, stacklevel=2)

    # -- profiles ---------------------------------------------------------------------
    def _profile_ranges(self) -> list[dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]]]:
        """Per profile: input -> (min, opt, max). Static inputs admit only their own shape."""
        count = max(1, int(self.engine.num_optimization_profiles))
        out = []
        for k in range(count):
            ranges: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
            for n in self.input_names:
                if n in self._dynamic_inputs:
                    lo, mid, hi = self.engine.get_tensor_profile_shape(n, k)
                    ranges[n] = (tuple(int(d) for d in lo), tuple(int(d) for d in mid), tuple(int(d) for d in hi))
                else:
                    s = self._engine_shapes[n]
                    ranges[n] = (s, s, s)
            out.append(ranges)
        return out

    def select_profile(self, shapes: Mapping[str, tuple[int, ...]]) -> int:
        for k, ranges in enumerate(self._ranges):
            if all(len(shapes[n]) == len(lo) and all(a <= s <= b for a, s, b in zip(lo, shapes[n], hi, strict=True))
                   for n, (lo, _, hi) in ranges.items()):
                return k
        described = "; ".join(
            f"profile {k}: " + ", ".join(f"{n} min {list(lo)} max {list(hi)}" for n, (lo, _, hi) in r.items())
            for k, r in enumerate(self._ranges))
        raise ValueError(f"{self.name}: no optimization profile of {self.path.name} accepts input shapes "
                         f"{ {n: list(s) for n, s in shapes.items()} } ({described}); widen "
                         "backend_config.model_inputs and rebuild the engine")

    def _slot(self, k: int) -> _ProfileSlot:
        if k not in self._slots:
            context = self.engine.create_execution_context()
            if context is None:
                raise RuntimeError(f"{self.name}: could not create an execution context (out of GPU memory?)")
            context.set_optimization_profile_async(k, self.stream.cuda_stream)
            self.stream.synchronize()
            self._slots[k] = _ProfileSlot(k, context)
        return self._slots[k]

    # -- memory -----------------------------------------------------------------------
    def _view(self, slot: _ProfileSlot, name: str, shape: tuple[int, ...]) -> Any:
        """A tensor of `shape` over the slot's buffer for `name`, growing the buffer if needed."""
        torch = self._torch
        dtype = self._dtypes[name]
        nbytes = _numel(shape) * self._itemsize[name]
        buf = slot.buffers.get(name)
        if buf is None or buf.numel() < nbytes:
            buf = torch.empty(max(nbytes, 1), dtype=torch.uint8, device=self.device)
            slot.buffers[name] = buf
            slot.shapes = None  # addresses changed: set them again, drop any captured graph
            slot.graph = None
        return buf[:nbytes].view(dtype).view(shape)

    def _bind(self, slot: _ProfileSlot, shapes: dict[str, tuple[int, ...]]) -> None:
        """Set input shapes, size every buffer and hand TensorRT its addresses."""
        ctx = slot.context
        for n in self.input_names:
            if n in self._dynamic_inputs and not ctx.set_input_shape(n, shapes[n]):
                raise ValueError(f"{self.name}: TensorRT rejected shape {list(shapes[n])} for input {n!r}")
        for n in self.input_names:
            self._view(slot, n, shapes[n])
        slot.out_shapes = {}
        for n in self.output_names:
            shape = tuple(ctx.get_tensor_shape(n))
            if any(d < 0 for d in shape):  # known only after execution
                slot.dynamic_outputs.add(n)
                if slot.allocator is None:
                    slot.allocator = _make_output_allocator(self._trt, self.device)
                ctx.set_output_allocator(n, slot.allocator)
            else:
                slot.out_shapes[n] = shape
                self._view(slot, n, shape)
        for n in self.input_names:
            ctx.set_tensor_address(n, slot.buffers[n].data_ptr())
        for n in slot.out_shapes:
            ctx.set_tensor_address(n, slot.buffers[n].data_ptr())
        slot.shapes = dict(shapes)
        slot.graph = None

    # -- running ----------------------------------------------------------------------
    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        shapes = {n: tuple(int(d) for d in np.shape(feeds[n])) for n in self.input_names}
        slot = self._slot(self.select_profile(shapes))
        caller = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(caller)
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            for n in self.input_names:  # may grow a buffer, which invalidates the bindings
                self._view(slot, n, shapes[n])
            if slot.shapes != shapes:
                self._bind(slot, shapes)
            for n in self.input_names:
                host = torch.from_numpy(np.ascontiguousarray(feeds[n]))
                self._view(slot, n, shapes[n]).copy_(host)  # dtype cast (e.g. fp32 -> fp16 input) on copy
            self._execute(slot)
            outs = {}
            for n in self.output_names:
                if n in slot.dynamic_outputs:
                    shape = slot.allocator.shapes[n]
                    size = _numel(shape) * self._itemsize[n]
                    dev = slot.allocator.buffers[n][:size].view(self._dtypes[n]).view(shape)
                else:
                    dev = self._view(slot, n, slot.out_shapes[n])
                outs[n] = dev.to("cpu")
        caller.wait_stream(self.stream)
        self.stream.synchronize()
        return {n: self._to_numpy(t) for n, t in outs.items()}

    def _execute(self, slot: _ProfileSlot) -> None:
        torch = self._torch
        if slot.graph is not None:
            slot.graph.replay()
            return
        if not slot.context.execute_async_v3(self.stream.cuda_stream):
            raise RuntimeError(f"{self.name}: execute_async_v3 failed on {self.path.name} (see the TensorRT log above)")
        if self.cuda_graph and not slot.dynamic_outputs:
            graph = torch.cuda.CUDAGraph()
            try:
                with torch.cuda.graph(graph, stream=self.stream, capture_error_mode="thread_local"):
                    slot.context.execute_async_v3(self.stream.cuda_stream)
            except RuntimeError as exc:
                warnings.warn(f"{self.name}: CUDA graph capture failed ({exc}); running without it",
                              RuntimeWarning, stacklevel=3)
                self.cuda_graph = False
                return
            slot.graph = graph

    def _to_numpy(self, t: Any) -> np.ndarray:
        if t.dtype == self._torch.bfloat16:  # numpy has no bfloat16
            t = t.float()
        return t.numpy()

    def synchronize(self) -> None:
        self.stream.synchronize()

    def deactivate_impl(self) -> None:
        for slot in self._slots.values():
            slot.graph = None
            slot.buffers.clear()
            slot.context = None
        self._slots.clear()
        self.engine = None
