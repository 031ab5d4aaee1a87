from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.load import apply_overrides, load_deploy_config, parse_override
from awml_harness.config.schema import Backend, DeployConfig, MetricTolerance, Scenario, Tolerance
from awml_harness.config.validation import from_mapping
from awml_harness.verification.tolerance import tolerance_for

TOY = Path(__file__).parents[1] / "toy"


def minimal(**extra):
    return {"project": "Toy", "task_type": "classification", **extra}


def error_of(data) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        from_mapping(DeployConfig, data)
    return info.value


@pytest.mark.parametrize(
    ("data", "key", "allowed"),
    [
        (minimal(export={"mode": "tflite"}), "export.mode", "'onnx', 'trt', 'both' or 'none'"),
        (minimal(evalution={}), "evalution", "known keys"),
        (minimal(task_type="segmentation 2d"), "task_type", "a task type name"),
        (minimal(evaluation={"backends": {"onnx": {"device": "gpu0"}}}), "evaluation.backends.onnx.device", "cuda:N"),
        (minimal(evaluation={"backends": {"tflite": {}}}), "evaluation.backends.tflite", "a backend among"),
        (minimal(evaluation={"reference": "tensorrt"}), "evaluation.reference", "one of the configured backends"),
        (minimal(verification={"num_verify_samples": -1}), "verification.num_verify_samples", "greater than or equal to 0"),
        (minimal(verification={"num_verify_samples": "three"}), "verification.num_verify_samples", "a valid integer"),
        (minimal(backend_config={"common_config": {"precision_policy": "int4"}}),
         "backend_config.common_config.precision_policy", "'fp16'"),
        (minimal(backend_config={"common_config": {"max_workspace_size": -5}}),
         "backend_config.common_config.max_workspace_size", "greater than 0"),
        (minimal(backend_config={"model_inputs": [{"input_shapes": {"x": {
            "min_shape": [1, 8], "opt_shape": [1, 4], "max_shape": [1, 16]}}}]}),
         "backend_config.model_inputs[0].input_shapes.x", "min <= opt <= max"),
        (minimal(verification={"scenarios": {"onnx": [{"ref_backend": "pytorch", "test_backend": "onx"}]}}),
         "verification.scenarios.onnx[0].test_backend", "'onnx'"),
        (minimal(onnx_config={"opset_version": 99}), "onnx_config.opset_version", "less than or equal to 25"),
        ({"task_type": "classification"}, "project", "required"),
    ],
)
def test_every_mistake_names_key_value_and_allowed(data, key, allowed):
    err = error_of(data)
    assert err.key == key
    assert allowed in err.allowed
    assert key in str(err) and "\n" not in str(err)


def test_backend_enum_members_and_strings_are_the_same_key():
    a = from_mapping(DeployConfig, minimal(evaluation={"backends": {Backend.PYTORCH: {}, "onnx": {"device": "cpu"}}}))
    assert set(a.evaluation.backends) == {"pytorch", "onnx"}
    sc = from_mapping(Scenario, {"ref_backend": Backend.PYTORCH, "test_backend": "ONNX", "test_device": "cuda"})
    assert sc.test_backend is Backend.ONNX and sc.test_device == "cuda:0"


def test_seed_style_single_tolerance_and_per_output_globs():
    cfg = from_mapping(DeployConfig, minimal(verification={
        "tolerance": 0.1, "outputs": {"heat*": {"atol": 1e-5, "rtol": 0.0}},
        "pairs": {"onnx->tensorrt": {"atol": 0.5, "rtol": 0.5}},
    }))
    ver = cfg.verification
    sc = Scenario(Backend.PYTORCH, Backend.ONNX)
    assert tolerance_for(ver, sc, "heatmap") == Tolerance(1e-5, 0.0)
    assert tolerance_for(ver, sc, "pts_backbone_neck_head/heatmap") == Tolerance(1e-5, 0.0)
    assert tolerance_for(ver, sc, "reg") == Tolerance(0.1, 0.0)  # the seed's number is an absolute bound
    assert tolerance_for(ver, Scenario(Backend.ONNX, Backend.TENSORRT, test_device="cuda:0"), "reg") == Tolerance(0.5, 0.5)


