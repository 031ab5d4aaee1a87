"""Peak memory per backend while one process runs several backends (issue 17 item 7).

`ru_maxrss` only ever grows within a process, so after the first big backend every
later one would show the same number. Each backend's share of an evaluation pass (its
runner set-up and every sample it infers) is measured as a block; per backend this
module records:

- `peak_rss_bytes`: the process's resident set at its highest while that backend's
  blocks ran. On Linux a sampling thread reads /proc/self/statm every 2 ms during the
  blocks (it sleeps when no block was measured for 0.1 s), and the kernel's high-water mark (VmHWM) is read before and after
  each block: when it grew, the new mark was reached inside the block and is exact, so the
  backend that sets the process's record is measured exactly and the others to within the
  sampling interval.
- `peak_rss_increase_bytes`: that peak minus the RSS when the block began (what this
  backend's inference itself allocated on top of what the process already held).
- `cuda_peak_allocated_bytes` (CUDA devices, when torch is already imported and sees the
  device): `torch.cuda.max_memory_allocated` after `reset_peak_memory_stats`. It counts
  torch's caching allocator only: the PyTorch backend and the TensorRT runner's I/O
  buffers (torch tensors), not ONNX Runtime's or TensorRT's own device allocations.

Why not reset VmHWM (writing "5" to /proc/self/clear_refs) before each block, which
would be exact for every backend: the reset also lowers what `getrusage` and the parent's
`wait4` report as the process's peak, so `/usr/bin/time -v`, benchmarks/ (P8 reads the
child's ru_maxrss) and CI memory monitors would under-report the run. A measurement must
not change what others measure.

Without /proc (macOS, Windows): `ru_maxrss`, the process's peak so far, is recorded as an
upper bound (`method` says so).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_STATM = "/proc/self/statm"
_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

METHOD_PROC = "sampled /proc/self/statm + VmHWM growth"
METHOD_RUSAGE = "ru_maxrss: the process peak so far (an upper bound for this backend)"


_statm: tuple[int, int] | None = None  # (pid, descriptor): /proc/self is resolved at open


def current_rss() -> int | None:
    """Resident set size of this process in bytes (Linux), or None. One pread of a kept
    /proc/self/statm descriptor: cheap enough to call around every inference. Reopened
    in a forked child, whose inherited descriptor would still read the parent."""
    global _statm
    try:
        if _statm is None or _statm[0] != os.getpid():
            _statm = (os.getpid(), os.open(_STATM, os.O_RDONLY))
        return int(os.pread(_statm[1], 128, 0).split()[1]) * _PAGE
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def high_water_rss() -> int | None:
    """The kernel's peak RSS of this process in bytes (VmHWM; on Linux getrusage's
    ru_maxrss is the same mark for a single-threaded-group process), or None."""
    if sys.platform != "linux":
        return None
    return _ru_maxrss()


def _ru_maxrss() -> int | None:
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux


def _cuda(device: str) -> Any:
    """torch.cuda when `device` is a CUDA device torch sees; never imports torch itself."""
    torch = sys.modules.get("torch")
    if torch is None or not device.startswith("cuda"):
        return None
    try:
        return torch.cuda if torch.cuda.is_available() else None
    except Exception:  # a broken CUDA set-up: no CUDA figure, the run goes on
        return None


class _Sampler:
    """One daemon thread per process. It ticks every `interval` while blocks are being
    measured (an evaluation pass runs them back to back) and sleeps on an Event after
    `idle_ticks` ticks without one, so measuring a block never waits for a thread wake-up."""

    def __init__(self, interval: float, idle_ticks: int = 50) -> None:
        self.interval = interval
        self.idle_ticks = idle_ticks
        self.lock = threading.Lock()
        self.awake = threading.Event()
        self.active = False
        self.peak = 0
        self.thread: threading.Thread | None = None

    def begin(self, rss: int) -> None:
        with self.lock:
            self.peak, self.active = rss, True
            if not self.awake.is_set():
                self.awake.set()
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="awml-memory", daemon=True)
                self.thread.start()

    def end(self) -> int:
        with self.lock:
            self.active = False
            return self.peak

    def _run(self) -> None:
        idle = 0
        while True:
            self.awake.wait()
            rss = current_rss()
            with self.lock:
                if self.active:
                    idle = 0
                    if rss is not None and rss > self.peak:
                        self.peak = rss
                else:
                    idle += 1
                    if idle >= self.idle_ticks:
                        idle = 0
                        self.awake.clear()  # under the lock: begin() cannot miss it
            time.sleep(self.interval)


_SAMPLER = _Sampler(interval=0.002)


class PeakMemory:
    """Per-name peaks: `with mem.measure(name, device):` around each block of that name,
    `mem.record(name)` for the metrics JSON. Blocks do not nest."""

    def __init__(self) -> None:
        self.proc = current_rss() is not None
        self.method = METHOD_PROC if self.proc else METHOD_RUSAGE
        self._peaks: dict[str, dict[str, int]] = {}

    @contextmanager
    def measure(self, name: str, device: str = "cpu") -> Iterator[None]:
        cuda = _cuda(device)
        index = None
        if cuda is not None:
            index = int(device.split(":")[1]) if ":" in device else 0
            cuda.synchronize(index)
            cuda.reset_peak_memory_stats(index)
        before, hwm_before = current_rss(), high_water_rss()
        if self.proc:
            _SAMPLER.begin(before or 0)
        try:
            yield
        finally:
            sampled = _SAMPLER.end() if self.proc else 0
            after, hwm_after = current_rss(), high_water_rss()
            entry = self._peaks.setdefault(name, {})
            if self.proc:
                peak = max(sampled, after or 0)
                if hwm_before is not None and hwm_after is not None and hwm_after > hwm_before:
                    peak = max(peak, hwm_after)  # the process's new record was set inside this block
                entry["peak_rss_bytes"] = max(entry.get("peak_rss_bytes", 0), peak)
                increase = max(0, peak - (before or peak))
                entry["peak_rss_increase_bytes"] = max(entry.get("peak_rss_increase_bytes", 0), increase)
            else:
                ru = _ru_maxrss()
                if ru is not None:
                    entry["peak_rss_bytes"] = max(entry.get("peak_rss_bytes", 0), ru)
            if cuda is not None:
                cuda.synchronize(index)
                entry["cuda_peak_allocated_bytes"] = max(entry.get("cuda_peak_allocated_bytes", 0),
                                                         int(cuda.max_memory_allocated(index)))

    def record(self, name: str) -> dict[str, Any] | None:
        """What the metrics JSON stores for `name` (None when it was never measured)."""
        entry = self._peaks.get(name)
        if not entry:
            return None
        return {**entry, "method": self.method}


def merge(records: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Shards of one backend (separate processes under xdist): the highest of each peak."""
    found = [r for r in records if r]
    if not found:
        return None
    out: dict[str, Any] = {"method": found[0].get("method", "")}
    for r in found:
        for k, v in r.items():
            if k.endswith("_bytes") and isinstance(v, int):
                out[k] = max(out.get(k, 0), v)
    return out

