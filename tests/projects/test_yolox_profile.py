"""--awml-profile on the shipped small YOLOX with its int8 config (issue 28, Done when):
pytorch, onnx, onnx-fp16 and onnx-int8 are profiled in one run; the table lists the
fp32 ONNX graph's nodes and the same rows for every backend (the fp16 Casts and the int8
Q/DQ nodes joined onto their nearest fp32 node); the top node of each ONNX backend agrees
with ONNX Runtime's own profiler file, taken here apart from the harness and read with
json alone; the int8 backend's `integer` flags agree with the kernels that file names;
the summary and the HTML report show all four backends."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "projects" / "YOLOX_opt_elan" / "configs" / "deploy_config_int8.py"
BACKENDS = ["pytorch", "onnx", "onnx-fp16", "onnx-int8"]
VARIANTS = {"onnx": "fp32", "onnx-fp16": "fp16", "onnx-int8": "int8"}

pytestmark = pytest.mark.skipif(not (ROOT / "fixtures/yolox/checkpoint.pth").is_file(),
                                reason="YOLOX checkpoint not generated")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("yolox-profile")
    out, page = tmp / "metrics.json", tmp / "report.html"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:randomly", "suites/test_profile.py",
         "--deploy-cfg", str(CONFIG), "--work-dir", str(tmp / "wd"), "--awml-profile",
         "--awml-metrics-json", str(out), "--awml-report", str(page)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0 and out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())["projects"]["YOLOX_opt_elan"], proc.stdout, page.read_text()


def _artifact(project: dict, variant: str) -> Path:
    [art] = [a for a in project["artifacts"] if a.get("variant") == variant]
    return Path(art["path"])


def _ort_own_profile(model: Path, folder: Path, warmup: int = 3, rounds: int = 20) -> dict[str, dict]:
    """ONNX Runtime's profiler on `model` (one thread, default optimization level, as the
    harness runs it), its file read with json alone: per kernel event its median duration
    and op_name over the runs after the warm-up."""
    import numpy as np

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = opts.inter_op_num_threads = 1
    opts.enable_profiling = True
    opts.profile_file_prefix = str(folder / model.stem)
    sess = ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])
    x = {"images": np.random.default_rng(0).uniform(0, 255, (1, 3, 192, 192)).astype(np.float32)}
    for _ in range(warmup + rounds):
        sess.run(None, x)
    events = json.loads(Path(sess.end_profiling()).read_text())
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])[warmup:]
    start = runs[0]["ts"]
    out: dict[str, dict] = {}
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and e["ts"] >= start:
            entry = out.setdefault(e["name"].removesuffix("_kernel_time"), {"dur": [], "op": e["args"]["op_name"]})
            entry["dur"].append(e["dur"])
    return {k: {**v, "dur": statistics.median(v["dur"])} for k, v in out.items()}


def _node_of(kernel: str, model: onnx.ModelProto) -> str:
    """The fp32 node a kernel event names: a node (`<node>`, `<node>_token_<n>`), or the
    tensor a node produces (`<tensor>_nchwc`; in the fp16 graph the tensor of the fp32 Cast
    ONNX Runtime inserts for its CPU kernels, `InsertedPrecisionFreeCast_<tensor>`); an
    activation a Conv absorbed goes up to that Conv."""
    nodes = {n.name: n for n in model.graph.node}
    producers = {t: n for n in model.graph.node for t in n.output}
    name = kernel.removeprefix("InsertedPrecisionFreeCast_").removesuffix("_nchwc").split("_token_")[0]
    node = nodes.get(name) or producers[name]
    while node.op_type in ("Relu", "Sigmoid", "Add"):
        node = producers[node.input[0]]
    return node.name


def test_the_table_lists_the_fp32_nodes_with_the_same_rows_for_every_backend(run):
    project, stdout, _ = run
    profile = project["profile"]
    assert list(profile["backends"]) == BACKENDS
    assert {b: profile["backends"][b]["precision"] for b in VARIANTS} == VARIANTS
    fp32 = onnx.load(str(_artifact(project, "fp32")), load_external_data=False)
    nodes = {n.name for n in fp32.graph.node if n.op_type != "Constant"}
    assert {r["node"] for r in profile["nodes"]} == nodes
    assert all(list(r["backends"]) == BACKENDS for r in profile["nodes"])
    for name, b in profile["backends"].items():
        (graph,) = b["graphs"].values()
        assert graph["unmapped_ms"] == 0.0 and graph["total_ms"] > 0, (name, graph["unmapped"])
    # the int8 file's Q/DQ nodes are not rows: they are joined onto the fp32 nodes they feed
    int8 = onnx.load(str(_artifact(project, "int8")), load_external_data=False)
    qdq = {n.name for n in int8.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")}
    assert qdq and not qdq & nodes
    included = {i for r in profile["nodes"] for i in r["backends"]["onnx-int8"]["includes"]}
    assert included & qdq and included <= ({n.name for n in int8.graph.node} - nodes) | nodes
    stdout_header = next(line for line in stdout.splitlines() if line.strip().startswith("node"))
    assert stdout_header.split()[-4:] == BACKENDS


@pytest.mark.parametrize("backend", ["onnx", "onnx-fp16"])
def test_top_node_agrees_with_onnxruntimes_own_profiler_file(run, tmp_path, backend):
    project, _, _ = run
    model = _artifact(project, VARIANTS[backend])
    raw = _ort_own_profile(model, tmp_path)
    heaviest = max(raw, key=lambda k: raw[k]["dur"])
    expected = _node_of(heaviest, onnx.load(str(_artifact(project, "fp32")), load_external_data=False))
    rows = [r for r in project["profile"]["nodes"] if r["backends"][backend]["status"] == "timed"]
    top = max(rows, key=lambda r: r["backends"][backend]["ms"])
    assert top["node"] == expected, (heaviest, raw[heaviest])


def test_int8_integer_flags_agree_with_the_kernels_onnxruntime_ran(run, tmp_path):
    """Whether an int8 node ran as an integer kernel is the kernel's, not the file's: the
    integer flags of the table are set exactly where ORT's own file shows QLinear*/QGemm/
    *Integer kernels (on this CPU, ORT 1.32, YOLOX's symmetric s8 Q/DQ Convs ran as float
    FusedConv between DequantizeLinear and QuantizeLinear: no integer kernel at all)."""
    project, _, _ = run
    raw = _ort_own_profile(_artifact(project, "int8"), tmp_path)
    ops = {v["op"] for v in raw.values()}
    integer_ops = {op for op in ops if op.startswith("QLinear") or op in ("QGemm", "ConvInteger", "MatMulInteger")}
    cells = [r["backends"]["onnx-int8"] for r in project["profile"]["nodes"]]
    timed = [c for c in cells if c["status"] == "timed"]
    assert timed and all(isinstance(c["integer"], bool) for c in timed)
    assert {k for c in timed for k in c["kernels"]} <= ops
    assert any(c["integer"] for c in timed) == bool(integer_ops), integer_ops
    for c in timed:
        assert (c["precision"] == "int8") == c["integer"]
    convs = [r["backends"]["onnx-int8"] for r in project["profile"]["nodes"] if r["op_type"] == "Conv"]
    assert all("DequantizeLinear" in c["kernels"] or c["integer"] for c in convs if c["status"] == "timed")


def test_the_report_renders_the_four_backends(run):
    project, _, page = run
    section = page[page.index("<h3>Per-node profile"):]
    assert 'alt="per-node profile' in section
    for name in BACKENDS:
        assert f"<th>{name}</th>" in section or f">{name}<" in section, name
    import html

    assert all(html.escape(r["node"]) in section for r in project["profile"]["nodes"])  # the whole table
