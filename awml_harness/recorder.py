"""Collects what tests report, on the process that writes the metrics JSON.

`RunRecorder` is the pytest plugin that listens; `RunRecord` is what it heard, a frozen
snapshot the end of the run (awml_harness/finish.py) works from.

Tests attach builtin-typed records to their item (`awml_record`, stash key RECORDS_KEY);
a makereport hook copies them onto every report as the attribute `awml_records`, and
pytest-xdist ships a report's attributes from workers to the controller, so this one hook
sees every result of the run exactly once per phase.

Not `item.user_properties`: pytest writes those into `--junitxml`, where whole records
(verification leaves, per-sample predictions of evaluation shards, latency samples)
made the XML hundreds of KB. The junit file gets small scalar properties only
(junit_properties below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

RECORDS_KEY = pytest.StashKey[list]()
JUNIT_PREFIX = "awml_"
_MAX_PROPERTY_CHARS = 200


def junit_properties(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """The small scalar facts of a record for `--junitxml` (and `item.user_properties`):
    its top-level numbers, flags and short strings (kind, backend, passed, p50, ...) and
    the scalar task metrics, each a property `awml_<name>`. Lists, nested tables and
    long strings stay in the metrics JSON."""
    out: list[tuple[str, Any]] = []
    for key, value in record.items():
        if key == "metrics" and isinstance(value, dict):
            out += [(f"{JUNIT_PREFIX}metric_{k}", v) for k, v in value.items() if _small(v)]
        elif _small(value):
            out.append((JUNIT_PREFIX + key, value))
    return out


def _small(value: Any) -> bool:
    if isinstance(value, str):
        return len(value) <= _MAX_PROPERTY_CHARS
    return isinstance(value, (bool, int, float))


@dataclass(frozen=True)
class RunRecord:
    """What the tests of a run reported: their records, outcomes and problems."""

    started: float
    records: tuple[dict[str, Any], ...] = ()
    outcomes: dict[str, int] = field(default_factory=dict)
    problems: tuple[dict[str, Any], ...] = ()
    selected: int = 0


@dataclass(eq=False)  # registered as a pluggy plugin: must stay hashable (by identity)
class RunRecorder:
    started: float
    records: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0, "error": 0})
    problems: list[dict[str, Any]] = field(default_factory=list)
    selected: int = 0

    def result(self) -> RunRecord:
        return RunRecord(self.started, tuple(self.records), dict(self.outcomes), tuple(self.problems), self.selected)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup" and "awml" in report.keywords:
            self.selected += 1  # counts under xdist too, where the controller collects nothing
        if report.when == "call" or (report.when == "setup" and not report.passed):
            for value in getattr(report, "awml_records", ()):
                if isinstance(value, dict):
                    self.records.append(value)
        if report.when == "call":
            self.outcomes[report.outcome] = self.outcomes.get(report.outcome, 0) + 1
        elif report.when == "setup" and report.skipped:
            self.outcomes["skipped"] += 1
        elif report.failed:  # setup/teardown errors
            self.outcomes["error"] += 1
        if report.failed or (report.skipped and report.when == "setup"):
            problem: dict[str, Any] = {
                "nodeid": report.nodeid,
                "when": report.when,
                "outcome": "error" if report.when != "call" and report.failed else report.outcome,
                "message": _short(report),
            }
            # the test function's file and line (1-based), for CI annotations
            path, line, _ = report.location
            problem["file"] = str(path)
            if line is not None:
                problem["line"] = int(line) + 1
            self.problems.append(problem)


def _short(report: pytest.TestReport) -> str:
    if report.skipped and isinstance(report.longrepr, tuple):
        return str(report.longrepr[2])
    crash = getattr(report.longrepr, "reprcrash", None)
    if crash is not None:
        return str(crash.message)[:2000]
    return str(report.longreprtext)[-2000:]
