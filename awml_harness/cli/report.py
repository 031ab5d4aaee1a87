"""`awml report RUN.json -o report.html`: the HTML report of any saved run."""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path
from typing import Any

from awml_harness.cli.common import CliError, load_document


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser("report", help="render a saved run as the self-contained HTML report",
                              description="Render a saved metrics JSON as the HTML report "
                                          "(what pytest --awml-report writes).")
    p.add_argument("run", metavar="RUN.json", help="metrics JSON of the run")
    p.add_argument("-o", "--output", required=True, metavar="PATH", help="HTML file to write (replaced atomically)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    doc = load_document(args.run)
    if importlib.util.find_spec("matplotlib") is None:
        raise CliError("the HTML report needs matplotlib: pip install 'awml-harness[report]'")
    from awml_harness.atomic import write_text
    from awml_harness.report.html import render_report

    text = render_report(doc)
    out = Path(args.output)
    try:
        write_text(out, text)
    except OSError as exc:
        raise CliError(f"could not write {out}: {exc.strerror or exc}; pass a writable -o PATH") from None
    print(f"awml report: {out}")
    return 0
