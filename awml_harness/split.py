"""Runs split across machines: `--awml-shard I/N` and `awml merge`.

A CI matrix job runs `pytest suites --awml-shard I/N`: its evaluation tests run every
backend on the samples with `index % N == I - 1` (the same interleaved slice on every
machine, since sample order is the dataset's) and, instead of metrics, the run writes a
shard file with the compact predictions and targets per backend. `awml merge SHARD...`
checks that the shards belong together, feeds one evaluator per backend in sample order,
exactly as a serial run (and the pytest-xdist merge, `evaluation.merge.merge_chunks`) does,
and writes a metrics JSON whose evaluation values equal a serial run's.

Lossless by construction: arrays travel as their raw bytes with dtype and shape
(`evaluation.wire.encode`), Python floats as JSON numbers (shortest repr, read back to the same
double). Written atomically (`atomic.atomic_open`).

"Belong together" is a digest of everything that decides the metrics: the validated
config (paths relative to the rootdir, so checkouts in different folders agree), the
checkpoint's sha256, the project's and exporter's code, the number of evaluated samples.
The merge recomputes it from its own checkout and refuses shards made from another.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.protocols import ContextLike, HarnessLike

SHARD_FORMAT = "awml-shard"
SHARD_VERSION = 1
_SHARD = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


class ShardError(ValueError):
    """Shard files that cannot be merged (missing, duplicate, from another config)."""


def parse_shard(text: str) -> tuple[int, int]:
    """'2/3' -> (1, 3): zero-based index, count. Shards are numbered 1..N on the command line."""
    m = _SHARD.match(str(text))
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"--awml-shard expects I/N with 1 <= I <= N (e.g. 2/3), got {text!r}")
    return int(m.group(1)) - 1, int(m.group(2))


def shard_file_name(index: int, count: int) -> str:
    return f"shard-{index + 1}of{count}.json"


def _relative(obj: Any, root: str) -> Any:
    if isinstance(obj, str) and obj.startswith(root + "/"):
        return obj[len(root) + 1:]
    if isinstance(obj, Mapping):
        return {k: _relative(v, root) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative(v, root) for v in obj]
    return obj


def config_digest(ctx: ContextLike, rootdir: Path) -> str:
    """sha256 of what decides a config's metrics (see the module docstring). Work dir,
    metrics path and the config file's own location are left out: they differ per machine."""
    from awml_harness.config.validation import to_builtin

    cfg = to_builtin(ctx.cfg)
    for key in ("source", "project_dir", "raw", "report", "name"):
        cfg.pop(key, None)
    cfg.get("export", {}).pop("work_dir", None)
    data = {"config": _relative(cfg, str(Path(rootdir).resolve())), "checkpoint": ctx.checkpoint_digest,
            "code": ctx.code_digests, "num_samples": ctx.num_eval_samples()}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def load_options(option: Any, rootdir: Path) -> dict[str, Any]:
    """How the configs were loaded (pytest options), for the merge to load them the same way."""
    root = str(Path(rootdir).resolve())

    def rel(path: str | None) -> str | None:
        return None if path is None else _relative(str(Path(path).resolve()), root)

    return {"cfg_options": list(option.cfg_options), "work_dir": option.work_dir, "device": option.device,
            "unsafe_load": bool(option.awml_unsafe_load),
            "allow_python_in_yaml": bool(option.awml_allow_python_in_yaml),
            "model_cfg": rel(option.model_cfg), "checkpoint": rel(option.checkpoint)}


def shard_document(harness: HarnessLike, records: Sequence[Mapping[str, Any]], doc: Mapping[str, Any],
                   load: Mapping[str, Any], rootdir: Path) -> dict[str, Any]:
    """The shard file of one run: per config, its slice's predictions and its verification."""
    index, count = harness.options.split
    root = str(Path(rootdir).resolve())
    configs: dict[str, Any] = {}
    for rec in records:
        if rec.get("kind") != "evaluation-split":
            continue
        cid = rec["config"]
        cfg = harness.configs[cid]
        configs[cid] = {
            "config": _relative(str(Path(cfg.source).resolve()), root), "config_digest": rec["config_digest"],
            "num_samples": rec["num_samples"], "reference": cfg.evaluation.reference, "backends": rec["backends"],
            "verification": doc.get("projects", {}).get(cid, {}).get("verification"),
        }
    return {"format": SHARD_FORMAT, "version": SHARD_VERSION, "shard": {"index": index + 1, "count": count},
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": doc.get("run", {}).get("argv", []),
            "load": dict(load), "machine": doc.get("machine", {}), "configs": configs}


