"""What --awml-mlflow adds to a run: wall time of whole pytest processes, with and without it.

    python -m benchmarks.mlflow_overhead                       # Toy project, 5 interleaved pairs
    python -m benchmarks.mlflow_overhead --pairs 7 --config projects/CalibrationStatusClassification/configs/deploy_config.py

Each pair runs the same `pytest suites/` twice, plain and with `--awml-mlflow
sqlite:///<tmp>/mlflow.db` (the store exists after the first logged run, as it does
in a work dir that has been logged to before), in alternating order so load that comes
and goes hits both sides. Artifacts are warm (one untimed run first). Then
`--fresh` runs, each into a new store, show the one-off cost of creating a SQLite store
(MLflow's migrations). Printed: the medians, each pair's difference, and the 1-minute
load average at the start and end, since on a shared machine a figure means little
without it. Not collected by pytest.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _repo(tmp: Path, config: Path | None) -> tuple[Path, list[str]]:
    if config is None:  # the Toy project of the harness's own tests, in a throwaway repo
        repo = tmp / "toy"
        shutil.copytree(ROOT / "tests" / "toy" / "projects", repo / "projects")
        shutil.copytree(ROOT / "suites", repo / "suites", ignore=shutil.ignore_patterns("__pycache__"))
        (repo / "pytest.ini").write_text("[pytest]\nawml_deploy_configs = projects/Toy/configs/deploy.yaml\n")
        return repo, []
    return ROOT, ["--deploy-cfg", str(config), "--work-dir", str(tmp / "wd")]


def _run(repo: Path, args: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "MLFLOW_TRACKING"))}
    env["PYTHONPATH"] = str(ROOT)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "suites", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=1800)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"pytest {' '.join(args)} failed ({done.returncode}):\n{done.stdout[-3000:]}")
    return wall


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--fresh", type=int, default=3, help="runs into a new store each (default 3)")
    parser.add_argument("--config", type=Path, default=None, help="a deploy config (default: the Toy project)")
    args = parser.parse_args(argv)
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="awml-mlflow-bench-") as name:
        tmp = Path(name)
        repo, base = _repo(tmp, args.config)
        store = tmp / "store" / "mlflow.db"
        _run(repo, base)  # warm artifacts
        _run(repo, [*base, "--awml-mlflow", f"sqlite:///{store}"])  # the store exists from here on
        plain, logged = [], []
        for i in range(args.pairs):
            for side in ((0, 1) if i % 2 == 0 else (1, 0)):
                if side == 0:
                    plain.append(_run(repo, base))
                else:
                    logged.append(_run(repo, [*base, "--awml-mlflow", f"sqlite:///{store}"]))
        fresh = [_run(repo, [*base, "--awml-mlflow", f"sqlite:///{tmp / f'fresh{i}' / 'mlflow.db'}"])
                 for i in range(args.fresh)]
    diffs = [b - a for a, b in zip(plain, logged, strict=True)]
    what = args.config or "Toy project"
    print(f"pytest suites/ ({what}), {args.pairs} interleaved pairs, load {load0:.1f} -> {os.getloadavg()[0]:.1f}")
    print(f"  plain                   median {statistics.median(plain):6.2f} s  ({', '.join(f'{x:.2f}' for x in plain)})")
    print(f"  --awml-mlflow (store)   median {statistics.median(logged):6.2f} s  ({', '.join(f'{x:.2f}' for x in logged)})")
    print(f"  added per pair          median {statistics.median(diffs):+6.2f} s  ({', '.join(f'{x:+.2f}' for x in diffs)})")
    if fresh:
        print(f"  --awml-mlflow (new store) median {statistics.median(fresh):6.2f} s  "
              f"(+{statistics.median(fresh) - statistics.median(plain):.2f} s over plain)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