def test_fp16_scenarios_get_a_precision_aware_floor_unless_a_rule_names_the_output_or_the_pair():
    cfg = from_mapping(DeployConfig, minimal(verification={
        "outputs": {"x": {"atol": 1e-5, "rtol": 1e-5}},
        "pair_outputs": {"pytorch->onnx-fp16": {"y": {"atol": 1e-3, "rtol": 0.0}}},
        "pairs": {"pytorch->onnx": {"atol": 1e-6, "rtol": 1e-6}},
    }))
    fp16 = Scenario(Backend.PYTORCH, Backend.ONNX, test_precision="fp16")
    fp32 = Scenario(Backend.PYTORCH, Backend.ONNX)
    ver = cfg.verification
    assert tolerance_for(ver, fp32, "x") == Tolerance(1e-5, 1e-5)
    assert tolerance_for(ver, fp16, "x") == Tolerance(1e-5, 1e-5)  # names the output: as written
    assert tolerance_for(ver, fp16, "y") == Tolerance(1e-3, 0.0)  # names the fp16 pair: as written
    assert tolerance_for(ver, fp32, "z") == Tolerance(1e-6, 1e-6)
    assert tolerance_for(ver, fp16, "z") == Tolerance(2e-2, 2e-2)  # the plain pair's rule: fp16 floor


def test_per_backend_metric_tolerance_overrides_the_global_one():
    cfg = from_mapping(DeployConfig, minimal(evaluation={
        "backends": {"pytorch": {}, "onnx-fp16": {"metric_tolerance": {"*": 0.05}}},
        "metric_tolerance": {"*": 0.01, "mAP": 0.0}}))
    assert cfg.evaluation.tolerance_for("onnx-fp16") == {"*": MetricTolerance(atol=0.05), "mAP": MetricTolerance(atol=0.0)}
    assert cfg.evaluation.tolerance_for("pytorch") == {"*": MetricTolerance(atol=0.01), "mAP": MetricTolerance(atol=0.0)}


def test_overrides_parse_literals_and_build_paths():
    assert parse_override("a.b=1e-6") == ("a.b", 1e-6)
    assert parse_override("x=[1, 2]") == ("x", [1, 2])
    assert parse_override("m=onnx") == ("m", "onnx")
    assert parse_override("f=false") == ("f", False)
    assert apply_overrides({"a": {"b": 1}}, ["a.c.d=2"]) == {"a": {"b": 1, "c": {"d": 2}}}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_override("novalue")
    with pytest.raises(ConfigError, match="holds int"):
        apply_overrides({"a": 1}, ["a.b=2"])


def test_python_config_with_base_inheritance(tmp_path):
    (tmp_path / "base.py").write_text(textwrap.dedent("""
        project = "Toy"
        task_type = "classification"
        verification = dict(num_verify_samples=5, default=dict(atol=1e-3, rtol=1e-3))
    """))
    (tmp_path / "child.py").write_text(textwrap.dedent("""
        _base_ = ["base.py"]
        _helper = 7
        verification = dict(num_verify_samples=_helper)
    """))
    cfg = load_deploy_config(tmp_path / "child.py", base_dir=TOY)
    assert cfg.verification.num_verify_samples == 7
    assert cfg.verification.default == Tolerance(1e-3, 1e-3)  # merged, not replaced


def test_yaml_config_with_base_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("project: Toy\ntask_type: classification\nmodel_cfg: {channels: 8}\n")
    (tmp_path / "c.yaml").write_text("_base_: base.yaml\nmodel_cfg: {size: 8}\n")
    cfg = load_deploy_config(tmp_path / "c.yaml", base_dir=TOY, overrides=["model_cfg.size=12"])
    assert (cfg.model_settings.channels, cfg.model_settings.size) == (8, 12)


