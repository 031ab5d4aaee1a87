"""The performance targets (issues 9 and 16), measured in one run as ratios, one table.

    python -m benchmarks.run                    # everything (long: full-size exports)
    python -m benchmarks.run --only P3,P4       # some targets
    python -m benchmarks.run --quick            # fewer samples / rounds, no full-size configs
    python -m benchmarks.run --results benchmarks/RESULTS.md   # also write the dated table

Every row is a ratio of two things measured in this run on this machine, so load moves
both sides; the 1-minute load average and the thread policy are printed beside the
table. Targets (exact definitions in benchmarks/README.md):
  P1  whole `pytest suites/ -k <project> --awml-rebuild` process
      / whole `python -m benchmarks.bare <config>` process (same exports, inferences,
      metrics; imports included)                                            <= 1.15
  P2  warm re-run / cold run (--awml-rebuild) on the full-size configs      <= 0.35
  P3  harness model-call median / bare-loop median, every backend           0.95-1.05
  P4  2D mAP time / pycocotools (5,000 images);                             <= 1.0
      3D mAP time / per-class Python loop (1,000 frames), equal values      <= 0.1
  P5  CenterPoint voxelization of 300k points / torch reference              <= 1.0
  P6  peak RSS evaluating 10k / 1k samples (calibration, subprocesses)      <= 1.10
  P7  `-n 2` / serial wall time: shipped configs                            <= 1.1
      and a calibration config with >= 500 evaluation samples               < 0.7
  P8  peak RSS of the full-size CenterPoint run (cold, from P2)             <= 2.5 GB
  P9  onnx-int8 / onnx fp32 median latency, full-size YOLOX 960 and CenterPoint
      backbone, interleaved rounds, same thread policy (benchmarks/int8_latency.py) <= 0.6
  P10 per-node profile (--awml-profile), per shipped config, backend and graph: the
      profile's per-node total / the unprofiled median graph time (latency runners,
      same test, just before)                                                0.85-1.15
      and test_latency with --awml-profile / without (p50; p95/p50 spread), interleaved
      pairs                                                                  0.9-1.1; spread <= 1.25
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
import shlex
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
# full-size configs, where export dominates (P2; P8 is the CenterPoint one's peak RSS)
FULL = {"YOLOX_opt_elan": "projects/YOLOX_opt_elan/configs/deploy_config_960.py",
        "CenterPoint": "projects/CenterPoint/configs/deploy_config_full.py"}
P7_SAMPLES = 1040  # >= 500: the 40 shipped calibration items served 26 times
TARGETS = ("P1", "P2", "P3", "P4", "P5", "P6", "P7", "P8", "P9", "P10")


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


def pytest_ini(key: str) -> str:
    ini = configparser.ConfigParser()
    ini.read(ROOT / "pytest.ini")
    return ini.get("pytest", key, fallback="")


def shipped_configs() -> dict[str, Path]:
    """project name -> deploy config, from pytest.ini's awml_deploy_configs."""
    lines = [x.strip() for x in pytest_ini("awml_deploy_configs").splitlines() if x.strip()]
    out = {}
    for line in lines:
        project = Path(line).parts[1] if Path(line).parts[0] == "projects" else Path(line).stem
        out[project] = ROOT / line
    return out


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg} (load {os.getloadavg()[0]:.1f})", file=sys.stderr, flush=True)


def measured(cmd: list[str]) -> dict[str, Any]:
    """Run `cmd` from the repo root: wall seconds, exit code, stdout, the child's own peak RSS
    and CPU seconds (user + sys of it and its waited-for children, e.g. xdist workers).
    On a shared machine the wall ratio carries the other jobs' load; the CPU ratio beside it
    does not (it misses only waits), so each detail gives both."""
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        return {"wall": wall, "rc": proc.returncode, "stdout": out.read(), "stderr": err.read(),
                "maxrss_mb": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime}


def _cpu(a: dict[str, Any], b: dict[str, Any]) -> str:
    return f"CPU {a['cpu']:.1f} s vs {b['cpu']:.1f} s ({a['cpu'] / max(b['cpu'], 1e-9):.2f})"


def _last_line(text: str) -> str:
    lines = [x for x in text.strip().splitlines() if x.strip()]
    return lines[-1] if lines else ""


# -- P1 / P2 / P8: whole processes ----------------------------------------------------------

