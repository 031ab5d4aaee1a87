"""Config guards: overrides that would do nothing, tolerance patterns that name what the
comparison reports, suggestions that paste, YAML that never runs Python, artifact names
that stay in their folder, and shapes bounded before anything is allocated."""

from __future__ import annotations

import re
import shlex
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from awml_harness.compare import compare
from awml_harness.config.errors import ConfigError
from awml_harness.config.load import apply_overrides, load_deploy_config, parse_override, unknown_scopes
from awml_harness.config.read import read_file
from awml_harness.config.schema import Backend, DeployConfig, Scenario, Tolerance
from awml_harness.config.validation import from_mapping
from awml_harness.overrides import shadowed_overrides
from awml_harness.verification.suggest import hint_pair, suggest_tolerances, verification_hint
from awml_harness.verification.tolerance import output_matches, tolerance_for

TOY = Path(__file__).parents[1] / "toy"
REPO = Path(__file__).parents[2]
TOY_YAML = "project: Toy\ntask_type: classification\n"


def minimal(**extra):
    return {"project": "Toy", "task_type": "classification", **extra}


def config(**extra) -> DeployConfig:
    return from_mapping(DeployConfig, minimal(**extra))


# -- 7: overrides that silently do nothing --------------------------------------------------
def test_default_override_under_an_output_rule_names_the_rule_that_decides():
    cfg = config(verification={"outputs": {"heatmap": {"atol": 1e-2, "rtol": 0.0}},
                               "pairs": {"pytorch->onnx": {"atol": 1e-3, "rtol": 0.0}}})
    found = shadowed_overrides(cfg, ["verification.default.atol=1e-6"])
    assert len(found) == 1
    msg = found[0].message("Toy")
    assert "verification.default.atol=1e-6" in msg
    assert "verification.outputs['heatmap']" in msg and "verification.pairs['pytorch->onnx']" in msg
    # the rule really does decide: the override changes nothing for that output
    data = apply_overrides(minimal(verification={"outputs": {"heatmap": {"atol": 1e-2, "rtol": 0.0}}}),
                           ["verification.default.atol=1e-6"])
    ver = from_mapping(DeployConfig, data).verification
    assert tolerance_for(ver, Scenario(Backend.PYTORCH, Backend.ONNX), "g/heatmap") == Tolerance(1e-2, 0.0)


def test_overrides_at_the_deciding_level_or_without_rivals_are_not_reported():
    plain = config()
    assert shadowed_overrides(plain, ["verification.default.atol=1e-6", "verification.tolerance=0.1"]) == []
    cfg = config(verification={"outputs": {"heatmap": {"atol": 1e-2, "rtol": 0.0}}})
    assert shadowed_overrides(cfg, ["verification.outputs.heatmap.atol=1e-6", "export.mode=onnx"]) == []
    # an override scoped to another project is not this config's business
    assert shadowed_overrides(cfg, ["Other:verification.default.atol=1e-6"]) == []


@pytest.mark.parametrize(
    ("verification", "item", "rule"),
    [
        ({"tolerance": 0.1}, "verification.default.rtol=0", "verification.tolerance"),
        ({"pair_outputs": {"pytorch->onnx": {"reg": {"atol": 1, "rtol": 0}}}}, "verification.tolerance=1e-6",
         "verification.pair_outputs['pytorch->onnx']['reg']"),
        ({"pair_outputs": {"pytorch->onnx": {"reg": {"atol": 1, "rtol": 0}}}}, "verification.pairs.pytorch->onnx.atol=0",
         "verification.pair_outputs['pytorch->onnx']['reg']"),
        ({"pair_outputs": {"pytorch->onnx": {"re*": {"atol": 1, "rtol": 0}}}}, "verification.outputs.reg.atol=0",
         "verification.pair_outputs['pytorch->onnx']['re*']"),
    ],
)
def test_each_tolerance_level_is_shadowed_by_the_more_specific_ones(verification, item, rule):
    found = shadowed_overrides(config(verification=verification), [item])
    assert [f.item for f in found] == [item]
    assert rule in found[0].rules


