"""PyTorch runner: the very modules that were exported, on cpu or cuda:N."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable, BaseRunner


def flatten_outputs(out: Any, output_names: tuple[str, ...], where: str) -> tuple[Any, ...]:
    """A module's return value -> one tensor per declared output, in the graph's order.

    Accepted: a tensor; a tuple/list (nested ones are flattened depth first); a dict
    whose keys are exactly the output names (taken by name, whatever the dict's order);
    any other dict is flattened by its values in insertion order, like a tuple. The
    ONNX export wraps a module through the same function, so the file's outputs and the
    PyTorch backend's outputs are paired by the same rule."""
    import torch

    if isinstance(out, Mapping) and set(out) == set(output_names) and len(out) == len(output_names):
        out = tuple(out[n] for n in output_names)
    leaves: list[Any] = []
    bad: list[str] = []

    def walk(value: Any, path: str) -> None:
        if isinstance(value, torch.Tensor):
            leaves.append(value)
        elif isinstance(value, Mapping):
            for k, v in value.items():
                walk(v, f"{path}[{k!r}]")
        elif isinstance(value, (tuple, list)):
            for i, v in enumerate(value):
                walk(v, f"{path}[{i}]")
        else:
            bad.append(f"{path or 'the result'} is {type(value).__name__}")

    walk(out, "")
    if bad or len(leaves) != len(output_names):
        found = "; ".join(bad) if bad else f"{len(leaves)} tensor(s)"
        names = ", ".join(output_names)
        raise RuntimeError(
            f"{where}: the module returned {found}, but the graph declares {len(output_names)} output(s) "
            f"({names}); forward() must return a tensor per output: a tuple ({names}) in that order, "
            f"or a dict keyed by exactly those names")
    return tuple(leaves)


class TorchRunner(BaseRunner):
    """The very module that was exported, on cpu or cuda:N. A CUDA runner moves the module
    to its device on activation and back to the CPU on deactivation."""

    def __init__(self, module: Any, input_names: tuple[str, ...], output_names: tuple[str, ...],
                 device: str = "cpu", name: str = "pytorch", threads: Any = None) -> None:
        """`threads`: an awml_harness.threads.ThreadPolicy (None: leave torch as it is)."""
        super().__init__(f"{name}:{device}")
        import torch

        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise BackendUnavailable(f"{device} requested but torch {torch.__version__} sees no CUDA device")
            index = int(device.split(":")[1]) if ":" in device else 0
            if index >= torch.cuda.device_count():
                raise BackendUnavailable(f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        self._torch = torch
        self.device = torch.device(device)
        self.module = module
        self.input_names = input_names
        self.output_names = output_names
        self._threads = threads
        self._intra_op = threads.intra_op if threads is not None else 0

    def activate_impl(self) -> None:
        torch = self._torch
        if self.device.type == "cuda":
            # fp32 means fp32: PyTorch's default TF32 convolutions differ from CPU by ~1e-3
            # relative, which would blur every cpu-vs-cuda comparison. Process-wide flags.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
            self.module = self.module.to(self.device)
        self.module.eval()
        if self._threads is not None:
            from awml_harness.threads import apply_torch

            apply_torch(self._threads)

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        if self._intra_op and torch.get_num_threads() != self._intra_op:
            # process-wide: another config (or library) may have changed it since
            torch.set_num_threads(self._intra_op)
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.input_names]
            out = flatten_outputs(self.module(*args), self.output_names, self.name)
            # .cpu() waits for the device, so returning means the work is done
            return {n: o.detach().cpu().numpy() for n, o in zip(self.output_names, out, strict=True)}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def deactivate_impl(self) -> None:
        if self.device.type == "cuda":
            self.module = self.module.to("cpu")
