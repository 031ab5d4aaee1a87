"""Issue 9's performance targets, measured in one run as ratios, printed as one table.

    python -m benchmarks.run                    # everything (~10 min on 2 shared cores)
    python -m benchmarks.run --only P3,P4       # some targets
    python -m benchmarks.run --quick            # fewer samples / rounds (smoke)
    python -m benchmarks.run --results benchmarks/RESULTS.md   # also write the dated table

Targets (see benchmarks/README.md for the exact definitions):
  P1  wall time of `pytest suites/ -k <project> --awml-rebuild` (cold, subprocess)
      / (export seconds of that run + the same inferences in a bare loop)   <= 1.15
  P2  warm re-run (artifacts reused) / cold run (--awml-rebuild)            <= 0.35
  P3  harness ONNX Runtime model-call median / bare session.run median      0.95-1.05
  P4  2D mAP time / pycocotools (5,000 images);                             <= 1.0
      3D mAP time / per-class Python loop (1,000 frames), equal values      <= 0.1
  P5  CenterPoint voxelization of 300k points / torch reference              <= 1.0
  P6  peak RSS evaluating 10k / 1k samples (calibration, subprocesses)      <= 1.10
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import datetime
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEYWORD = {"CalibrationStatusClassification": "calibration", "YOLOX_opt_elan": "yolox", "CenterPoint": "centerpoint"}
P2_PROJECTS = ("YOLOX_opt_elan", "CenterPoint")


@dataclass
class Row:
    label: str
    what: str
    ratio: float | None
    target: str
    ok: bool | None  # None: not measured
    note: str = ""

    @property
    def verdict(self) -> str:
        return "n/a" if self.ok is None else ("pass" if self.ok else "FAIL")


def shipped_configs() -> dict[str, Path]:
    """project name -> deploy config, from pytest.ini's awml_deploy_configs."""
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    lines = [x.strip() for x in ini.get("pytest", "awml_deploy_configs", fallback="").splitlines() if x.strip()]
    out = {}
    for line in lines:
        project = Path(line).parts[1] if Path(line).parts[0] == "projects" else Path(line).stem
        out[project] = ROOT / line
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- P1 / P2: suite runs -------------------------------------------------------------------

def suite_run(project: str, cold: bool, tmp: Path) -> dict[str, Any]:
    out = tmp / f"{project}-{'cold' if cold else 'warm'}.json"
    cmd = [sys.executable, "-m", "pytest", "suites/", "-k", KEYWORD.get(project, project), "-q",
           "-p", "no:cacheprovider", "--awml-metrics-json", str(out)]
    if cold:
        cmd.append("--awml-rebuild")
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    tail = proc.stdout.strip().splitlines()[-1:] if proc.stdout else []
    doc = json.loads(out.read_text()) if out.is_file() else {}
    built = sum(a.get("build_seconds", 0.0) for p in doc.get("projects", {}).values()
                for a in p.get("artifacts", []) if not a.get("reused"))
    return {"wall": wall, "rc": proc.returncode, "export_seconds": built, "summary": tail[0] if tail else "",
            "doc": doc}


