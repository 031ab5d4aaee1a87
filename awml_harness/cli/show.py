"""`awml show RUN.json`: the summary table pytest printed at the end of that run."""

from __future__ import annotations

import argparse
from typing import Any

from awml_harness.cli.common import load_document


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("show", help="print a saved run's summary table",
                              description="Print the end-of-run summary table of a saved metrics JSON.")
    p.add_argument("run", metavar="RUN.json", help="metrics JSON of the run")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from awml_harness.report.summary import render_summary

    doc = load_document(args.run)
    info = doc.get("run", {})
    tests = ", ".join(f"{k} {v}" for k, v in (info.get("tests") or {}).items() if v)
    print(f"awml run {info.get('started', '?')}: exit status {info.get('exitstatus', '?')}"
          + (f" ({tests})" if tests else ""))
    for line in render_summary(doc):
        print(line)
    return 0