def test_metric_tolerance_and_command_line_shadows():
    cfg = config(evaluation={"backends": {"pytorch": {}, "onnx": {"metric_tolerance": {"accuracy": 0.1}}}})
    found = shadowed_overrides(cfg, ["evaluation.metric_tolerance.accuracy=0.0", "evaluation.metric_tolerance.f1=0"])
    assert [f.rules for f in found] == [("evaluation.backends['onnx'].metric_tolerance['accuracy']",)]
    found = shadowed_overrides(config(), ["export.work_dir=a", "evaluation.backends.onnx.device=cpu"],
                               work_dir="b", device="cuda:0")
    assert [f.rules for f in found] == [("--work-dir b",), ("--device cuda:0",)]


def test_a_tolerance_below_the_fp16_floor_is_reported_for_fp16_scenarios():
    fp16 = {"scenarios": {"onnx": [{"ref_backend": "pytorch", "test_backend": "onnx", "test_precision": "fp16"}]}}
    found = shadowed_overrides(config(verification=fp16), ["verification.default.atol=1e-6",
                                                           "verification.outputs.x=dict(atol=1e-6, rtol=0.5)"])
    assert [(f.key, f.where) for f in found] == [("verification.default.atol", "its fp16 scenarios")]
    assert "fp16 floor" in found[0].rules[0]
    # above the floor, naming the fp16 pair or an output, or without fp16 scenarios: the override decides
    assert shadowed_overrides(config(verification=fp16), ["verification.default.atol=0.1",
                                                          "verification.pairs.pytorch->onnx-fp16.atol=1e-6",
                                                          "verification.outputs.x=dict(atol=1e-6, rtol=0.5)"]) == []
    assert [f.key for f in shadowed_overrides(config(verification=fp16), ["verification.pairs.pytorch->onnx.atol=1e-6"])] \
        == ["verification.pairs.pytorch->onnx.atol"]
    assert shadowed_overrides(config(), ["verification.default.atol=1e-6"]) == []


def test_a_scope_matching_no_loaded_config_is_found():
    items = ["Toy:model_cfg.size=9", "deploy:export.mode=onnx", "Tyo:model_cfg.size=9", "a.b=1",
             "verification.pairs.pytorch:cpu->onnx:cpu={'atol': 1.0, 'rtol': 0.0}"]
    assert unknown_scopes(items, {"Toy", "deploy"}) == ["Tyo:model_cfg.size=9"]


def test_plugin_warns_about_shadowed_overrides_and_refuses_unknown_scopes(toy_repo):
    result = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "--collect-only", "-q",
        "--cfg-options", "verification.outputs.output=dict(atol=1.0, rtol=0.0)", "verification.default.atol=1e-9")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*PytestConfigWarning: --cfg-options 'verification.default.atol=1e-9' does not "
                                 "apply to Toy*: verification.outputs?'output'? decides there instead*"])
    stray = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--collect-only",
                                          "--cfg-options", "Tyo:model_cfg.size=9")
    assert stray.ret == 4
    stray.stderr.fnmatch_lines(["*'Tyo:model_cfg.size=9'*scope 'Tyo' matches no loaded deploy config*Toy*"])


# -- 8: output paths, tolerance patterns and pasteable suggestions ---------------------------
def _nested(scale: float) -> dict:
    base = np.linspace(0.0, 1.0, 6, dtype=np.float32)
    return {"head": {"heatmap": base, "aux": [base * scale, {"score": base + scale - 1}]}}


def test_patterns_name_the_paths_the_comparison_reports():
    paths = [leaf.path for leaf in compare(_nested(1.0), _nested(1.0)).leaves]
    assert paths == ["head/heatmap", "head/aux[0]", "head/aux[1]/score"]
    assert output_matches("aux[0]", "head/aux[0]")  # brackets are literal, not a character class
    assert not output_matches("aux[0]", "head/aux0")
    assert output_matches("head/aux[*]", "head/aux[1]") and output_matches("aux[?]/score", "head/aux[1]/score")
    assert output_matches("heat*", "head/heatmap") and output_matches("*", "head/aux[1]/score")
    ver = config(verification={"outputs": {"aux[0]": {"atol": 0.5, "rtol": 0.0}}}).verification
    assert tolerance_for(ver, Scenario(Backend.PYTORCH, Backend.ONNX), "head/aux[0]") == Tolerance(0.5, 0.0)
    assert tolerance_for(ver, Scenario(Backend.PYTORCH, Backend.ONNX), "head/aux[1]/score") == Tolerance(1e-3, 1e-3)


