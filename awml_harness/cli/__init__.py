"""The `awml` console script.

    awml merge SHARD.json... -o metrics.json   join `pytest --awml-shard I/N` jobs' shard files

One module per subcommand, each with `add_parser(subparsers)` setting `func=run`
(`run(args) -> int`). Imports stay light: a subcommand imports what it needs when it runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# subcommand modules under awml_harness.cli, in the order `awml --help` lists them
SUBCOMMANDS: tuple[str, ...] = ("merge",)


def build_parser() -> argparse.ArgumentParser:
    from awml_harness import __version__

    parser = argparse.ArgumentParser(prog="awml", description="Work with awml-harness run outputs.")
    parser.add_argument("--version", action="version", version=f"awml-harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in SUBCOMMANDS:
        importlib.import_module(f"awml_harness.cli.{name}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    return int(args.func(args))
