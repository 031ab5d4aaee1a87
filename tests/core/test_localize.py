"""Mismatch localisation (issue 17, item 6): `--awml-localize` names the layer where two
backends part ways: fp32 ONNX vs its fp16 variant node by node, PyTorch vs ONNX at
module boundaries."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from awml_harness.localize import (  # noqa: E402
    first_divergences,
    graph_nodes,
    mark_all_outputs,
    module_tensor_map,
    onnx_all_tensors,
)


def _chain(path):
    """x -> Mul(W) -> a -> Add(b) -> c -> Relu -> y; only `y` is a graph output."""
    w = numpy_helper.from_array(np.full((1, 4), 2.0, np.float32), "W")
    b = numpy_helper.from_array(np.full((1, 4), -1.0, np.float32), "B")
    graph = helper.make_graph(
        [helper.make_node("Mul", ["x", "W"], ["a"], name="scale"), helper.make_node("Add", ["a", "B"], ["c"], name="shift"),
         helper.make_node("Relu", ["c"], ["y"], name="act")], "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def test_mark_all_exposes_every_intermediate_tensor_to_onnx_runtime(tmp_path):
    path = _chain(tmp_path / "chain.onnx")
    model = onnx.load(str(path))
    assert mark_all_outputs(model) == ["a", "c"]
    assert [o.name for o in model.graph.output] == ["y", "a", "c"]
    x = np.array([[0.0, 0.25, 1.0, 2.0]], np.float32)
    tensors = onnx_all_tensors(path, {"x": x})
    np.testing.assert_allclose(tensors["a"], 2 * x)
    np.testing.assert_allclose(tensors["c"], 2 * x - 1)
    np.testing.assert_allclose(tensors["y"], np.maximum(2 * x - 1, 0))


def test_first_divergences_walks_in_graph_order_and_names_node_and_op(tmp_path):
    nodes = graph_nodes(onnx.load(str(_chain(tmp_path / "chain.onnx"))))
    ref = {"a": np.ones(4, np.float32), "c": np.ones(4, np.float32), "y": np.ones(4, np.float32)}
    test = {"a": np.ones(4, np.float16), "c": np.array([1, 1, 1.5, 1], np.float16), "y": np.full(4, 9, np.float32)}
    found, compared = first_divergences("g", nodes, ref, test, lambda name: (0.1, 0.0), limit=3)
    assert compared == 3
    assert [(d.node, d.op_type, d.tensor) for d in found] == [("shift", "Add", "c"), ("act", "Relu", "y")]
    assert found[0].max_abs_diff == pytest.approx(0.5) and found[0].mismatches == 1 and found[0].atol == 0.1
    only_first, _ = first_divergences("g", nodes, ref, test, lambda name: (0.1, 0.0), limit=1)
    assert [d.node for d in only_first] == ["shift"]
    none, _ = first_divergences("g", nodes, ref, test, lambda name: (10.0, 0.0))
    assert none == []


def test_module_scopes_map_to_the_last_node_of_their_name_scope(tmp_path):
    """Real TorchScript-exporter names: `/backbone/blocks.0/blocks.0.0/Conv` for a module in
    a ModuleList'ed Sequential, `/backbone/a/Conv` for `head["a"]` of a ModuleDict; a
    BatchNorm folded into its Conv makes that Conv's module unmappable."""
    torch = pytest.importorskip("torch")

    class Backbone(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Sequential(
                torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())])
            self.head = torch.nn.ModuleDict({"a": torch.nn.Conv2d(4, 4, 1)})

        def forward(self, x):
            return self.head["a"](self.blocks[0](x))

    model = torch.nn.Sequential()
    model.add_module("backbone", Backbone())
    model.eval()
    path = tmp_path / "nested.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.randn(1, 3, 8, 8),), str(path), dynamo=False)
    mapping = {k: v[0] for k, v in module_tensor_map(onnx.load(str(path)), model).items()}
    assert mapping == {
        "backbone": "/backbone/a/Conv", "backbone.head": "/backbone/a/Conv", "backbone.head.a": "/backbone/a/Conv",
        "backbone.blocks": "/backbone/blocks.0/blocks.0.2/Relu", "backbone.blocks.0": "/backbone/blocks.0/blocks.0.2/Relu",
        "backbone.blocks.0.2": "/backbone/blocks.0/blocks.0.2/Relu"}  # blocks.0.0: its Conv carries the BatchNorm


# -- end to end: the Toy project --------------------------------------------------------------

def _configure(toy_repo, model_cfg: str, scenario: str):
    cfg = toy_repo.path / "projects" / "Toy" / "configs" / "deploy.yaml"
    text = cfg.read_text().replace("model_cfg: {channels: 4, size: 16, num_samples: 5}", f"model_cfg: {model_cfg}")
    text = text.replace("    onnx:\n      - {ref_backend: pytorch, ref_device: cpu, test_backend: onnx, test_device: cpu}\n",
                        f"    onnx:\n      - {scenario}\n")
    assert model_cfg in text and scenario in text
    cfg.write_text(text)
    return toy_repo


