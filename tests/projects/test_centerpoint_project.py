"""CenterPoint adapter on the shipped small config: graphs, the two-graph forward with
its stage timers, postprocess into core Detections, and the config cross-checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import load_deploy_config
from awml_harness.project import StageTimer

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "projects/CenterPoint/configs/deploy_config.py"
FULL = ROOT / "projects/CenterPoint/configs/deploy_config_full.py"


def load(path: Path = CONFIG, overrides: tuple[str, ...] = ()):
    from projects.CenterPoint.project import Project

    return Project(load_deploy_config(path, overrides=overrides, base_dir=ROOT))


def test_project_loads_without_torch_and_derives_profiles() -> None:
    project = load(overrides=("checkpoint_path=None",))
    s = project.settings
    assert project.graph_names() == ("pts_voxel_encoder", "pts_backbone_neck_head")
    assert s.in_channels == 10 and s.grid_size == (128, 128, 1)


def test_full_config_derives_c_11_and_the_1020_grid() -> None:
    s = load(FULL).settings
    assert s.in_channels == 11 and s.grid_size == (1020, 1020, 1) and s.head_size == (510, 510)
    assert s.voxel_profile == (1000, 32000, 96000)


def test_backend_profile_that_disagrees_with_model_cfg_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="input_features"):
        load(
            overrides=(
                "checkpoint_path=None",
                "backend_config.model_inputs=[{'input_shapes': {'input_features': "
                "{'min_shape': [1, 20, 11], 'opt_shape': [2, 20, 11], 'max_shape': [3, 20, 11]}}}]",
            )
        )


def test_two_graph_forward_postprocess_and_detections() -> None:
    torch = pytest.importorskip("torch")
    if not (ROOT / "fixtures/centerpoint/checkpoint.pth").is_file():
        pytest.skip("run python -m fixtures.centerpoint.train first")
    project = load()
    model = project.build_model()
    graphs = {g.name: g for g in project.graphs(model)}
    ve, head = graphs["pts_voxel_encoder"], graphs["pts_backbone_neck_head"]
    assert ve.example_inputs["input_features"].shape[1:] == (20, 10)
    assert ve.dynamic_axes["input_features"] == {0: "num_voxels"}
    assert ve.profiles[0]["input_features"].max == (12000, 20, 10)
    assert head.example_inputs["spatial_features"].shape == (1, 32, 128, 128)

    def run_graph(name, feeds):
        g = graphs[name]
        with torch.no_grad():
            out = g.module(*[torch.from_numpy(feeds[n]) for n in g.input_names])
        out = out if isinstance(out, tuple) else (out,)
        return {n: o.numpy() for n, o in zip(g.output_names, out, strict=True)}

    sample = project.dataset()[0]
    prepared = project.preprocess(sample)
    timer = StageTimer()
    outputs = project.forward(prepared, run_graph, timer)
    assert set(timer.times) == {"voxelize", "pts_voxel_encoder", "scatter", "pts_backbone_neck_head"}
    assert outputs["pillar_features"].shape[1:] == (1, 32)
    assert outputs["heatmap"].shape == (1, 5, 64, 64)
    prediction = project.postprocess(outputs, prepared)
    det = project.detections(prediction)
    assert det.kind == "box3d" and det.boxes.shape[1] == 7 and len(det) > 0
    assert project.match_settings()["threshold"] == 0.5
    ev = project.evaluator()
    ev.add(prepared.sample_id, prediction, project.target(sample))
    assert ev.compute()["mAP"] > 0.5  # the trained checkpoint finds the objects


def test_empty_cloud_runs_through_forward() -> None:
    from projects.CenterPoint.data import Sample

    project = load(overrides=("checkpoint_path=None",))
    s = project.settings
    h, w = s.head_size
    calls = []

    def run_graph(name, feeds):
        calls.append(name)
        maps = {
            n: np.zeros((1, c, h, w), np.float32)
            for n, c in (("heatmap", 5), ("reg", 2), ("height", 1), ("dim", 3), ("rot", 2), ("vel", 2))
        }
        maps["heatmap"] -= 10.0  # what a head says about an empty canvas: nothing
        return maps

    sample = Sample("empty", np.zeros((0, 4), np.float32), np.zeros((0, 7), np.float32), np.zeros(0, np.int64))
    prepared = project.preprocess(sample)
    out = project.forward(prepared, run_graph, StageTimer())
    assert calls == ["pts_backbone_neck_head"] and out["pillar_features"].shape == (0, 1, 32)
    assert len(project.postprocess(out, prepared)["scores"]) == 0
