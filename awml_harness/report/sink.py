"""Collects what tests report, on the process that writes the metrics JSON.

Tests attach builtin-typed records to `item.user_properties` under the tag "awml";
pytest copies them onto every report and pytest-xdist ships reports from workers to
the controller, so this one hook sees every result of the run exactly once per phase.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

RECORD_TAG = "awml"


@dataclass(eq=False)  # registered as a pluggy plugin: must stay hashable (by identity)
class ResultSink:
    started: float
    records: list[dict[str, Any]] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=lambda: {"passed": 0, "failed": 0, "skipped": 0, "error": 0})
    problems: list[dict[str, Any]] = field(default_factory=list)
    written: Any = None
    selected: int = 0
    extra_output: list = field(default_factory=list)  # (title, text) for the terminal summary
    gate_failures: list[str] = field(default_factory=list)  # sharded evaluation verdicts
    # end-of-run bookkeeping: the pytest session, the exit status an escaping exception
    # will give the process, a metrics JSON that could not be written, summary printed
    session: Any = None
    final_status: int | None = None
    write_error: str | None = None
    summary_printed: bool = False
    markdown_path: Any = None  # where the markdown summary went (rewritten if the exit status changes)

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "setup" and "awml" in report.keywords:
            self.selected += 1  # counts under xdist too, where the controller collects nothing
        if report.when == "call" or (report.when == "setup" and not report.passed):
            for name, value in report.user_properties:
                if name == RECORD_TAG and isinstance(value, dict):
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