def test_project_settings_are_validated_with_the_same_rules(tmp_path):
    (tmp_path / "c.yaml").write_text("project: Toy\ntask_type: classification\nmodel_cfg: {size: 2}\n")
    with pytest.raises(ConfigError, match=r"model_cfg.size.*>= 4"):
        load_deploy_config(tmp_path / "c.yaml", base_dir=TOY)


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("checkpoint_path: nope.pth\n", "checkpoint_path"),
        ("runtime_io: {info_file: missing.pkl}\n", "runtime_io.info_file"),
        ("project: Nope\n", "project"),
    ],
)
def test_missing_files_and_projects_are_config_errors(tmp_path, body, key):
    text = "project: Toy\ntask_type: classification\n"
    if body.startswith("project:"):
        text = "task_type: classification\n"
    (tmp_path / "c.yaml").write_text(text + body)
    with pytest.raises(ConfigError) as info:
        load_deploy_config(tmp_path / "c.yaml", base_dir=TOY)
    assert info.value.key == key
    assert str(tmp_path / "c.yaml") in str(info.value)


def test_unreadable_files_are_config_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("project: [unclosed\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_deploy_config(tmp_path / "bad.yaml", base_dir=TOY)
    (tmp_path / "bad.py").write_text("project = (\n")
    with pytest.raises(ConfigError, match="loadable Python config"):
        load_deploy_config(tmp_path / "bad.py", base_dir=TOY)
    with pytest.raises(ConfigError, match=".py, .yaml"):
        load_deploy_config(tmp_path / "x.toml", base_dir=TOY)


def test_yaml_is_loaded_safely(tmp_path):
    (tmp_path / "c.yaml").write_text("project: !!python/object/apply:os.system ['echo pwned']\ntask_type: classification\n")
    with pytest.raises(ConfigError, match="valid YAML"):
        load_deploy_config(tmp_path / "c.yaml", base_dir=TOY)


def test_relative_paths_resolve_against_the_base_dir(tmp_path):
    (tmp_path / "c.yaml").write_text("project: Toy\ntask_type: classification\nexport: {work_dir: wd}\n")
    cfg = load_deploy_config(tmp_path / "c.yaml", base_dir=TOY)
    assert cfg.export.work_dir == TOY.resolve() / "wd"


def test_scoped_overrides_apply_to_one_project_only(tmp_path):
    (tmp_path / "c.yaml").write_text("project: Toy\ntask_type: classification\n")
    cfg = load_deploy_config(tmp_path / "c.yaml", base_dir=TOY,
                             overrides=["Toy:model_cfg.size=9", "Other:model_cfg.nope=1", "c:model_cfg.channels=3"])
    assert (cfg.model_settings.size, cfg.model_settings.channels) == (9, 3)
    # a colon inside a dotted key is not a scope
    cfg = load_deploy_config(tmp_path / "c.yaml", base_dir=TOY,
                             overrides=["verification.pairs.pytorch:cpu->onnx:cpu={'atol': 1.0, 'rtol': 0.0}"])
    assert cfg.verification.pairs["pytorch:cpu->onnx:cpu"].atol == 1.0


def test_configs_handed_to_a_fresh_process_equal_the_ones_read():
    """The xdist handoff: a fresh interpreter (a worker) rebuilds the private packages of
    path-loaded projects before unpickling, so settings classes defined there resolve."""
    import pickle
    import subprocess
    import sys

    from awml_harness.config.load import pack_for_workers

    repo = Path(__file__).parents[2]
    cfg = load_deploy_config(repo / "projects/CalibrationStatusClassification/configs/deploy_config.py", base_dir=repo)
    assert cfg.model_settings is not None  # a settings object from the project's private package
    packed = pack_for_workers([cfg])
    assert packed is not None
    code = ("import pickle, sys\n"
            "from awml_harness.config.load import unpack_from_controller\n"
            "sys.stdout.buffer.write(pickle.dumps(unpack_from_controller(pickle.loads(sys.stdin.buffer.read()))))\n")
    out = subprocess.run([sys.executable, "-c", code], input=pickle.dumps(packed), capture_output=True, cwd=repo,
                         check=True)
    assert pickle.loads(out.stdout) == [cfg]


def test_a_config_that_does_not_pickle_is_read_by_each_worker_instead():
    import dataclasses
    import threading

    from awml_harness.config.load import pack_for_workers

    cfg = load_deploy_config(TOY / "projects/Toy/configs/deploy.yaml", base_dir=TOY)
    assert pack_for_workers([cfg]) is not None
    assert pack_for_workers([dataclasses.replace(cfg, raw={"lock": threading.Lock()})]) is None