def test_cfg_options_accept_dict_calls_of_literals_and_run_nothing(tmp_path):
    assert parse_override("a=dict(atol=1e-3, rtol=0)") == ("a", {"atol": 1e-3, "rtol": 0})
    assert parse_override("a={'x': dict(b=[1, -2.5], c=(None, True))}") == ("a", {"x": {"b": [1, -2.5], "c": (None, True)}})
    marker = tmp_path / "ran"
    key, value = parse_override(f"a=dict(x=open({str(marker)!r}, 'w'))")
    assert isinstance(value, str) and not marker.exists()  # not a literal: kept as text, never called
    assert parse_override("a=dict(**{'x': 1})")[1] == "dict(**{'x': 1})"


def _failing_pair():
    ref = _nested(1.0)
    test = _nested(1.0)
    test["head"]["aux"][0] = test["head"]["aux"][0] + np.float32(0.25)
    test["head"]["heatmap"] = test["head"]["heatmap"] + np.float32(0.01)
    return ref, test


def _passes(ver, ref, test) -> bool:
    sc = Scenario(Backend.PYTORCH, Backend.ONNX)
    return compare(ref, test, lambda p: (tolerance_for(ver, sc, p).atol, tolerance_for(ver, sc, p).rtol)).passed


def test_failure_hint_pastes_into_a_config_and_into_cfg_options(tmp_path):
    ref, test = _failing_pair()
    result = compare(ref, test, (1e-4, 0.0))
    assert {leaf.path for leaf in result.failures} == {"head/heatmap", "head/aux[0]"}
    hint = verification_hint(result, hint_pair("pytorch:cpu", "onnx:cpu"))
    assert "--awml-suggest-tolerances" in hint
    # as printed, into a Python deploy config
    line = re.search(r"in the deploy config: (verification = .*)$", hint, re.M).group(1)
    (tmp_path / "c.py").write_text(TOY_YAML.replace(": ", " = '").replace("\n", "'\n") + line + "\n")
    ver = from_mapping(DeployConfig, read_file(tmp_path / "c.py")).verification
    assert _passes(ver, ref, test)
    # as printed, into --cfg-options (through the shell's word splitting)
    words = shlex.split(re.search(r"--cfg-options (.*)$", hint, re.M).group(1))
    assert len(words) == 2
    ver = from_mapping(DeployConfig, apply_overrides(minimal(), words)).verification
    assert _passes(ver, ref, test)
    assert not _passes(config().verification, ref, test)


def test_pooled_suggestion_pastes_into_cfg_options_too():
    leaves = [{"path": "g/aux[0]", "problem": "", "max_abs_diff": 0.25, "max_rel_diff": 0.5},
              {"path": "g/heatmap", "problem": "", "max_abs_diff": 0.01, "max_rel_diff": 0.02}]
    doc = {"projects": {"Toy": {"config": "/x/deploy.yaml", "verification": {"results": [
        {"scenario": "pytorch:cpu-vs-onnx:cpu", "ref": "pytorch:cpu", "test": "onnx:cpu", "leaves": leaves}]}}}}
    text = suggest_tolerances(doc, 2.0)
    line = next(ln for ln in text.splitlines() if "--cfg-options" in ln)
    words = shlex.split(line.split("--cfg-options", 1)[1])
    ver = from_mapping(DeployConfig, apply_overrides(minimal(), words)).verification
    sc = Scenario(Backend.PYTORCH, Backend.ONNX)
    assert tolerance_for(ver, sc, "g/aux[0]") == Tolerance(0.5, 0.0)
    assert tolerance_for(ver, sc, "g/heatmap") == Tolerance(0.02, 0.0)


