"""The `awml` console script: work with a run's saved outputs (metrics JSON, shard files).

    awml diff OLD.json NEW.json      metric, latency, memory and verification changes; exit 1 on regression
    awml report RUN.json -o out.html render any saved run as the HTML report
    awml show RUN.json               the end-of-run summary table
    awml merge SHARD.json... -o metrics.json   join `pytest --awml-shard I/N` jobs' shard files
    awml publish RUN.json --name NAME  register a verified run's deployed artifacts in MLflow (exit 1: refused)

One module per subcommand, each with `add_parser(subparsers)` setting `func=run`
(`run(args) -> int`). Exit status: 0 fine, 1 regression found (diff), 2 usage error or a
file that is not a metrics JSON (argparse's own convention for bad arguments).
Imports stay light: no torch, no onnxruntime.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from awml_harness.cli.common import CliError

# subcommand modules under awml_harness.cli, in the order `awml --help` lists them
SUBCOMMANDS: tuple[str, ...] = ("diff", "report", "show", "merge", "publish")


def build_parser() -> argparse.ArgumentParser:
    from awml_harness import __version__

    parser = argparse.ArgumentParser(prog="awml", description="Work with awml-harness run outputs.")
    parser.add_argument("--version", action="version", version=f"awml-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"awml_harness.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        return int(args.func(args))
    except CliError as exc:
        sys.stderr.write(f"awml {args.command}: {exc}\n")
        return 2