def p1_p2(want: set[str], quick: bool) -> list[Row]:
    rows: list[Row] = []
    configs = shipped_configs()
    projects = list(KEYWORD)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for project in projects:
            if project not in configs:
                why = "not in pytest.ini awml_deploy_configs yet: not measured"
                if "P1" in want:
                    rows.append(Row("P1", f"suite/bare {project}", None, "<= 1.15", None, why))
                if "P2" in want and project in P2_PROJECTS:
                    rows.append(Row("P2", f"warm/cold {project}", None, "<= 0.35", None, why))
                continue
            if "P1" not in want and not ("P2" in want and project in P2_PROJECTS):
                continue
            log(f"P1/P2 {project}: cold suite run (--awml-rebuild)")
            cold = suite_run(project, True, tmp)
            if "P1" in want:
                from benchmarks.replay import load_context, replay

                log(f"P1 {project}: bare replay of the suite's inferences")
                ctx = load_context(configs[project], ROOT)
                bare = replay(ctx)
                denom = cold["export_seconds"] + bare["seconds"]
                ratio = cold["wall"] / denom
                calls = ", ".join(f"{k} {v}" for k, v in sorted(bare["calls"].items()))
                rows.append(Row("P1", f"suite/bare {project}", ratio, "<= 1.15", ratio <= 1.15,
                                f"suite {cold['wall']:.1f} s (rc {cold['rc']}; pytest: {cold['summary']}) vs export "
                                f"{cold['export_seconds']:.1f} s"
                                f" + bare {bare['seconds']:.1f} s [{calls}]"))
            if "P2" in want and project in P2_PROJECTS:
                log(f"P2 {project}: warm suite run")
                warm = suite_run(project, False, tmp)
                ratio = warm["wall"] / cold["wall"]
                rows.append(Row("P2", f"warm/cold {project}", ratio, "<= 0.35", ratio <= 0.35,
                                f"warm {warm['wall']:.1f} s (rc {warm['rc']}) vs cold {cold['wall']:.1f} s"
                                f" (export {cold['export_seconds']:.1f} s)"))
    return rows


# -- P3: harness ORT latency vs bare session.run ------------------------------------------

def p3(quick: bool) -> list[Row]:
    from awml_harness.config.schema import Backend, BackendSpec
    from awml_harness.project import NullTimer
    from benchmarks.replay import load_context, ort_session

    rounds = 60 if quick else 300
    rows = []
    configs = shipped_configs()
    for project in ("CalibrationStatusClassification", "YOLOX_opt_elan"):
        if project not in configs:
            continue
        ctx = load_context(configs[project], ROOT)
        spec = BackendSpec(Backend.ONNX, "cpu")
        runners = ctx.runners(spec)
        index = min(ctx.cfg.runtime_io.sample_idx, len(ctx.dataset) - 1)
        prepared = ctx.prepared(index)

        def run_graph(name: str, feeds: Any, runners: Any = runners) -> Any:
            return runners[name].infer(feeds)

        def harness(ctx: Any = ctx, prepared: Any = prepared, run_graph: Any = run_graph) -> Any:
            # what test_latency times (suites/test_latency.py: model_call)
            return ctx.adapter.forward(prepared, run_graph, NullTimer())

        graph = ctx.adapter.graph_names()[0]
        sess = ort_session(ctx.onnx_artifacts("fp32")[graph].path, ctx.options.threads)
        feeds = dict(prepared.inputs)

        def bare(sess: Any = sess, feeds: Any = feeds) -> Any:
            return sess.run(None, feeds)

        for _ in range(10):
            harness()
            bare()
        th, tb = [], []
        for _ in range(rounds):  # interleaved, so load changes hit both sides alike
            s = time.perf_counter()
            harness()
            th.append(time.perf_counter() - s)
            s = time.perf_counter()
            bare()
            tb.append(time.perf_counter() - s)
        mh, mb = statistics.median(th), statistics.median(tb)
        ratio = mh / mb
        rows.append(Row("P3", f"ORT harness/bare {project}", ratio, "0.95-1.05", 0.95 <= ratio <= 1.05,
                        f"median {mh * 1e3:.3f} ms vs {mb * 1e3:.3f} ms, {rounds} interleaved rounds"))
    return rows


# -- P4: evaluators ------------------------------------------------------------------------

def _best_of(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        s = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - s)
    return best, out


