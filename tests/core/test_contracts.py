"""The project contract checked when a config loads, and the runner lifecycle (issue 25
items 4 and 5): a project's omission is one config error naming it; a runner is
activated, timed and deactivated, takes a file, bytes, a session or a loader, and every
runner a run opens is closed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import load_deploy_config

TOY = Path(__file__).resolve().parent.parent / "toy"


def _project(tmp_path: Path, body: str) -> Path:
    """A copy of the Toy project whose Project class is edited by `body` (appended)."""
    folder = tmp_path / "projects" / "Bad"
    folder.mkdir(parents=True)
    src = (TOY / "projects" / "Toy" / "project.py").read_text()
    (folder / "project.py").write_text(src + "\n\n" + textwrap.dedent(body))
    cfg = tmp_path / "deploy.yaml"
    cfg.write_text("project: Bad\ntask_type: classification\nexport: {work_dir: wd}\n")
    return cfg


def test_a_project_missing_a_required_member_is_named_at_load(tmp_path):
    cfg = _project(tmp_path, """
        from awml_harness.project import ProjectAdapter as _Base

        class Project(_Base):  # only some of the contract written
            name = "Bad"
            task_type = "classification"

            def graph_names(self):
                return ("model",)

            def build_model(self):
                return None
        """)
    with pytest.raises(ConfigError) as info:
        load_deploy_config(cfg, base_dir=tmp_path)
    assert info.value.key == "project"
    assert "lacks dataset, evaluator, graphs, postprocess, preprocess, target" in str(info.value)


def test_several_graphs_need_a_forward_override(tmp_path):
    cfg = _project(tmp_path, """
        class Project(Project):
            def graph_names(self):
                return ("encoder", "head")
        """)
    with pytest.raises(ConfigError, match=r"a forward\(\) override: .* exports 2 graphs \['encoder', 'head'\]"):
        load_deploy_config(cfg, base_dir=tmp_path)


@pytest.mark.parametrize("names", ["()", "('a', 'a')", "['model']", "('has space',)"])
def test_graph_names_must_be_distinct_names_in_a_tuple(tmp_path, names):
    cfg = _project(tmp_path, f"""
        class Project(Project):
            def graph_names(self):
                return {names}
        """)
    with pytest.raises(ConfigError, match=r"graph_names\(\) returning a tuple of distinct graph names"):
        load_deploy_config(cfg, base_dir=tmp_path)


def test_graphs_that_disagree_with_graph_names_fail_when_built(tmp_path):
    from awml_harness.context.data import ModelData, RunOptions

    cfg = _project(tmp_path, """
        class Project(Project):
            def graph_names(self):
                return ("renamed",)
        """)
    data = ModelData(load_deploy_config(cfg, base_dir=tmp_path), RunOptions())
    with pytest.raises(ValueError, match=r"graphs\(\) returned graphs \['model'\] but graph_names\(\) declares "
                                         r"\['renamed'\]"):
        data.graphs  # noqa: B018 - building them is the test


# -- runners -------------------------------------------------------------------------------
def _relu_model() -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


X = np.array([[-1.0, 2.0, -3.0, 4.0]], np.float32)


def test_a_runner_must_be_active_and_times_each_call(tmp_path):
    from awml_harness.backends.onnxruntime import OnnxRuntimeRunner

    runner = OnnxRuntimeRunner(_relu_model(), threads=1)
    with pytest.raises(RuntimeError, match="not active; call activate"):
        runner.infer({"x": X})
    with runner:
        assert runner.is_active and runner.infer({"x": X})["y"].tolist() == [[0.0, 2.0, 0.0, 4.0]]
        assert runner.last_inference_time is not None and runner.last_inference_time >= 0
        runner.infer({"x": X})
        assert runner.calls == 2 and runner.inference_time >= runner.last_inference_time
    assert not runner.is_active and runner.session is None


def test_a_runner_takes_a_path_bytes_a_session_or_a_loader(tmp_path):
    import onnxruntime as ort

    from awml_harness.backends.onnxruntime import OnnxRuntimeRunner

    blob = _relu_model()
    (tmp_path / "m.onnx").write_bytes(blob)
    session = ort.InferenceSession(blob, providers=["CPUExecutionProvider"])
    made = []

    def loader():
        made.append(1)
        return ort.InferenceSession(blob, providers=["CPUExecutionProvider"])

    for source in (tmp_path / "m.onnx", str(tmp_path / "m.onnx"), blob, session, loader):
        with OnnxRuntimeRunner(source) as runner:
            assert runner.infer({"x": X})["y"].max() == 4.0
    assert made == [1]  # the loader runs on activation, once
    assert session.run(None, {"x": X})[0].max() == 4.0  # a session handed in stays usable
    with pytest.raises(TypeError, match="a model path, model bytes, an InferenceSession or a loader"):
        OnnxRuntimeRunner(42).activate()


def test_a_torch_runner_is_a_runner_too():
    torch = pytest.importorskip("torch")
    from awml_harness.backends.torch import TorchRunner

    runner = TorchRunner(torch.nn.ReLU(), ("x",), ("y",))
    with pytest.raises(RuntimeError, match="not active"):
        runner.infer({"x": X})
    with runner:
        assert runner.infer({"x": X})["y"].tolist() == [[0.0, 2.0, 0.0, 4.0]]


def test_every_runner_a_run_opens_is_closed(toy_repo):
    """A conftest records every runner activated and deactivated during a real run."""
    toy_repo.makeconftest("""
        from awml_harness.backends import base

        opened, closed = [], []
        _activate, _deactivate = base.BaseRunner.activate, base.BaseRunner.deactivate

        def activate(self):
            if not self.is_active:
                opened.append(self.name)
            _activate(self)

        def deactivate(self):
            if self.is_active:
                closed.append(self.name)
            _deactivate(self)

        base.BaseRunner.activate, base.BaseRunner.deactivate = activate, deactivate

        def pytest_unconfigure(config):
            print(f"RUNNERS opened={len(opened)} closed={len(closed)} still-open={sorted(set(opened) - set(closed))}")
    """)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-s", "-k", "verification or evaluation")
    result.assert_outcomes(passed=4)
    line = next(x for x in result.stdout.lines if x.startswith("RUNNERS"))
    opened, closed = (int(part.split("=")[1]) for part in line.split()[1:3])
    assert opened >= 2 and opened == closed and line.endswith("still-open=[]"), line