def _results(repo):
    doc = json.loads((repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    return doc["projects"]["Toy"]["verification"]["results"]


FP16 = "{ref_backend: onnx, ref_device: cpu, test_backend: onnx, test_device: cpu, test_precision: fp16}"
FRAGILE = "{channels: 4, size: 16, num_samples: 5, fp16_fragile: 1000000.0}"


def test_localize_names_the_layer_that_breaks_in_fp16(toy_repo):
    repo = _configure(toy_repo, FRAGILE, FP16)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "verification", "--awml-localize",
                                       "--awml-report", "report.html")
    result.assert_outcomes(failed=2)
    out = result.stdout.str()
    assert "localisation (onnx-mark-all" in out, out
    page = (repo.path / "report.html").read_text()
    section = page.split("<h4>Localisation: first diverging nodes</h4>", 1)[1].split("</table>", 1)[0]
    assert section.count("<td>/fp16_fragile/Mul</td><td>Mul</td>") == 2  # one row per failing sample
    # the first diverging nodes are the fragile layer's: its gain constant (clipped by the
    # converter) and the multiply reading it; not the conv before it (fp16 rounding stays
    # within tolerance) nor the head after it (which only inherits the damage)
    result.stdout.fnmatch_lines(["*first diverging nodes:",
                                 "*1. model: node '/fp16_fragile/Constant' (Constant)*max abs diff 9.9e+05*",
                                 "*2. model: node '/fp16_fragile/Mul' (Mul)*max abs diff*"])
    for res in _results(repo):
        loc = res["localization"]
        assert loc["method"] == "onnx-mark-all" and loc["test"] == "onnx-fp16:cpu"
        assert [(d["node"], d["op_type"]) for d in loc["first"]] == [
            ("/fp16_fragile/Constant", "Constant"), ("/fp16_fragile/Mul", "Mul"), ("/fp16_fragile/Mul_1", "Mul")]
        for d in loc["first"]:
            assert d["max_abs_diff"] > d["atol"] + d["rtol"] * abs(d["ref_value"])
    jsonschema = pytest.importorskip("jsonschema")
    from importlib.resources import files

    schema = json.loads(files("awml_harness.report").joinpath("metrics.schema.json").read_text())
    doc = json.loads((repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    jsonschema.validate(doc, schema)
    broken = json.loads(json.dumps(doc))
    broken["projects"]["Toy"]["verification"]["results"][0]["localization"]["first"][0].pop("op_type")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)
        assert loc["compared"] >= 6 and loc["candidates"] >= loc["compared"]


def test_localize_is_opt_in(toy_repo):
    repo = _configure(toy_repo, FRAGILE, FP16)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "verification")
    result.assert_outcomes(failed=2)
    assert "localisation" not in result.stdout.str()
    assert all("localization" not in res for res in _results(repo))


def test_localize_a_passing_fp16_variant_is_not_localised(toy_repo):
    """Without the fragile layer the fp16 variant passes; nothing is localised or reported."""
    repo = _configure(toy_repo, "{channels: 4, size: 16, num_samples: 5}", FP16)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "verification", "--awml-localize")
    result.assert_outcomes(passed=2)
    assert all("localization" not in res for res in _results(repo))


def test_localize_pytorch_vs_onnx_at_module_boundaries(toy_repo):
    """The exported graph adds a skew in module `5` only (export_skew): hooks on the named
    modules, mapped to the ONNX tensors of their name scopes, point at that module."""
    scenario = "{ref_backend: pytorch, ref_device: cpu, test_backend: onnx, test_device: cpu}"
    repo = _configure(toy_repo, "{channels: 4, size: 16, num_samples: 5, export_skew: 0.5}", scenario)
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "verification", "--awml-localize")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["*localisation (torch-module-hooks+onnx-mark-all*",
                                 "*1. model: node '/5/Add' (Add) = module '5'*",
                                 "*note: model: 6 of 6 PyTorch modules map to an ONNX tensor*"])
    loc = _results(repo)[0]["localization"]
    assert [d["module"] for d in loc["first"]] == ["5"]


# -- TensorRT ----------------------------------------------------------------------------------

class _Tensor:
    def __init__(self, name, output=False, shape=False):
        self.name, self.is_network_output, self.is_shape_tensor = name, output, shape


class _Layer:
    def __init__(self, *outputs):
        self.outputs = outputs
        self.num_outputs = len(outputs)

    def get_output(self, j):
        return self.outputs[j]


class _Network:
    """The slice of INetworkDefinition that mark_all_layer_outputs uses (TensorRT cannot run here)."""

    def __init__(self, *layers):
        self.layers = layers
        self.num_layers = len(layers)
        self.marked = []

    def get_layer(self, i):
        return self.layers[i]

    def mark_output(self, tensor):
        self.marked.append(tensor.name)


def test_mark_all_layer_outputs_skips_outputs_and_shape_tensors():
    from awml_harness.export.tensorrt import mark_all_layer_outputs

    net = _Network(_Layer(_Tensor("a"), _Tensor("shape", shape=True)), _Layer(_Tensor("b")),
                   _Layer(_Tensor("out", output=True)))
    assert mark_all_layer_outputs(net) == 2
    assert net.marked == ["a", "b"]


def test_localize_onnx_vs_tensorrt_names_the_fragile_layer(toy_repo):
    """On a CUDA machine with TensorRT: the fp16 engine (strongly typed, from the fp16 ONNX)
    breaks in the same layer, found through an engine with every layer output marked."""
    pytest.importorskip("tensorrt", reason="TensorRT is not installed (GPU machines only)")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("TensorRT localisation needs a CUDA device; torch sees none")
    scenario = ("{ref_backend: onnx, ref_device: cpu, test_backend: tensorrt, test_device: 'cuda:0', "
                "test_precision: fp16}")
    repo = _configure(toy_repo, FRAGILE, scenario)
    cfg = repo.path / "projects" / "Toy" / "configs" / "deploy.yaml"
    cfg.write_text(cfg.read_text().replace("mode: onnx,", "mode: both,").replace(
        "    both:\n", "    both:\n      - " + scenario + "\n"))
    result = repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "verification and tensorrt",
                                       "--awml-localize")
    result.stdout.fnmatch_lines(["*localisation (onnx-mark-all+tensorrt-mark-all*", "*1. model: node '/fp16_fragile/*"])
