"""Modules that return dicts or nested outputs (issue 12, item 9): the PyTorch backend and
the exported ONNX file pair values with the graph's output names by the same rule."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")

from awml_harness.backends.onnxruntime import OnnxRuntimeRunner  # noqa: E402
from awml_harness.backends.torch import TorchRunner, flatten_outputs  # noqa: E402
from awml_harness.config.schema import OnnxConfig  # noqa: E402
from awml_harness.export.onnx import ExportError, export_graph  # noqa: E402
from awml_harness.graph import Graph  # noqa: E402

X = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(1, 3, 4)


class Heads(torch.nn.Module):
    """Three distinguishable outputs; `form` picks how forward returns them."""

    def __init__(self, form: str) -> None:
        super().__init__()
        self.form = form

    def forward(self, x):  # noqa: ANN001, ANN201
        a, b, c = x * 2.0, x.sum(dim=1), torch.relu(x) - 1.0
        if self.form == "dict-by-name":  # keys are the output names, in another order
            return {"c": c, "a": a, "b": b}
        if self.form == "dict-other-keys":  # flattened by insertion order
            return {"first": a, "rest": {"second": b, "third": c}}
        if self.form == "nested":
            return (a, [b, (c,)])
        if self.form == "too-many":
            return a, b, c, c
        if self.form == "with-none":
            return a, None, c
        return a, b, c


def _graph(form: str) -> Graph:
    return Graph("heads", Heads(form).eval(), {"x": X}, ("x",), ("a", "b", "c"))


EXPECTED = {"a": X * 2.0, "b": X.sum(axis=1), "c": np.maximum(X, 0.0) - 1.0}


@pytest.mark.parametrize("form", ["dict-by-name", "dict-other-keys", "nested", "tuple"])
def test_pytorch_and_onnx_agree_on_dict_and_nested_outputs(tmp_path, form):
    graph = _graph(form)
    with TorchRunner(graph.module, graph.input_names, graph.output_names) as runner:
        torch_out = runner.infer({"x": X})
    name = export_graph(graph, tmp_path, OnnxConfig())
    with OnnxRuntimeRunner(tmp_path / name) as runner:
        ort_out = runner.infer({"x": X})
    assert list(torch_out) == list(ort_out) == ["a", "b", "c"]
    for n, want in EXPECTED.items():
        np.testing.assert_allclose(torch_out[n], want, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(ort_out[n], want, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("form", "found"), [("too-many", "4 tensor"), ("with-none", r"\[1\] is NoneType")])
def test_a_wrong_return_value_says_exactly_what_to_return(tmp_path, form, found):
    graph = _graph(form)
    what = (rf"returned {found}.*declares 3 output\(s\) \(a, b, c\); forward\(\) must return a tensor per output: "
            r"a tuple \(a, b, c\) in that order, or a dict keyed by exactly those names")
    with pytest.raises(RuntimeError, match="pytorch:cpu: the module " + what):
        with TorchRunner(graph.module, graph.input_names, graph.output_names) as runner:
            runner.infer({"x": X})
    with pytest.raises(ExportError, match="graph 'heads': the module " + what):
        export_graph(graph, tmp_path, OnnxConfig())


def test_a_dict_keyed_by_the_names_is_taken_by_name_not_by_order():
    t = {n: torch.tensor([float(i)]) for i, n in enumerate("abc")}
    out = flatten_outputs({"b": t["b"], "c": t["c"], "a": t["a"]}, ("a", "b", "c"), "here")
    assert [float(o) for o in out] == [0.0, 1.0, 2.0]
    out = flatten_outputs({"x": t["b"], "y": t["c"], "z": t["a"]}, ("a", "b", "c"), "here")
    assert [float(o) for o in out] == [1.0, 2.0, 0.0]  # other keys: insertion order
