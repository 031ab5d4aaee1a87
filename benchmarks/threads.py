"""Which CPU thread count gives trustworthy latency here? (awml_harness/threads.py's default)

    python -m benchmarks.threads                        # calibration model, 1 vs 2 vs library default
    python -m benchmarks.threads --config projects/YOLOX_opt_elan/configs/deploy_config.py --rounds 120

Bare loops, no pytest: the PyTorch module under `torch.inference_mode` and an ONNX
Runtime session per setting (harness session options, spinning off), on the config's
prepared sample. Settings are interleaved in blocks of BLOCK calls (the first call after
a switch is not counted), so load that comes and goes hits every setting alike. Per
setting: p50, p95, p95/p50, the share of calls slower than 2x the median, max; the
1-minute load average is printed at the start and end, because on a shared machine the
figures mean little without it.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BLOCK = 10


def _row(name: str, ms: np.ndarray) -> str:
    from awml_harness.latency import summarize

    s = summarize(ms / 1e3)
    return (f"{name:<28} {s['p50']:9.3f} {s['p95']:9.3f} {s['p95_over_p50']:8.2f} "
            f"{100 * s['outlier_share']:8.1f} % {s['max']:9.1f}  ({s['rounds']} calls)")


def measure(config: Path, rounds: int, settings: list[int]) -> dict[str, np.ndarray]:
    import torch

    default = torch.get_num_threads()  # before the harness applies its policy
    from awml_harness.config.schema import Backend, BackendSpec
    from benchmarks.replay import capture_feeds, load_context, ort_session

    ctx = load_context(config, ROOT)
    index = min(ctx.cfg.runtime_io.sample_idx, len(ctx.dataset) - 1)
    prepared = ctx.prepared(index)
    calls = capture_feeds(ctx, prepared)  # [(graph, feeds)] of one model call
    ctx.runners(BackendSpec(Backend.PYTORCH, "cpu"))
    arts = ctx.onnx_artifacts("fp32")
    tfeeds = [(g, [torch.from_numpy(np.ascontiguousarray(f[n])) for n in ctx.graphs[g].input_names])
              for g, f in calls]
    sessions = {n: {g: ort_session(a.path, threads=n) for g, a in arts.items()} for n in settings}

    def torch_call() -> None:
        with torch.inference_mode():
            for g, args in tfeeds:
                ctx.graphs[g].module(*args)

    def ort_call(n: int) -> None:
        for g, feeds in calls:
            sessions[n][g].run(None, feeds)

    out: dict[str, list[float]] = {}
    blocks = max(rounds // BLOCK, 1)
    for _ in range(blocks):
        for n in settings:
            torch.set_num_threads(n or default)
            torch_call()  # first call after a switch: not counted
            for _ in range(BLOCK):
                s = time.perf_counter()
                torch_call()
                out.setdefault(f"pytorch threads={n or f'default({default})'}", []).append(time.perf_counter() - s)
        for _ in range(BLOCK):
            for n in settings:
                s = time.perf_counter()
                ort_call(n)
                out.setdefault(f"onnxruntime threads={n or 'default'}", []).append(time.perf_counter() - s)
    torch.set_num_threads(default)
    return {k: np.asarray(v) * 1e3 for k, v in out.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "projects/CalibrationStatusClassification/configs/deploy_config.py"))
    parser.add_argument("--rounds", type=int, default=200, help="counted calls per setting")
    parser.add_argument("--settings", default="1,2,0", help="thread counts; 0 = library default")
    args = parser.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.chdir(ROOT)
    settings = [int(x) for x in args.settings.split(",")]
    load0 = os.getloadavg()
    res = measure(Path(args.config), args.rounds, settings)
    load1 = os.getloadavg()
    print(f"{Path(args.config).relative_to(ROOT) if Path(args.config).is_relative_to(ROOT) else args.config}; "
          f"{os.cpu_count()} cores; load average {load0[0]:.2f} at start, {load1[0]:.2f} at end")
    print(f"{'setting':<28} {'p50 ms':>9} {'p95 ms':>9} {'p95/p50':>8} {'>2x med':>10} {'max ms':>9}")
    for name, ms in res.items():
        print(_row(name, ms))
    return 0


if __name__ == "__main__":
    sys.exit(main())