# -- 11: a YAML config never runs Python; _base_ cycles are config errors ------------------
def _evil(tmp_path: Path, name: str = "evil.py") -> Path:
    marker = tmp_path / "ran"
    (tmp_path / name).write_text(f"open({str(marker)!r}, 'w').close()\nproject = 'Toy'\ntask_type = 'classification'\n")
    return marker


def test_yaml_base_naming_python_is_refused_unless_opted_in(tmp_path):
    marker = _evil(tmp_path)
    (tmp_path / "c.yaml").write_text("_base_: [evil.py]\n")
    with pytest.raises(ConfigError) as info:
        load_deploy_config(tmp_path / "c.yaml", base_dir=TOY)
    assert info.value.key == "_base_" and "--awml-allow-python-in-yaml" in str(info.value)
    assert not marker.exists()
    cfg = load_deploy_config(tmp_path / "c.yaml", base_dir=TOY, allow_python_in_yaml=True)
    assert cfg.project == "Toy" and marker.exists()


@pytest.mark.parametrize(
    ("model_cfg", "key"),
    [("evil.py", "model_cfg"), ("{openmmlab: evil.py}", "model_cfg.openmmlab"), ("m.yaml", "_base_")],
)
def test_yaml_model_cfg_reaching_python_is_refused(tmp_path, model_cfg, key):
    marker = _evil(tmp_path)
    (tmp_path / "m.yaml").write_text("_base_: evil.py\n")
    (tmp_path / "c.yaml").write_text(TOY_YAML + f"model_cfg: {model_cfg}\n")
    with pytest.raises(ConfigError) as info:
        load_deploy_config(tmp_path / "c.yaml", base_dir=TOY)
    assert info.value.key == key and "never runs Python" in str(info.value)
    assert not marker.exists()


def test_python_deploy_configs_still_take_python_bases(tmp_path):
    _evil(tmp_path, "base.py")
    (tmp_path / "c.py").write_text("_base_ = ['base.py']\n")
    assert load_deploy_config(tmp_path / "c.py", base_dir=TOY).project == "Toy"


@pytest.mark.parametrize("loader", ["mmengine", "fallback"])
@pytest.mark.parametrize("suffix", [".py", ".yaml"])
def test_base_cycles_are_config_errors(tmp_path, monkeypatch, loader, suffix):
    if loader == "fallback":
        monkeypatch.setitem(sys.modules, "mmengine.config", None)  # import fails: the fallback loader runs
    elif suffix == ".py":
        pytest.importorskip("mmengine.config")
    if suffix == ".py":
        (tmp_path / "a.py").write_text("_base_ = ['b.py']\nproject = 'Toy'\ntask_type = 'classification'\n")
        (tmp_path / "b.py").write_text("_base_ = 'c.py'\n")
        (tmp_path / "c.py").write_text("_base_ = ['a.py']\n")
    else:
        (tmp_path / "a.yaml").write_text("_base_: [b.yaml]\n" + TOY_YAML)
        (tmp_path / "b.yaml").write_text("_base_: c.yaml\n")
        (tmp_path / "c.yaml").write_text("_base_: [a.yaml]\n")
    with pytest.raises(ConfigError) as info:
        load_deploy_config(tmp_path / f"a{suffix}", base_dir=TOY)
    assert info.value.key == "_base_"
    assert f"a{suffix} -> b{suffix} -> c{suffix} -> a{suffix}" in str(info.value)


def test_a_shared_base_is_no_cycle(tmp_path):
    (tmp_path / "root.yaml").write_text(TOY_YAML)
    (tmp_path / "x.yaml").write_text("_base_: root.yaml\n")
    (tmp_path / "y.yaml").write_text("_base_: root.yaml\n")
    (tmp_path / "c.yaml").write_text("_base_: [x.yaml, y.yaml]\n")
    assert load_deploy_config(tmp_path / "c.yaml", base_dir=TOY).project == "Toy"


