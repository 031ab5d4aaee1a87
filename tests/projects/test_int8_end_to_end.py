"""int8 end to end on the CI configs (issue "INT8 you can trust", done-when): a blank
calibration fails the metric gate with a message that names the int8 calibration (the
classifier); CenterPoint's graphs handed over as AWML's tooling exports them (voxel
encoder fp32, backbone Q/DQ with its first block in fp16) are recognised as int8,
verified with the int8 tolerances and pass, and the same files with the first quantized
activation's scale multiplied by 10 fail verification naming the outputs (on the classifier a single
scale x10 moves the logits by 0.06-0.86, mostly inside what int8 already costs it, so a
single-scale error there is not the test); auto_int8 turns a failing int8
verification (a tight tolerance) into a passing one by leaving a few nodes unquantized,
and a warm run reuses the choice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "projects" / "CalibrationStatusClassification" / "configs"
DEFAULT, AUTO = CONFIGS / "deploy_config.py", CONFIGS / "deploy_config_auto_int8.py"
CENTERPOINT = ROOT / "projects" / "CenterPoint" / "configs" / "deploy_config.py"
PROJECT = "CalibrationStatusClassification"

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not all((ROOT / f"fixtures/{p}/checkpoint.pth").is_file() for p in ("calibration", "centerpoint")),
    reason="calibration / CenterPoint checkpoints not generated")]


def _run(tmp_path: Path, name: str, config: Path, *args: str, project: str = PROJECT
         ) -> tuple[dict, subprocess.CompletedProcess]:
    out = tmp_path / f"{name}.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:randomly", "--deploy-cfg", str(config),
         "--work-dir", str(tmp_path / "wd"), "--awml-metrics-json", str(out), *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert out.is_file(), proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(out.read_text())["projects"][project], proc


def test_a_blank_calibration_fails_the_metric_gate_naming_the_calibration(tmp_path):
    entry, proc = _run(tmp_path, "zeros", DEFAULT, "suites/test_evaluation.py", "-k", "int8",
                       "--cfg-options", "quantization.inputs='zeros'")
    assert proc.returncode == 1, proc.stdout[-3000:]
    backend = entry["evaluation"]["backends"]["onnx-int8"]
    assert backend["precision"] == "int8" and backend["passed"] is False
    assert "inputs replaced by zeros" in backend["calibration"] and entry["int8"]["samples"]["inputs"] == "zeros"
    failure = proc.stdout[proc.stdout.index("metrics differ from pytorch"):]
    assert "accuracy" in failure and "int8 calibration: minmax (onnxruntime), 32 samples" in failure
    assert "inputs replaced by zeros" in failure

    entry, proc = _run(tmp_path, "dataset", DEFAULT, "suites/test_evaluation.py", "-k", "int8")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert entry["int8"]["samples"]["overlap_evaluation"] == []  # the train split calibrates
    assert entry["int8"]["key"] != json.loads((tmp_path / "zeros.json").read_text())["projects"][PROJECT]["int8"]["key"]


def _handed_folder(tmp_path: Path, x10: bool) -> Path:
    """CenterPoint's graphs as AWML's quantization tooling hands them over: the voxel
    encoder in fp32, the backbone/neck/head as Q/DQ with its first block left out of
    quantization and in fp16; with `x10`, the first activation scale of the quantized part
    (the first block's output; shared by its QuantizeLinear and DequantizeLinear) times 10."""
    import shutil

    from onnx import numpy_helper

    from awml_harness.config.load import load_deploy_config
    from awml_harness.session import ProjectContext, RunOptions

    cfg = load_deploy_config(CENTERPOINT, base_dir=ROOT, work_dir=str(tmp_path / "make"),
                             overrides=[r"quantization.exclude_nodes=('^/backbone/blocks[.]0/',)"])
    ctx = ProjectContext(cfg, RunOptions())
    arts = ctx.onnx_artifacts("int8")
    model = onnx.load(str(arts["pts_backbone_neck_head"].path))
    block = [n.name for n in model.graph.node if n.name.startswith("/backbone/blocks.0/")
             and n.op_type not in ("QuantizeLinear", "DequantizeLinear")]
    assert block and set(block).isdisjoint(ctx.artifacts.quantized.summary["graphs"]["pts_backbone_neck_head"]
                                            ["quantized_nodes"])
    model = _fp16_nodes(model, block)
    if x10:
        inits = {i.name: i for i in model.graph.initializer}
        first = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and n.input[0] not in inits)
        scale = inits[first.input[1]]
        scale.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(scale) * np.float32(10), scale.name))
    folder = tmp_path / ("x10" if x10 else "handed")
    folder.mkdir()
    onnx.save(model, str(folder / "pts_backbone_neck_head.onnx"))
    shutil.copyfile(arts["pts_voxel_encoder"].path, folder / "pts_voxel_encoder.onnx")  # float, as AWML keeps it
    return folder


