"""Progress lines for the long steps (exports, engine builds, evaluation passes).

A full-size export can take a minute and an evaluation pass minutes; without a line a
CI log looks hung. Lines are written live: with pytest's capture suspended (so they
are not buried in a test's captured output), through the terminal reporter in the
process that owns the terminal, and to stderr in a pytest-xdist worker (whose stderr
is the controller's terminal). Outside pytest they go to stderr.

Warnings raised inside a step are gathered: one line per warning site (category and
source file), "N warnings like: ..." when a site repeats (the fp16 converter warns once
per clipped constant: a dozen three-line entries in pytest's summary for one graph).
A site that warns once is re-issued unchanged inside a test, so pytest's warnings
summary still lists it; in the prebuild (outside any test) it becomes a line as well.
"""

from __future__ import annotations

import contextlib
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

DEFAULT_INTERVAL_S = 10.0

_config: Any = None  # the pytest.Config of this process, set by the plugin
_interval_s = DEFAULT_INTERVAL_S
_outside_tests = 0  # > 0 inside the prebuild (prebuild.py): no test to attribute a warning to


_stack: list[tuple[Any, float]] = []  # an in-process pytest run inside another restores the outer one


def configure(config: Any, interval_s: float | None = None) -> None:
    """Called by the plugin at pytest_configure; `config=None` detaches (unconfigure) and
    goes back to the run that was configured before, if any."""
    global _config, _interval_s
    if config is None:
        if _stack:
            _stack.pop()
        _config, _interval_s = _stack[-1] if _stack else (None, DEFAULT_INTERVAL_S)
        return
    _config = config
    _interval_s = DEFAULT_INTERVAL_S if interval_s is None else max(0.0, float(interval_s))
    _stack.append((_config, _interval_s))


def interval_s() -> float:
    return _interval_s


def emit(line: str) -> None:
    """Write one progress line now, whatever pytest is capturing."""
    config = _config
    if config is None:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
        return
    capman = config.pluginmanager.getplugin("capturemanager")
    reporter = None if hasattr(config, "workerinput") else config.pluginmanager.getplugin("terminalreporter")
    guard = capman.global_and_fixture_disabled() if capman is not None else contextlib.nullcontext()
    with guard:
        if reporter is not None:
            reporter.write_line(line)
            reporter.flush()
        else:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()


@contextlib.contextmanager
def outside_tests() -> Iterator[None]:
    """Mark work done for the run rather than for a test (the prebuild): its warnings
    all become progress lines instead of entries that pytest would pin on the next test."""
    global _outside_tests
    _outside_tests += 1
    try:
        yield
    finally:
        _outside_tests -= 1


@contextlib.contextmanager
def gathered_warnings(label: str) -> Iterator[None]:
    """Collect warnings raised inside; afterwards one line per repeating site (see module doc)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    # a "site" is the warning's category and source file: the fp16 converter warns from
    # four lines of one function (clipped max/min, positive/negative), one kind of news
    sites: dict[tuple[Any, str], list[warnings.WarningMessage]] = {}
    for w in caught:
        sites.setdefault((w.category, w.filename), []).append(w)
    for (category, filename), group in sites.items():
        first = str(group[0].message).splitlines()[0] if str(group[0].message) else ""
        if len(group) > 1:
            emit(f"awml {label}: {len(group)} warnings like: {category.__name__}: {first}")
        elif _outside_tests:
            emit(f"awml {label}: warning: {category.__name__}: {first}")
        else:
            warnings.warn_explicit(group[0].message, category, filename, group[0].lineno)


def step(label: str, build: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap an artifact builder: a line when it starts, one with its time when it ends,
    and its warnings gathered. Only called when the cache misses, so reuse stays silent."""

    def run(*args: Any, **kwargs: Any) -> Any:
        emit(f"awml {label} ...")
        start = time.perf_counter()
        ok = False
        try:
            with gathered_warnings(label):
                out = build(*args, **kwargs)
            ok = True
            return out
        finally:
            took = time.perf_counter() - start
            emit(f"awml {label} {'done' if ok else 'FAILED'} in {took:.1f} s")

    return run


class Ticker:
    """Samples done / total with the rate, at most every `interval_s()` seconds, plus a
    first and a last line (so a short pass still says what it did)."""

    def __init__(self, label: str, total: int) -> None:
        self.label = label
        self.total = total
        self.done = 0
        self.start = time.perf_counter()
        self.last = self.start
        emit(f"awml {label}: {total} samples ...")

    def update(self, done: int) -> None:
        self.done = done
        now = time.perf_counter()
        if done < self.total and now - self.last >= interval_s():
            self.last = now
            emit(self._line(now))

    def finish(self) -> None:
        emit(self._line(time.perf_counter()) + " done")

    def _line(self, now: float) -> str:
        took = now - self.start
        rate = self.done / took if took > 0 else 0.0
        return f"awml {self.label}: {self.done}/{self.total} samples, {took:.1f} s, {rate:.2f} samples/s"