def test_plugin_option_opts_in_to_python_in_yaml(toy_repo):
    cfg_dir = toy_repo.path / "projects" / "Toy" / "configs"
    (cfg_dir / "base.py").write_text("verification = dict(num_verify_samples=1)\n")
    text = (cfg_dir / "deploy.yaml").read_text()
    (cfg_dir / "deploy.yaml").write_text("_base_: base.py\n" + text.replace("  num_verify_samples: 2\n", ""))
    refused = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--collect-only")
    assert refused.ret == 4
    refused.stderr.fnmatch_lines(["*'_base_' = 'base.py'*never runs Python (pass --awml-allow-python-in-yaml*"])
    allowed = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--collect-only", "-q",
                                            "-k", "verification", "--awml-allow-python-in-yaml")
    assert allowed.ret == 0
    allowed.stdout.fnmatch_lines(["*test_verification*-s0*"])
    assert "-s1" not in allowed.stdout.str()  # the Python base's num_verify_samples=1 applied


# -- 12: onnx_config.save_file stays in the artifact folder ----------------------------------
@pytest.mark.parametrize("name", ["../model.onnx", "/tmp/model.onnx", "sub/../../x.onnx", "a/b.onnx",
                                  "..\\model.onnx", "C:model.onnx"])
def test_save_file_cannot_leave_the_artifact_folder(name):
    with pytest.raises(ConfigError) as info:
        config(onnx_config={"save_file": name})
    assert info.value.key == "onnx_config.save_file" and "bare file name" in info.value.allowed


def test_a_bare_save_file_is_fine():
    assert config(onnx_config={"save_file": "my model.v2.onnx"}).onnx_config.save_file == "my model.v2.onnx"


# -- 13: shapes bounded before anything is allocated -----------------------------------------
def test_a_huge_input_shape_is_refused_naming_key_and_limit():
    with pytest.raises(ConfigError) as info:
        config(model_io={"input_shape": [3, 96000, 96000]})
    assert info.value.key == "model_io.input_shape"
    assert "268435456" in info.value.allowed and "limits.max_elements" in info.value.allowed
    assert "27648000000" in info.value.allowed
    # the limit is configurable, and counts the batch
    assert config(model_io={"input_shape": [3, 96000, 96000]}, limits={"max_elements": 10**11}).limits.max_elements
    with pytest.raises(ConfigError, match="model_io.input_shape"):
        config(model_io={"input_shape": [3, 100, 100], "batch_size": 8}, limits={"max_elements": 200_000})
    with pytest.raises(ConfigError, match="limits.max_elements"):
        config(limits={"max_elements": 0})


def test_a_huge_profile_shape_is_refused_naming_key():
    profile = {"min_shape": [1, 3, 8, 8], "opt_shape": [1, 3, 8, 8], "max_shape": [64, 3, 8192, 8192]}
    with pytest.raises(ConfigError) as info:
        config(backend_config={"model_inputs": [{"input_shapes": {"images": profile}}]})
    assert info.value.key == "backend_config.model_inputs[0].input_shapes.images.max_shape"


@pytest.mark.parametrize(
    ("project", "task", "model_cfg", "key"),
    [
        ("YOLOX_opt_elan", "detection2d", "{input_size: [96000, 96000]}", "model_cfg.input_size"),
        ("CenterPoint", "detection3d", "{voxel_size: [0.004, 0.004, 6.0]}", "model_cfg.voxel_size"),
        ("CenterPoint", "detection3d", "{synthetic_points: 100000000000}", "model_cfg.synthetic_points"),
        ("CalibrationStatusClassification", "classification", "{input_size: [96000, 96000]}", "model_cfg.input_size"),
    ],
)
def test_projects_bound_their_example_inputs_at_config_time(tmp_path, project, task, model_cfg, key):
    (tmp_path / "c.yaml").write_text(textwrap.dedent(f"""\
        project: {project}
        task_type: {task}
        model_cfg: {model_cfg}
        evaluation: {{enabled: false}}
    """))
    with pytest.raises(ConfigError) as info:
        load_deploy_config(tmp_path / "c.yaml", base_dir=REPO)
    assert info.value.key == key and "limits.max_elements" in info.value.allowed