def suite_run(keyword: str, tmp: Path, tag: str, *extra: str, cold: bool) -> dict[str, Any]:
    out = tmp / f"{tag}.json"
    cmd = [sys.executable, "-m", "pytest", "suites/", "-k", keyword, "-q", "-p", "no:cacheprovider",
           "--awml-metrics-json", str(out), *extra]
    if cold:
        cmd.append("--awml-rebuild")
    res = measured(cmd)
    res["summary"] = _last_line(res["stdout"])
    res["doc"] = json.loads(out.read_text()) if out.is_file() else {}
    res["export_seconds"] = sum(a.get("build_seconds", 0.0) for p in res["doc"].get("projects", {}).values()
                                for a in p.get("artifacts", []) if not a.get("reused"))
    return res


def bare_run(config: Path | str, *overrides: str) -> dict[str, Any]:
    res = measured([sys.executable, "-m", "benchmarks.bare", str(config), *overrides])
    try:
        res["report"] = json.loads(_last_line(res["stdout"]))
    except json.JSONDecodeError:
        res["report"] = {}
    return res


def interleaved(a: Callable[[], dict[str, Any]], b: Callable[[], dict[str, Any]],
                repeats: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Run a, b, a, b ... `repeats` times each, so a burst of load on the shared box lands
    on both sides instead of on one; the ratio is then taken of the two medians."""
    runs_a, runs_b = [], []
    for i in range(repeats):
        log(f"  pair {i + 1}/{repeats}")
        runs_a.append(a())
        runs_b.append(b())
    return runs_a, runs_b


def median_wall(runs: list[dict[str, Any]]) -> float:
    return statistics.median(r["wall"] for r in runs)


def spread(runs_a: list[dict[str, Any]], runs_b: list[dict[str, Any]]) -> str:
    """The per-pair ratios' range and the walls' ranges: a bimodal side shows here."""
    pairs = sorted(x["wall"] / y["wall"] for x, y in zip(runs_a, runs_b, strict=True))
    return (f"{len(pairs)} interleaved pairs, pair ratios {pairs[0]:.2f}-{pairs[-1]:.2f}, walls "
            f"{min(r['wall'] for r in runs_a):.1f}-{max(r['wall'] for r in runs_a):.1f} s vs "
            f"{min(r['wall'] for r in runs_b):.1f}-{max(r['wall'] for r in runs_b):.1f} s")


def pytest_floor(tmp: Path, repeats: int) -> float:
    """Median wall of a pytest process running one empty test with the same plugins and
    pytest.ini `addopts` as the suite runs (the harness's plugin among them, with no deploy
    config): what any pytest-based run pays before and after its own work, and so the
    least P1's numerator can carry over a bare script."""
    test = tmp / "test_empty.py"
    test.write_text("def test_nothing():\n    assert True\n")
    cmd = [sys.executable, "-m", "pytest", str(test), "-q", "-p", "no:cacheprovider", *shlex.split(pytest_ini("addopts")),
           "-c", os.devnull, "--rootdir", str(tmp)]
    return statistics.median(measured(cmd)["wall"] for _ in range(repeats))


def p1(quick: bool) -> list[Row]:
    rows: list[Row] = []
    configs = shipped_configs()
    repeats = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        floor = pytest_floor(tmp, repeats)
        for project, kw in KEYWORD.items():
            if project not in configs:
                rows.append(Row("P1", f"suite/bare {project}", None, "<= 1.15", None,
                                "not in pytest.ini awml_deploy_configs: not measured"))
                continue
            log(f"P1 {project}: cold suite process (--awml-rebuild) and bare script process, interleaved")
            suites, bares = interleaved(lambda kw=kw, project=project: suite_run(kw, tmp, f"{project}-p1", cold=True),
                                        lambda project=project: bare_run(configs[project]), repeats)
            suite_wall, bare_wall = median_wall(suites), median_wall(bares)
            ratio = suite_wall / bare_wall
            ok = ratio <= 1.15 and all(r["rc"] == 0 for r in suites + bares)
            suite, bare = suites[-1], bares[-1]
            phases = bare["report"].get("phases", {})
            split = ", ".join(f"{k} {v['seconds']:.1f}" for k, v in phases.items() if v["seconds"] >= 0.05)
            rows.append(Row("P1", f"suite/bare {project}", ratio, "<= 1.15", ok,
                            f"medians: suite {suite_wall:.2f} s vs bare {bare_wall:.2f} s; {spread(suites, bares)}; "
                            f"pytest floor (empty test, same plugins) {floor:.2f} s = {floor / bare_wall:.2f} of bare; "
                            f"last pair: suite rc {suite['rc']}: {suite['summary']}, export {suite['export_seconds']:.1f} s; "
                            f"bare rc {bare['rc']}: {split}; {_cpu(suite, bare)}"))
    return rows


def p2_p8(want: set[str], quick: bool) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for project, config in FULL.items():
            if not (ROOT / config).is_file():
                rows.append(Row("P2", f"warm/cold {project} (full size)", None, "<= 0.35", None, f"{config} is missing"))
                continue
            if "P2" not in want and project != "CenterPoint":
                continue
            args = ("--deploy-cfg", config, "--work-dir", str(tmp / project))
            log(f"P2 {project}: cold full-size suite process")
            cold = suite_run(KEYWORD[project], tmp, f"{project}-cold", *args, cold=True)
            if "P8" in want and project == "CenterPoint":
                gb = cold["maxrss_mb"] / 1024
                where = ""
                if not quick:
                    log("P8: bare full-size CenterPoint process, peak RSS per phase")
                    bare = bare_run(config)
                    phases = bare["report"].get("phases", {})
                    where = ("; bare script peak after each phase: "
                             + ", ".join(f"{k} {v['hwm_mb'] / 1024:.2f}" for k, v in phases.items())
                             + f" GB (bare peak {bare['maxrss_mb'] / 1024:.2f} GB)")
                rows.append(Row("P8", "peak RSS full-size CenterPoint (GB)", gb, "<= 2.5", gb <= 2.5 and cold["rc"] == 0,
                                f"cold `pytest suites/ -k centerpoint --deploy-cfg {config}` (rc {cold['rc']}: "
                                f"{cold['summary']}){where}"))
            if "P2" in want:
                log(f"P2 {project}: warm full-size suite process")
                warm = suite_run(KEYWORD[project], tmp, f"{project}-warm", *args, cold=False)
                ratio = warm["wall"] / cold["wall"]
                rows.append(Row("P2", f"warm/cold {project} (full size)", ratio, "<= 0.35",
                                ratio <= 0.35 and warm["rc"] == 0 and cold["rc"] == 0,
                                f"warm {warm['wall']:.1f} s (rc {warm['rc']}) vs cold {cold['wall']:.1f} s "
                                f"(rc {cold['rc']}, export {cold['export_seconds']:.1f} s); a warm run that skipped "
                                f"nothing but the export would be {1 - cold['export_seconds'] / cold['wall']:.2f}; "
                                f"{_cpu(warm, cold)}; {config}"))
    return rows


# -- P7: pytest-xdist ----------------------------------------------------------------------

def p7(quick: bool) -> list[Row]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # warm artifacts first, so both sides reuse them (the cold cost is P1/P2's subject)
        log("P7: warming the shipped configs' artifacts")
        suite_run("not latency", tmp, "p7-warmup", cold=False)
        n = 520 if quick else P7_SAMPLES
        repeat = -(-n // 40)
        big = ("--cfg-options", f"CalibrationStatusClassification:model_cfg.dataset_repeat={repeat}",
               f"CalibrationStatusClassification:evaluation.num_samples={n}")
        cases = [("shipped configs, latency deselected", "not latency", (), "<= 1.1", lambda r: r <= 1.1),
                 (f"calibration evaluation, {n} samples", "calibration and evaluation", big, "< 0.7", lambda r: r < 0.7)]
        repeats = 2 if quick else 5
        for what, kw, extra, goal, ok in cases:
            log(f"P7 {what}: -n 2 and serial, interleaved")
            pars, serials = interleaved(
                lambda kw=kw, extra=extra: suite_run(kw, tmp, "p7-n2", "-n", "2", *extra, cold=False),
                lambda kw=kw, extra=extra: suite_run(kw, tmp, "p7-serial", *extra, cold=False), repeats)
            ratio = median_wall(pars) / median_wall(serials)
            par, serial = pars[-1], serials[-1]
            rcs_ok = all(r["rc"] == 0 for r in pars + serials)
            rows.append(Row("P7", f"-n 2/serial {what}", ratio, goal, ok(ratio) and rcs_ok,
                            f"medians: -n 2 {median_wall(pars):.1f} s vs serial {median_wall(serials):.1f} s; "
                            f"{spread(pars, serials)}; last pair: -n 2 rc {par['rc']}: {par['summary']}; serial rc "
                            f"{serial['rc']}: {serial['summary']}; {_cpu(par, serial)}"))
    return rows


# -- P10: per-node profiles ----------------------------------------------------------------

def p10(quick: bool) -> list[Row]:
    """Per shipped config: pairs of `pytest suites/ --deploy-cfg C -k "latency or profile"`
    with and without --awml-profile, interleaved. Coverage: in each profiled run, every
    backend's per-graph profile total over the unprofiled median of that graph the same
    test measured on the latency runners just before (paired in time, so a burst of load
    moves both), median over the pairs; the detail adds the ratio to test_latency's stage
    median of the graph (measured earlier in the run). Latency:
    the median over pairs of each backend's p50 (and p95/p50) with the profile tests in
    the run, over the same without them."""
    rows: list[Row] = []
    repeats = 2 if quick else 3
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for project, config in shipped_configs().items():
            log(f"P10 {project}: with and without --awml-profile, interleaved")
            base = ("--deploy-cfg", str(config))
            suite_run("export", tmp, "p10-warm", *base, cold=False)  # artifacts warm on both sides
            withs, withouts = interleaved(
                lambda b=base: suite_run("latency or profile", tmp, "p10-with", *b, "--awml-profile", cold=False),
                lambda b=base: suite_run("latency or profile", tmp, "p10-without", *b, cold=False), repeats)
            rows += _p10_coverage(project, withs)
            rows += _p10_latency(project, withs, withouts)
    return rows


def _entry(run: dict[str, Any]) -> dict[str, Any]:
    projects = run["doc"].get("projects", {})
    return next(iter(projects.values()), {}) if projects else {}


def _p10_coverage(project: str, runs: list[dict[str, Any]]) -> list[Row]:
    ratios: dict[tuple[str, str], list[float]] = {}
    staged: dict[tuple[str, str], list[float]] = {}
    tops: dict[str, str] = {}
    for run in runs:
        entry = _entry(run)
        profile = entry.get("profile") or {}
        for name, b in profile.get("backends", {}).items():
            stages = (entry.get("latency", {}).get(name) or {}).get("stages_median_ms") or {}
            for graph, g in b.get("graphs", {}).items():
                if g.get("coverage"):
                    ratios.setdefault((name, graph), []).append(g["coverage"])
                if stages.get(graph):
                    staged.setdefault((name, graph), []).append(g["total_ms"] / stages[graph])
        for name in profile.get("backends", {}):
            best = max(profile.get("nodes", []), key=lambda r: (r["backends"].get(name) or {}).get("ms", 0.0),
                       default=None)
            if best is not None:
                cell = best["backends"][name]
                tops[name] = (f"{name} top node {best['node']} ({best['op_type']}, {cell['ms']:.3f} ms, "
                              f"{100 * cell['share']:.0f} %, {cell.get('precision')})")
    if not ratios:
        return [Row("P10", f"profile total/unprofiled {project}", None, "0.85-1.15", False,
                    f"no profile recorded; last run rc {runs[-1]['rc']}: {runs[-1]['summary']}")]
    out = []
    for (name, graph), values in ratios.items():
        ratio = statistics.median(values)
        other = staged.get((name, graph)) or []
        vs_stage = f"; vs test_latency's stage median {statistics.median(other):.2f}" if other else ""
        out.append(Row("P10", f"profile total/unprofiled {project} {name} {graph}", ratio, "0.85-1.15",
                       0.85 <= ratio <= 1.15, f"{len(values)} runs, {min(values):.2f}-{max(values):.2f}"
                                              f"{vs_stage}; {tops.get(name, '')}"))
    return out


def _f2(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _p10_latency(project: str, withs: list[dict[str, Any]], withouts: list[dict[str, Any]]) -> list[Row]:
    def stat(runs: list[dict[str, Any]], name: str, key: str) -> float | None:
        values = [(_entry(r).get("latency", {}).get(name) or {}).get(key) for r in runs]
        values = [v for v in values if isinstance(v, (int, float))]
        return statistics.median(values) if values else None

    out = []
    for name in (_entry(withouts[-1]).get("latency") or {}):
        a, b = stat(withs, name, "p50"), stat(withouts, name, "p50")
        sa, sb = stat(withs, name, "p95_over_p50"), stat(withouts, name, "p95_over_p50")
        if a is None or b is None:
            continue
        ratio, spread_ratio = a / b, (sa / sb if sa and sb else None)
        ok = 0.9 <= ratio <= 1.1 and (spread_ratio is None or spread_ratio <= 1.25)
        out.append(Row("P10", f"latency with/without --awml-profile {project} {name}", ratio,
                       "0.9-1.1; spread <= 1.25", ok,
                       f"p50 {a:.3f} vs {b:.3f} ms; p95/p50 {_f2(sa)} vs {_f2(sb)} (ratio {_f2(spread_ratio)}); "
                       f"{len(withs)} interleaved pairs"))
    return out


# -- P9: int8 latency (benchmarks/int8_latency.py) -------------------------------------------

def p9_rows() -> list[Row]:
    from benchmarks.int8_latency import p9

    return p9(ROOT, log, Row)


# -- P3: harness model call vs bare loop, every backend ------------------------------------

def p3(quick: bool) -> list[Row]:
    from awml_harness.backends.base import BackendUnavailable
    from benchmarks.replay import load_context

    rounds = 60 if quick else 200
    rows = []
    configs = shipped_configs()
    for project in KEYWORD:
        if project not in configs:
            continue
        ctx = load_context(configs[project], ROOT)
        for name, spec in ctx.cfg.evaluation.specs().items():
            try:
                mh, mb = _p3_medians(ctx, spec, rounds)
            except BackendUnavailable as exc:
                rows.append(Row("P3", f"harness/bare {project} {name}", None, "0.95-1.05", None, str(exc)))
                continue
            ratio = mh / mb
            rows.append(Row("P3", f"harness/bare {project} {name}", ratio, "0.95-1.05", 0.95 <= ratio <= 1.05,
                            f"median {mh * 1e3:.3f} ms vs {mb * 1e3:.3f} ms, {rounds} interleaved rounds"))
    return rows


def _p3_medians(ctx: Any, spec: Any, rounds: int) -> tuple[float, float]:
    """Median seconds of the model call as test_latency times it (harness runners) and of
    the same call with bare backend calls; both through the project's own glue
    (`adapter.forward`), interleaved round by round so load hits both alike."""
    import numpy as np

    from awml_harness.config.schema import Backend
    from awml_harness.project import NullTimer
    from benchmarks.replay import ort_session

    index = min(ctx.cfg.runtime_io.sample_idx, len(ctx.dataset) - 1)
    prepared = ctx.prepared(index)
    runners = ctx.runners(spec)
    graphs = ctx.graphs
    if spec.backend is Backend.PYTORCH:
        import torch

        def graph_call(g: str, feeds: Any) -> Any:
            graph = graphs[g]
            with torch.inference_mode():
                out = graph.module(*[torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in graph.input_names])
            out = out if isinstance(out, (tuple, list)) else (out,)
            return {n: o.numpy() for n, o in zip(graph.output_names, out, strict=False)}
    else:
        tp = ctx.thread_policy
        sessions = {g: ort_session(a.path, tp.intra_op, inter_op=tp.inter_op)
                    for g, a in ctx.onnx_artifacts(spec.precision).items()}
        half = {g: {i.name for i in s.get_inputs() if i.type == "tensor(float16)"} for g, s in sessions.items()}

        def graph_call(g: str, feeds: Any) -> Any:
            graph = graphs[g]
            inputs = {n: feeds[n].astype(np.float16) if n in half[g] else feeds[n] for n in graph.input_names}
            return dict(zip(graph.output_names, sessions[g].run(None, inputs), strict=False))

    def harness() -> Any:  # suites/test_latency.py: model_call
        return ctx.adapter.forward(prepared, lambda g, f: runners[g].infer(f), NullTimer())

    def bare() -> Any:
        return ctx.adapter.forward(prepared, graph_call, NullTimer())

    for _ in range(5):
        harness()
        bare()
    th, tb = [], []
    for _ in range(rounds):
        s = time.perf_counter()
        harness()
        th.append(time.perf_counter() - s)
        s = time.perf_counter()
        bare()
        tb.append(time.perf_counter() - s)
    return statistics.median(th), statistics.median(tb)


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
    from awml_harness.report.machine import cpu_name

    return f"{cpu_name()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} / {five:.2f} / {fifteen:.2f} (1 / 5 / 15 min)"


def cpu_steal_seconds() -> float | None:
    """Seconds the hypervisor gave this VM's CPUs to others (/proc/stat `steal`, all CPUs):
    a slow stretch with a low load average and rising steal is the host, not this box."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        fields = Path("/proc/stat").read_text().splitlines()[0].split()
        return int(fields[8]) / os.sysconf("SC_CLK_TCK")
    return None


def thread_policy() -> str:
    from awml_harness.threads import resolve

    return resolve(None, None).label + "; suites and bare scripts alike"


def bytecode_cache() -> str:
    """pytest caches the modules it assertion-rewrites (test files, conftests and every
    module of a pytest plugin's distribution: the harness, hypothesis, pytest-benchmark,
    xdist...) as .pyc files; with PYTHONDONTWRITEBYTECODE set it cannot, and each pytest
    process re-parses and rewrites them all (measured: ~1.2-1.5 s CPU per process on the
    2-core box), which moves P1 and P7. Printed so a figure can be read."""
    if os.environ.get("PYTHONDONTWRITEBYTECODE"):
        return ("off (PYTHONDONTWRITEBYTECODE is set: pytest cannot cache the modules it rewrites; "
                "any not cached by an earlier run are re-parsed in every process)")
    return "on (Python's default)"


def render(rows: list[Row]) -> list[str]:
    lines = ["| target | what | ratio | goal | result | detail |", "| --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        ratio = "-" if r.ratio is None else f"{r.ratio:.3f}"
        lines.append(f"| {r.label} | {r.what} | {ratio} | {r.target} | {r.verdict} | {r.note} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="awml-harness performance targets (issues 9 and 16)")
    parser.add_argument("--only", default=",".join(TARGETS), help="comma-separated targets, e.g. P3,P4")
    parser.add_argument("--quick", action="store_true", help="fewer samples and rounds, no bare full-size run")
    parser.add_argument("--results", default=None, metavar="PATH", help="also write the dated table to PATH")
    args = parser.parse_args(argv)
    want = {w.strip().upper() for w in args.only.split(",") if w.strip()}
    unknown = want - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    os.chdir(ROOT)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    started = datetime.datetime.now().astimezone()
    load_before = load_average()
    steal_before = cpu_steal_seconds()
    rows: list[Row] = []
    steps: list[tuple[str, Callable[[], list[Row]]]] = [
        ("P1", lambda: p1(args.quick)), ("P3", lambda: p3(args.quick)), ("P4", lambda: p4(args.quick)),
        ("P5", lambda: p5(args.quick)), ("P6", lambda: p6(args.quick)), ("P7", lambda: p7(args.quick)),
        ("P9", lambda: p9_rows()), ("P10", lambda: p10(args.quick))]
    for label, fn in steps:
        if label in want:
            log(label)
            rows += fn()
    if want & {"P2", "P8"}:
        rows += p2_p8(want, args.quick)
    rows.sort(key=lambda r: int(r.label[1:]))  # stable: each target's rows in measured order
    lines = render(rows)
    stamp = f"{started:%Y-%m-%d %H:%M %Z}, {'quick' if args.quick else 'full'} run, {time.strftime('%H:%M')} end"
    steal_after = cpu_steal_seconds()
    steal = ("not readable" if steal_before is None or steal_after is None
             else f"{steal_after - steal_before:.1f} s over the run, all CPUs")
    header = (f"machine: {machine()}\n\nload average: {load_before} at start, {load_average()} at end\n\n"
              f"CPU steal (hypervisor): {steal}\n\n"
              f"thread policy: {thread_policy()}\n\nbytecode cache: {bytecode_cache()}")
    print(f"awml-harness benchmarks: {stamp}\n{header}")
    print("\n".join(lines))
    if args.results:
        Path(args.results).write_text(
            f"# Benchmark results (issues 9 and 16)\n\n`python -m benchmarks.run{' --quick' if args.quick else ''}` "
            f"on {stamp}.\n\n{header}\n\n" + "\n".join(lines) + "\n")
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