def write_shard(path: Path, data: Mapping[str, Any]) -> None:
    """Shard files keep NaN metrics inputs as they are (read back by `read_shard`)."""
    from awml_harness.atomic import write_json

    write_json(path, data, allow_nan=True, indent=None)


def read_shard(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ShardError(f"{path}: no such shard file") from None
    except (OSError, ValueError) as exc:
        raise ShardError(f"{path}: not a readable shard file ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != SHARD_FORMAT:
        raise ShardError(f"{path}: not an awml shard file (written by `pytest --awml-shard I/N`)")
    if data.get("version") != SHARD_VERSION:
        raise ShardError(f"{path}: shard format version {data.get('version')!r}; this awml reads {SHARD_VERSION}")
    return data


def check_shards(shards: Mapping[str, Mapping[str, Any]]) -> int:
    """Same count, every index exactly once, same configs and digests; returns the count.
    Every problem found is named in one ShardError (file names included)."""
    problems: list[str] = []
    counts = {name: s["shard"]["count"] for name, s in shards.items()}
    if len(set(counts.values())) > 1:
        raise ShardError("shards of different splits: " + ", ".join(
            f"{n} is {shards[n]['shard']['index']}/{c}" for n, c in counts.items()))
    count = next(iter(counts.values()))
    seen: dict[int, list[str]] = {}
    for name, s in shards.items():
        seen.setdefault(s["shard"]["index"], []).append(name)
    for index, files in sorted(seen.items()):
        if len(files) > 1:
            problems.append(f"shard {index}/{count} given {len(files)} times: {', '.join(files)}")
    missing = [i for i in range(1, count + 1) if i not in seen]
    if missing:
        problems.append(f"missing shard(s) {', '.join(f'{i}/{count}' for i in missing)} "
                        f"(run `pytest ... --awml-shard {missing[0]}/{count}` and pass its shard file)")
    names = {name: sorted(s["configs"]) for name, s in shards.items()}
    first = next(iter(names))
    for name, cids in names.items():
        if cids != names[first]:
            problems.append(f"{name} holds configs {cids}, {first} holds {names[first]} "
                            "(was a config deselected or did its evaluation not run in one job?)")
    for cid in names[first]:
        digests = {name: s["configs"][cid]["config_digest"] for name, s in shards.items() if cid in s["configs"]}
        if len(set(digests.values())) > 1:
            problems.append(f"config {cid}: the shards were made from different configs, checkpoints or code "
                            f"(digests {', '.join(f'{n}: {d[:12]}' for n, d in digests.items())})")
    if problems:
        raise ShardError("these shards do not belong together:\n  " + "\n  ".join(problems))
    return count


def _check_samples(cid: str, shards: Mapping[str, Mapping[str, Any]], count: int) -> None:
    """Every backend's predictions cover samples 0..n-1 exactly once, each in its own slice."""
    total = {s["configs"][cid]["num_samples"] for s in shards.values()}
    if len(total) > 1:
        raise ShardError(f"config {cid}: shards disagree on the number of samples {sorted(total)}")
    n = total.pop()
    for name, s in shards.items():
        k = s["shard"]["index"] - 1
        for backend, entry in s["configs"][cid]["backends"].items():
            if "unavailable" in entry or "error" in entry:
                continue
            got = [row["index"] for row in entry["samples"]]
            want = list(range(k, n, count))
            if got != want:
                raise ShardError(f"{name}: config {cid} backend {backend} holds samples {got[:8]}... but shard "
                                 f"{k + 1}/{count} of {n} samples is {want[:8]}... (edited or truncated file?)")
