"""The Runner contract: named host arrays in, named host arrays out, synchronously.

When `infer` returns, the device work is done, so a host timer around it measures the
real latency. A backend or device that is not installed raises BackendUnavailable,
which the suites turn into a skip (or a failure under --awml-strict).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol, runtime_checkable

import numpy as np


class BackendUnavailable(RuntimeError):
    """The backend/device cannot run on this machine; the message says what is missing."""


@runtime_checkable
class Runner(Protocol):
    name: str

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def close(self) -> None: ...


def check_feeds(runner_name: str, expected: tuple[str, ...], feeds: Mapping[str, np.ndarray]) -> None:
    missing = [n for n in expected if n not in feeds]
    if missing:
        raise KeyError(f"{runner_name}: inputs {missing} missing; got {sorted(feeds)}")