def p4(quick: bool) -> list[Row]:
    import numpy as np

    from benchmarks import map3d_reference
    from benchmarks.gen import detections_2d, frames_3d
    from projects.YOLOX_opt_elan.metrics import CocoEvaluator
    from projects.YOLOX_opt_elan.settings import CLASS_NAMES as NAMES_2D

    rows = []
    n2 = 1000 if quick else 5000
    data = detections_2d(n2)

    def ours() -> dict[str, Any]:
        ev = CocoEvaluator(NAMES_2D)
        for i, (p, t) in enumerate(data):
            ev.add(str(i), p, t)
        return ev.compute()

    # pycocotools on the same detections, handed over as the COCO dicts it reads
    ref_ev = CocoEvaluator(NAMES_2D, engine="pycocotools")
    for i, (p, t) in enumerate(data):
        ref_ev.add(str(i), p, t)

    def pycoco() -> Any:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        with contextlib.redirect_stdout(io.StringIO()):
            gt = COCO()
            gt.dataset = {"images": ref_ev._images, "annotations": ref_ev._gts,
                          "categories": [{"id": i + 1, "name": n} for i, n in enumerate(NAMES_2D)]}
            gt.createIndex()
            ev = COCOeval(gt, gt.loadRes(ref_ev._dets), "bbox")
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
        return ev

    t_ours, m = _best_of(ours, 2)
    t_ref, ref = _best_of(pycoco, 1 if not quick else 2)
    stats = ref.stats
    got = [m["mAP"], m["mAP50"], m["mAP75"]] + [m.get(f"mAP_{k}", -1.0) for k in ("small", "medium", "large")]
    diff = float(np.max(np.abs(np.asarray(got) - stats[:6])))
    same = diff <= 1e-15
    ratio = t_ours / t_ref
    from projects.YOLOX_opt_elan.metrics import coco_engine

    engine = coco_engine()[1].__module__.split(".")[0]
    rows.append(Row("P4", f"2D mAP evaluator/pycocotools ({n2} images)", ratio, "<= 1.0", ratio <= 1.0 and same,
                    f"{t_ours:.2f} s ({engine}, incl. add) vs {t_ref:.2f} s; max |diff| {diff:.1e} "
                    f"({'equal' if diff == 0 else 'within 1 ulp' if same else 'DIFFERENT'})"))

    from projects.CenterPoint.metrics import CenterDistanceEvaluator

    names = ["car", "truck", "bus", "bicycle", "pedestrian"]
    n3 = 300 if quick else 1000
    frames = frames_3d(n3)

    def ours3() -> dict[str, Any]:
        ev = CenterDistanceEvaluator(names)
        for i, (p, t) in enumerate(frames):
            ev.add(str(i), p, t)
        return ev.compute()

    t3, m3 = _best_of(ours3, 2)
    t3r, r3 = _best_of(lambda: map3d_reference.evaluate(frames, names), 2)
    same3 = all(m3[k] == r3[k] for k in r3)
    ratio = t3 / t3r
    rows.append(Row("P4", f"3D mAP evaluator/Python loop ({n3} frames)", ratio, "<= 0.1", ratio <= 0.1 and same3,
                    f"{t3:.3f} s vs {t3r:.3f} s; values {'identical' if same3 else 'DIFFERENT'} (mAP {m3['mAP']:.4f})"))
    return rows


# -- P5: voxelization ----------------------------------------------------------------------

def p5(quick: bool) -> list[Row]:
    path = ROOT / "benchmarks" / "centerpoint_voxelize.py"
    if not path.is_file():
        return [Row("P5", "voxelize/reference", None, "<= 1.0", None, "benchmarks/centerpoint_voxelize.py is missing")]
    import numpy as np
    import torch

    from benchmarks import centerpoint_voxelize as cv
    from projects.CenterPoint.data import synthetic_cloud
    from projects.CenterPoint.voxelize import voxelize

    points = 300_000
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the script's default
    try:
        cloud = synthetic_cloud(points, cv.RANGE, 5, seed=0)
        tcloud = torch.from_numpy(cloud)
        ours = voxelize(cloud, cv.RANGE, cv.VOXEL, cv.MAX_POINTS, cv.MAX_VOXELS)
        ref = cv.voxelize_torch(tcloud, cv.MAX_POINTS, cv.MAX_VOXELS)
        same = (np.array_equal(ours.voxels, ref[0].numpy()) and np.array_equal(ours.num_points, ref[1].numpy())
                and np.array_equal(ours.coords, ref[2].numpy()))
        repeat = 3 if quick else 7
        t_np = cv.timed(lambda: voxelize(cloud, cv.RANGE, cv.VOXEL, cv.MAX_POINTS, cv.MAX_VOXELS), repeat)
        t_ref = cv.timed(lambda: cv.voxelize_torch(tcloud, cv.MAX_POINTS, cv.MAX_VOXELS), repeat)
    finally:
        torch.set_num_threads(threads)
    ratio = t_np / t_ref
    return [Row("P5", "voxelize 300k points/torch reference", ratio, "<= 1.0", ratio <= 1.0 and same,
                f"{t_np * 1e3:.0f} ms vs {t_ref * 1e3:.0f} ms (median of {repeat}, 1 thread); "
                f"outputs {'identical' if same else 'DIFFERENT'} (benchmarks/centerpoint_voxelize.py)")]