def _fp16_nodes(model, names):
    """`names` computed in fp16: their float initializers stored as fp16, a Cast to fp16 on
    each input from outside the block and a Cast back to fp32 on each output (as a
    mixed-precision export has them); the graph is in topological order already."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    half: set[str] = set()  # tensors the block already has in fp16
    for node in [n for n in graph.node if n.name in names]:
        for k, name in enumerate(node.input):
            if name in half:
                node.input[k] = f"{name}_fp16"
            elif name in inits:
                copy = numpy_helper.from_array(numpy_helper.to_array(inits[name]).astype(np.float16), f"{name}_fp16_{k}")
                graph.initializer.append(copy)
                node.input[k] = copy.name
            elif name:
                graph.node.append(helper.make_node("Cast", [name], [f"{name}_in_fp16"], to=TensorProto.FLOAT16,
                                                   name=f"{node.name}_cast_in{k}"))
                node.input[k] = f"{name}_in_fp16"
        for k, name in enumerate(node.output):
            half.add(name)
            node.output[k] = f"{name}_fp16"
            graph.node.append(helper.make_node("Cast", [f"{name}_fp16"], [name], to=TensorProto.FLOAT,
                                               name=f"{node.name}_cast_out{k}"))
    _toposort(graph)  # the runtime wants producers first
    return model


def _toposort(graph):
    known = {i.name for i in graph.input} | {i.name for i in graph.initializer} | {""}
    nodes, ordered = list(graph.node), []
    while nodes:
        ready = [n for n in nodes if all(i in known for i in n.input)]
        assert ready, "cycle"
        for n in ready:
            ordered.append(n)
            known.update(n.output)
            nodes.remove(n)
    del graph.node[:]
    graph.node.extend(ordered)


def test_a_handed_over_qdq_onnx_is_verified_as_int8_and_a_wrong_scale_fails(tmp_path):
    good, bad = _handed_folder(tmp_path, x10=False), _handed_folder(tmp_path, x10=True)
    suites = ["suites/test_verification.py", "suites/test_evaluation.py"]
    handed = ["--cfg-options", "export.mode='none'"]
    entry, proc = _run(tmp_path, "good", CENTERPOINT, *suites, *handed, f"export.onnx_path='{good}'", project="CenterPoint")
    assert proc.returncode == 0, proc.stdout[-3000:]
    results = entry["verification"]["results"]
    assert {r["test"] for r in results} == {"onnx-int8:cpu"} and len(results) == 3  # the int8 scenario only
    assert all(r["passed"] for r in results)
    assert all(leaf["rule"] == "verification.pair_outputs['pytorch->onnx-int8']['*']" for r in results
               for leaf in r["leaves"])  # held to the int8 tolerances
    backend = entry["evaluation"]["backends"]["onnx-int8"]
    assert backend["precision"] == "int8" and backend["passed"] and "onnx" not in entry["evaluation"]["backends"]
    assert entry["int8"]["handed_over"] == str(good) and entry["int8"]["qdq_nodes"] > 0

    entry, proc = _run(tmp_path, "bad", CENTERPOINT, "suites/test_verification.py", *handed,
                       f"export.onnx_path='{bad}'", project="CenterPoint")
    assert proc.returncode == 1
    failed = [r for r in entry["verification"]["results"] if not r["passed"]]
    assert failed and all(r["test"] == "onnx-int8:cpu" for r in failed)
    assert "CenterPoint-pytorch:cpu-vs-onnx-int8:cpu-s" in proc.stdout
    assert any(f"  - {name}: mismatched elements" in proc.stdout for name in ("heatmap", "reg", "dim", "rot", "vel"))


def test_auto_int8_leaves_a_few_nodes_float_to_pass_and_a_warm_run_reuses_them(tmp_path):
    from awml_harness.report.document import validate_document

    verify = ["suites/test_verification.py", "-k", "int8"]
    plain, proc = _run(tmp_path, "plain", AUTO, *verify, "--cfg-options",
                       "backend_config.common_config.precision_policy='int8'")
    int8_results = [r for r in plain["verification"]["results"] if r["test"] == "onnx-int8:cpu"]
    assert proc.returncode == 1 and not all(r["passed"] for r in int8_results), proc.stdout[-2000:]
    assert "auto_int8" not in plain["int8"]

    auto, proc = _run(tmp_path, "auto", AUTO, *verify, "suites/test_evaluation.py")
    assert proc.returncode == 0, proc.stdout[-3000:]
    validate_document(json.loads((tmp_path / "auto.json").read_text()))
    chosen = auto["int8"]["auto_int8"]
    count, candidates = chosen["unquantized_node_count"], chosen["candidates"]["model"]
    assert 0 < count <= candidates // 4, chosen  # a few nodes, not "everything in float"
    assert len(chosen["unquantized_nodes"]["model"]) == count and chosen["plain_int8_passed"] is False
    assert "output" in chosen["plain_failure"] and chosen["reused"] is False
    assert chosen["criterion"] == "pytorch:cpu-vs-onnx-int8:cpu + metric gate of onnx-int8"
    assert all(r["passed"] for r in auto["verification"]["results"] if r["test"] == "onnx-int8:cpu")
    assert auto["int8"]["metric_deltas"]["onnx-int8"] == auto["evaluation"]["backends"]["onnx-int8"]["deltas"]
    print(f"auto_int8: {count} of {candidates} nodes left float, {chosen['evaluations']} evaluations, "
          f"{chosen['search_seconds']} s: {chosen['unquantized_nodes']['model']}")

    warm, proc = _run(tmp_path, "warm", AUTO, *verify)
    again = warm["int8"]["auto_int8"]
    assert proc.returncode == 0 and again["reused"] is True
    assert again["unquantized_nodes"] == chosen["unquantized_nodes"]
