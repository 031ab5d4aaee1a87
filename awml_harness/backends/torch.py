"""PyTorch runner: the very modules that were exported, on cpu or cuda:N."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable, check_feeds


class TorchRunner:
    def __init__(self, module: Any, input_names: tuple[str, ...], output_names: tuple[str, ...],
                 device: str = "cpu", name: str = "pytorch", threads: Any = None) -> None:
        """`threads`: an awml_harness.threads.ThreadPolicy (None: leave torch as it is)."""
        import torch

        if device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise BackendUnavailable(f"{device} requested but torch {torch.__version__} sees no CUDA device")
            index = int(device.split(":")[1]) if ":" in device else 0
            if index >= torch.cuda.device_count():
                raise BackendUnavailable(f"{device} requested but only {torch.cuda.device_count()} CUDA device(s) exist")
        self.name = f"{name}:{device}"
        self.device = torch.device(device)
        if self.device.type == "cuda":
            # fp32 means fp32: PyTorch's default TF32 convolutions differ from CPU by ~1e-3
            # relative, which would blur every cpu-vs-cuda comparison. Process-wide flags.
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
        self._torch = torch
        self.module = module.to(self.device).eval() if device != "cpu" else module.eval()
        self.input_names = input_names
        self.output_names = output_names
        self._intra_op = 0
        if threads is not None:
            from awml_harness.threads import apply_torch

            apply_torch(threads)
            self._intra_op = threads.intra_op

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        torch = self._torch
        check_feeds(self.name, self.input_names, feeds)
        if self._intra_op and torch.get_num_threads() != self._intra_op:
            # process-wide: another config (or library) may have changed it since
            torch.set_num_threads(self._intra_op)
        with torch.inference_mode():
            args = [torch.from_numpy(np.ascontiguousarray(feeds[n])).to(self.device) for n in self.input_names]
            out = self.module(*args)
            if not isinstance(out, (tuple, list)):
                out = (out,)
            if len(out) != len(self.output_names):
                raise RuntimeError(f"{self.name}: module returned {len(out)} outputs, graph declares {self.output_names}")
            # .cpu() waits for the device, so returning means the work is done
            return {n: o.detach().cpu().numpy() for n, o in zip(self.output_names, out, strict=False)}

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            self._torch.cuda.synchronize(self.device)

    def close(self) -> None:
        if self.device.type == "cuda":
            self.module.to("cpu")
