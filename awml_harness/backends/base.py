"""The Runner contract: named host arrays in, named host arrays out, synchronously.

A runner has a lifecycle: `activate()` acquires what it runs on (an ONNX Runtime session,
a TensorRT engine and its contexts, a module moved to its device), `infer()` runs and
times one call, `deactivate()` gives everything back; `with runner:` does both. The
public methods check the state and keep the time; a backend implements the `*_impl`
methods (Polygraphy's runner template). A runner takes what it runs as a file path, as
bytes, as an object already built (a session, an engine, a module) or as a loader that
builds one on activation, so callers never reach for files or raw sessions themselves.

When `infer` returns, the device work is done, so a host timer around it measures the
real latency. A backend or device that is not installed raises BackendUnavailable,
which the suites turn into a skip (or a failure under --awml-strict).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np


class BackendUnavailable(RuntimeError):
    """The backend/device cannot run on this machine; the message says what is missing."""


@runtime_checkable
class Runner(Protocol):
    name: str
    is_active: bool
    last_inference_time: float | None

    def activate(self) -> None: ...

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def deactivate(self) -> None: ...


class BaseRunner:
    """State and timing around a backend's `activate_impl` / `infer_impl` / `deactivate_impl`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.is_active = False
        self.last_inference_time: float | None = None  # seconds of the last infer()
        self.inference_time = 0.0  # seconds of every infer() since activation
        self.calls = 0

    # -- the template -------------------------------------------------------------------
    def activate(self) -> None:
        if self.is_active:
            return
        self.activate_impl()
        self.is_active = True
        self.inference_time, self.calls = 0.0, 0

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        if not self.is_active:
            raise RuntimeError(f"{self.name}: infer() on a runner that is not active; call activate() first "
                               "(or use it as `with runner:`)")
        check_feeds(self.name, self.input_names, feeds)
        start = time.perf_counter()
        out = self.infer_impl(feeds)
        self.last_inference_time = time.perf_counter() - start
        self.inference_time += self.last_inference_time
        self.calls += 1
        return out

    def deactivate(self) -> None:
        if not self.is_active:
            return
        try:
            self.deactivate_impl()
        finally:
            self.is_active = False

    def __enter__(self) -> BaseRunner:
        self.activate()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.deactivate()

    # -- what a backend writes ------------------------------------------------------------
    input_names: tuple[str, ...] = ()

    def activate_impl(self) -> None:  # noqa: B027 - optional: nothing to acquire
        pass

    def infer_impl(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def deactivate_impl(self) -> None:  # noqa: B027 - optional: nothing to release
        pass


def check_feeds(runner_name: str, expected: tuple[str, ...], feeds: Mapping[str, np.ndarray]) -> None:
    missing = [n for n in expected if n not in feeds]
    if missing:
        raise KeyError(f"{runner_name}: inputs {missing} missing; got {sorted(feeds)}")