# -- P6: memory ----------------------------------------------------------------------------

def p6(quick: bool) -> list[Row]:
    small, large = (200, 2000) if quick else (1000, 10000)
    res = {}
    for n in (40, small, large):  # the first only makes sure the ONNX artifact is cached
        log(f"P6: evaluating {n} calibration samples in a subprocess")
        proc = subprocess.run([sys.executable, "-m", "benchmarks.rss_eval", str(n)], cwd=ROOT,
                              capture_output=True, text=True)
        if proc.returncode != 0:
            return [Row("P6", "peak RSS", None, "<= 1.10", False, proc.stderr.strip().splitlines()[-1])]
        res[n] = json.loads(proc.stdout.strip().splitlines()[-1])
    ratio = res[large]["maxrss_mb"] / res[small]["maxrss_mb"]
    return [Row("P6", f"peak RSS {large // 1000}k/{small / 1000:g}k samples", ratio, "<= 1.10", ratio <= 1.10,
                f"{res[large]['maxrss_mb']:.0f} MB vs {res[small]['maxrss_mb']:.0f} MB "
                f"({res[large]['seconds']:.0f} s / {res[small]['seconds']:.0f} s; accuracy "
                f"{res[large]['accuracy']:.4f} / {res[small]['accuracy']:.4f})")]


# -- table ---------------------------------------------------------------------------------

def machine() -> str:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return f"{cpu}, {os.cpu_count()} cores, load {load:.1f}, Python {platform.python_version()}"


def render(rows: list[Row]) -> list[str]:
    lines = ["| target | what | ratio | goal | result | detail |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}"
        lines.append(f"| {r.label} | {r.what} | {ratio} | {r.target} | {r.verdict} | {r.note} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="awml-harness performance targets (issue 9)")
    parser.add_argument("--only", default="P1,P2,P3,P4,P5,P6", help="comma-separated targets, e.g. P3,P4")
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds (smoke test)")
    parser.add_argument("--results", default=None, metavar="PATH", help="also write the dated table to PATH")
    args = parser.parse_args(argv)
    want = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    unknown = want - {"P1", "P2", "P3", "P4", "P5", "P6"}
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    started = datetime.datetime.now().astimezone()
    header = f"machine: {machine()}"
    rows: list[Row] = []
    if want & {"P1", "P2"}:
        rows += p1_p2(want, args.quick)
    for label, fn in (("P3", p3), ("P4", p4), ("P5", p5), ("P6", p6)):
        if label in want:
            log(f"{label}")
            rows += fn(args.quick)
    rows.sort(key=lambda r: r.label)
    lines = render(rows)
    stamp = f"{started:%Y-%m-%d %H:%M %Z}, {'quick' if args.quick else 'full'} run, {time.strftime('%H:%M')} end"
    print(f"awml-harness benchmarks: {stamp}\n{header}")
    print("\n".join(lines))
    if args.results:
        Path(args.results).write_text(
            f"# Benchmark results (issue 9)\n\n`python -m benchmarks.run{' --quick' if args.quick else ''}` "
            f"on {stamp}.\n\n{header}\n\n" + "\n".join(lines) + "\n")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
