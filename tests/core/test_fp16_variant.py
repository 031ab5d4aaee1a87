"""The fp16 ONNX variant (issue 12, item 6): a valid graph for outputs that other nodes
read, loaded by ONNX Runtime in test_export, and a failure that stays with its backend."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxconverter_common")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from awml_harness.export.fp16 import convert_to_fp16, isolate_outputs  # noqa: E402
from awml_harness.export.onnx import ExportError  # noqa: E402


def _output_that_feeds_a_node(path: Path) -> Path:
    """x @ W -> a (an output) -> Relu -> b (an output): `a` is both returned and read."""
    w = numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(4, 4) / 8 - 1, "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["a"]), helper.make_node("Relu", ["a"], ["b"])], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, [1, 4]),
         helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def test_an_output_read_by_another_node_converts_to_a_graph_onnx_runtime_runs(tmp_path):
    src = _output_that_feeds_a_node(tmp_path / "two.onnx")
    out = tmp_path / "out"
    out.mkdir()
    name = convert_to_fp16(src, out)
    sess = ort.InferenceSession(str(out / name), providers=["CPUExecutionProvider"])
    assert [o.name for o in sess.get_outputs()] == ["a", "b"]
    x = np.array([[-1.0, -1.0, -1.0, -1.0]], np.float32)  # a = [1, 0.5, 0, -0.5]
    a, b = sess.run(None, {"x": x})
    ref = ort.InferenceSession(str(src), providers=["CPUExecutionProvider"]).run(None, {"x": x})
    assert a.dtype == np.float32 and b.dtype == np.float32  # io types kept
    np.testing.assert_allclose(a, ref[0], atol=1e-2)
    np.testing.assert_allclose(b, ref[1], atol=1e-2)
    assert (b >= 0).all() and (a < 0).any()  # b really is relu(a), a the pre-activation


def test_isolate_outputs_leaves_a_graph_whose_outputs_nobody_reads(tmp_path):
    model = onnx.load(str(_output_that_feeds_a_node(tmp_path / "two.onnx")))
    assert isolate_outputs(model) == 1
    onnx.checker.check_model(model)
    read = {i for n in model.graph.node for i in n.input}
    assert not read & {o.name for o in model.graph.output}
    assert isolate_outputs(model) == 0  # idempotent


def test_a_converter_failure_names_the_fp16_step(tmp_path, monkeypatch):
    from onnxconverter_common import float16

    def broken(*args, **kwargs):
        raise ValueError("unsupported op Foo")

    monkeypatch.setattr(float16, "convert_float_to_float16", broken)
    src = _output_that_feeds_a_node(tmp_path / "two.onnx")
    with pytest.raises(ExportError, match=r"fp16 conversion \(export/fp16.py, onnxconverter-common\) of two.onnx "
                                          r"failed: ValueError: unsupported op Foo"):
        convert_to_fp16(src, tmp_path)


# -- end to end: the Toy project with an onnx-fp16 backend ---------------------------------

FAULTS = '''
import onnx
from onnxconverter_common import float16

_real = float16.convert_float_to_float16

def _fault(model, *args, **kwargs):
    out = _real(model, *args, **kwargs)
    if FAULT == "convert":
        raise RuntimeError("injected converter failure")
    # declare the fp32 output as fp16: onnx.checker accepts it, ONNX Runtime refuses the file
    out.graph.output[0].type.tensor_type.elem_type = onnx.TensorProto.FLOAT16
    return out

float16.convert_float_to_float16 = _fault
'''


def _fp16_repo(toy_repo, fault: str | None):
    cfg = toy_repo.path / "projects" / "Toy" / "configs" / "deploy.yaml"
    text = cfg.read_text().replace("    onnx: {device: cpu}\n", "    onnx: {device: cpu}\n    onnx-fp16: {device: cpu}\n")
    text = text.replace('metric_tolerance: {"*": 0.0}', 'metric_tolerance: {"*": 1.0}')
    cfg.write_text(text)
    if fault is not None:
        toy_repo.makeconftest(f"FAULT = {fault!r}\n" + FAULTS)
    return toy_repo


@pytest.mark.parametrize("fault", ["convert", "session"])
def test_fp16_failure_fails_only_the_fp16_backend_with_the_step_named(toy_repo, fault):
    repo = _fp16_repo(toy_repo, fault)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export or evaluation", "-rA")
    outcomes = result.parseoutcomes()
    assert outcomes.get("errors", 0) == 0, result.stdout.str()
    result.assert_outcomes(passed=3, failed=2)
    failed = {line.split("::", 1)[1].split(" ")[0] for line in result.stdout.lines if line.startswith("FAILED ")}
    assert all("fp16" in t for t in failed), failed
    step = "fp16 conversion (export/fp16.py" + (", onnxconverter-common) of model.onnx failed" if fault == "convert"
                                                 else ") wrote model_fp16.onnx, but ONNX Runtime cannot load it")
    assert result.stdout.str().count(step) >= 2, result.stdout.str()
    doc = json.loads((repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    backends = doc["projects"]["Toy"]["evaluation"]["backends"]
    assert "metrics" in backends["pytorch"] and "metrics" in backends["onnx"]


def test_test_export_opens_the_fp16_variant_in_onnx_runtime(toy_repo):
    """A cached fp16 file that passes onnx.checker but that ONNX Runtime refuses (as the
    converter wrote for outputs read by other nodes) fails test_export, not only later."""
    from awml_harness.export.store import file_sha256

    repo = _fp16_repo(toy_repo, None)
    first = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export or evaluation")
    first.assert_outcomes(passed=5)  # export fp32 + fp16; evaluation pytorch, onnx, onnx-fp16
    (folder,) = (repo.path / "work_dirs" / "toy" / "artifacts").glob("model-fp16-*[!k]")
    model_file = folder / "model_fp16.onnx"
    model = onnx.load(str(model_file))
    model.graph.output[0].type.tensor_type.elem_type = TensorProto.FLOAT16
    onnx.save(model, str(model_file))
    onnx.checker.check_model(str(model_file))
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"]["model_fp16.onnx"] = {"sha256": file_sha256(model_file), "size": model_file.stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*fp16 conversion (export/fp16.py) wrote model_fp16.onnx, but ONNX Runtime cannot "
                                 "load it*", "FAILED *test_export*Toy-model-onnx-fp16*"])
