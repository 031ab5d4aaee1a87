"""The run's verdict and its failures, read from the metrics JSON document alone, so the
HTML report, the PR summary and the CI annotations of a saved run all say the same."""

from __future__ import annotations

from typing import Any

ONE_LINE_LIMIT = 300


def one_line(text: str, limit: int = ONE_LINE_LIMIT) -> str:
    """A failure message as one line: its headline plus its bullet points, without the
    "how to accept this" suggestion lines (those are in the full text)."""
    lines = [ln.strip() for ln in str(text).splitlines() if ln.strip()]
    if not lines:
        return ""
    head = lines[0].removeprefix("Failed: ")
    rest = []
    for ln in lines[1:]:
        if ln.startswith("->") or ln.startswith("or on the command line") or ln.startswith("("):
            break
        rest.append(ln.lstrip("-").strip())
    sep = " " if head.endswith(":") else ": "
    out = head if not rest else f"{head}{sep}{'; '.join(rest)}"
    return out if len(out) <= limit else out[: limit - 1].rstrip() + "…"


def collect_failures(problems: list[dict[str, Any]], gate_failures: list[str]) -> list[dict[str, Any]]:
    """Every failing test (failed call, setup or teardown error) and every end-of-run gate
    failure (sharded evaluation deltas, --awml-strict): what run.failures holds."""
    out = []
    for p in problems:
        if p.get("outcome") not in ("failed", "error"):
            continue
        detail = str(p.get("message", ""))
        entry = {"nodeid": p["nodeid"], "when": p.get("when", "call"), "kind": "test",
                 "message": one_line(detail), "detail": detail.removeprefix("Failed: ")}
        for k in ("file", "line"):
            if p.get(k) is not None:
                entry[k] = p[k]
        out.append(entry)
    for text in gate_failures:
        out.append({"nodeid": None, "when": "sessionfinish", "kind": "gate",
                    "message": one_line(text), "detail": str(text).strip()})
    return out


def failures_of(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """run.failures; a document written before that key existed gets them from
    run.problems (tests only: its end-of-run gate failures were not recorded)."""
    run = doc.get("run", {})
    if "failures" in run:
        return list(run["failures"])
    return collect_failures(run.get("problems", []), [])


def verdict(doc: dict[str, Any]) -> dict[str, Any]:
    """passed: exit status 0 and no failure. summary: test counts and exit status."""
    run = doc.get("run", {})
    failures = failures_of(doc)
    status = run.get("exitstatus")
    passed = status == 0 and not failures
    tests = run.get("tests") or {}
    counts = ", ".join(f"{n} {k}" for k, n in tests.items() if n) or "no test ran"
    unverified = list(run.get("unverified") or [])
    return {
        "passed": passed,
        "label": "PASSED" if passed else "FAILED",
        "summary": f"{counts}; exit status {status}",
        "failures": failures,
        "unverified": unverified,
        # a failed exit status with no failing test recorded (interrupted, internal error,
        # a plugin that failed the run after the tests): say so rather than show nothing
        "unexplained": not passed and not failures,
    }
