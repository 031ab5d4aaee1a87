"""CalibrationStatusClassification model and adapter: mmpretrain key layout, shapes, config."""

from __future__ import annotations

import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from awml_harness.checkpoint import load_state_dict  # noqa: E402
from awml_harness.config.errors import ConfigError  # noqa: E402
from awml_harness.config.load import load_deploy_config  # noqa: E402
from projects.CalibrationStatusClassification.model import CalibrationClassifier  # noqa: E402
from projects.CalibrationStatusClassification.project import Project  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "projects/CalibrationStatusClassification/configs"


def test_state_dict_keys_follow_mmpretrain() -> None:
    keys = set(CalibrationClassifier().state_dict())
    expected = {
        "backbone.conv1.weight", "backbone.bn1.weight", "backbone.bn1.bias", "backbone.bn1.running_mean",
        "backbone.bn1.running_var", "backbone.bn1.num_batches_tracked",
        "backbone.layer1.0.conv1.weight", "backbone.layer1.0.bn1.weight", "backbone.layer1.1.conv2.weight",
        "backbone.layer2.0.downsample.0.weight", "backbone.layer2.0.downsample.1.running_var",
        "backbone.layer4.1.bn2.bias", "head.fc.weight", "head.fc.bias",
    }
    assert expected <= keys
    assert {k.split(".")[0] for k in keys} == {"backbone", "head"}  # the pooling neck has no state
    assert "backbone.layer1.0.downsample.0.weight" not in keys  # identity shortcut in stage 1
    convs = [k for k in keys if k.endswith(".weight") and ("conv" in k or "downsample.0" in k)]
    assert len(convs) == 20  # ResNet-18: stem + 8 blocks x 2 + 3 projections


def test_full_width_is_resnet18_with_five_channels() -> None:
    model = CalibrationClassifier()
    sd = model.state_dict()
    assert tuple(sd["backbone.conv1.weight"].shape) == (64, 5, 7, 7)
    assert tuple(sd["head.fc.weight"].shape) == (2, 512)
    # torchvision resnet18 (11,689,512) with 5 input channels and 2 classes
    assert sum(p.numel() for p in model.parameters()) == 11_689_512 - 513_000 + 1_026 + 2 * 64 * 49


def test_logits_for_any_size_and_width() -> None:
    model = CalibrationClassifier(base_channels=8).eval()
    with torch.no_grad():
        assert model(torch.zeros(3, 5, 64, 96)).shape == (3, 2)
        assert model(torch.zeros(1, 5, 70, 50)).shape == (1, 2)


def test_shipped_checkpoint_loads_strictly() -> None:
    state = load_state_dict(ROOT / "fixtures/calibration/checkpoint.pth")
    model = CalibrationClassifier(base_channels=16)
    model.load_state_dict(state, strict=True)


def _cfg(name: str = "deploy_config.py", *overrides: str):
    return load_deploy_config(CONFIGS / name, overrides=overrides, base_dir=ROOT)


def test_project_pipeline_and_graph() -> None:
    project = Project(_cfg())
    model = project.build_model()
    (graph,) = project.graphs(model)
    assert graph.input_names == ("input",) and graph.output_names == ("output",)
    assert graph.example_inputs["input"].shape == (1, 5, 128, 192)
    assert graph.dynamic_axes == {}
    sample = project.dataset()[0]
    prepared = project.preprocess(sample)
    with torch.no_grad():
        logits = model(torch.from_numpy(prepared.inputs["input"])).numpy()
    pred = project.postprocess({"output": logits}, prepared)
    assert pred["label"] in (0, 1) and pred["probs"].shape == (2,)
    assert pred["probs"].sum() == pytest.approx(1.0, abs=1e-6)
    assert project.target(sample) == 1


def test_dynamic_axes_when_the_config_asks() -> None:
    cfg = _cfg("deploy_config.py", "model_io.batch_size=None",
               "onnx_config.dynamic_axes={'input': {2: 'height', 3: 'width'}}")
    (graph,) = Project(cfg).graphs(Project(cfg).build_model())
    assert graph.dynamic_axes == {"input": {0: "batch", 2: "height", 3: "width"}, "output": {0: "batch"}}
    assert graph.profiles[0]["input"].opt == (1, 5, 128, 192)


def test_random_init_warns_and_is_seeded() -> None:
    cfg = _cfg("deploy_config.py", "checkpoint_path=None")
    with pytest.warns(UserWarning, match="random init"):
        a = Project(cfg).build_model()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = Project(cfg).build_model()
    for (name, pa), pb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(pa, pb), name


def test_full_config_loads() -> None:
    cfg = _cfg("deploy_config_full.py")
    assert cfg.checkpoint_path is None and not cfg.evaluation.enabled
    assert cfg.model_settings.base_channels == 64 and cfg.model_settings.input_size == (1860, 2880)
    assert cfg.backend_config.model_inputs[0].input_shapes["input"].opt_shape == (1, 5, 1860, 2880)


def test_missing_data_files_are_a_config_error(tmp_path: Path) -> None:
    entry = {"image": {"img_path": "nope.png", "cam2img": np.eye(3), "lidar2cam": np.eye(4)},
             "lidar_points": {"lidar_path": "nope.bin"}}
    (tmp_path / "info.pkl").write_bytes(pickle.dumps({"data_list": [entry]}))
    with pytest.raises(ConfigError, match="runtime_io.data_root"):
        _cfg("deploy_config.py", f"runtime_io.info_file={tmp_path / 'info.pkl'}", f"runtime_io.data_root={tmp_path}")


def test_unsafe_info_file_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "info.pkl").write_bytes(pickle.dumps({"data_list": [Path("x")]}))
    with pytest.raises(ConfigError, match="refusing to unpickle"):
        _cfg("deploy_config.py", f"runtime_io.info_file={tmp_path / 'info.pkl'}")


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="model_cfg.in_channels"):
        _cfg("deploy_config.py", "model_cfg.in_channels=3")
    with pytest.raises(ConfigError, match="runtime_io.sample_idx"):
        _cfg("deploy_config.py", "runtime_io.sample_idx=40")


def test_project_module_does_not_import_torch() -> None:
    code = ("import sys; import projects.CalibrationStatusClassification.project; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
