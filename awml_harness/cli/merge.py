"""`awml merge SHARD.json... -o metrics.json`: the metrics of a run split with
`pytest --awml-shard I/N` across N jobs, computed once from all N shard files.

Exit status: 0 every metric gate passed, 1 a gate failed or a backend's evaluation
failed (the metrics JSON is written either way), 2 the shard files do not belong
together or cannot be read (nothing written), 4 a deploy config the shards name is
wrong in this checkout (a config error, as in pytest).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "merge", help="compute the metrics of N `pytest --awml-shard I/N` jobs from their shard files",
        description="Check that the shard files belong together (same configs, checkpoints and code; shards 1..N "
                    "each once), compute every backend's metrics once over all samples and write a metrics JSON "
                    "whose values equal a serial run's. Run it in a checkout of the same commit as the jobs.")
    p.add_argument("shards", nargs="+", metavar="SHARD.json", help="the shard files of all N jobs")
    p.add_argument("-o", "--output", default="metrics.json", metavar="PATH",
                   help="metrics JSON to write (default: metrics.json)")
    p.add_argument("--rootdir", default=".", metavar="DIR",
                   help="repository root the shard jobs ran pytest in (config paths are relative to it; default: .)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from awml_harness.config.errors import ConfigError
    from awml_harness.report.metrics import write_json_atomic
    from awml_harness.split import ShardError, merge

    try:
        doc, failures = merge([Path(p) for p in args.shards], Path(args.rootdir),
                              argv=["awml", "merge", *args.shards, "-o", args.output])
    except ShardError as exc:
        sys.stderr.write(f"awml merge: {exc}\n")
        return 2
    except ConfigError as exc:
        sys.stderr.write(f"awml merge: {exc}\n")
        return 4
    out = Path(args.output)
    write_json_atomic(out, doc)
    for cid, project in doc["projects"].items():
        for name, entry in project["evaluation"]["backends"].items():
            head = entry.get("headline")
            value = entry.get("metrics", {}).get(head) if head else None
            shown = f"{head} {value:.4f}" if isinstance(value, float) else entry.get("status", "?")
            print(f"{cid} {name}: {shown} ({entry.get('num_samples', 0)} samples)")
    for line in failures:
        sys.stderr.write(f"awml merge: {line}\n")
    print(f"awml metrics JSON: {out}")
    return 1 if failures else 0
