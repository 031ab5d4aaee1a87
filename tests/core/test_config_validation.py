"""Config validation on pydantic (awml_harness/config/validation.py): every mistake of a
config in one ConfigError, each with its key path and what is allowed; exit 4 kept."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import DeployConfig, LimitsConfig
from awml_harness.config.validation import from_mapping, to_builtin


def _errors(cls, data, key=""):
    with pytest.raises(ConfigError) as info:
        from_mapping(cls, data, key)
    return info.value


def test_three_mistakes_are_one_exit_4_error_listing_all_three(toy_repo):
    cfg = toy_repo.path / "projects" / "Toy" / "configs" / "deploy.yaml"
    text = cfg.read_text()
    text = text.replace("num_verify_samples: 2", "num_verify_samples: two")  # wrong type
    text = text.replace("export: {mode: onnx,", "export: {mdoe: onnx,")  # unknown key
    text = text.replace("latency_rounds: 5", "latency_rounds: 0")  # out of range
    cfg.write_text(text)
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--collect-only")
    assert result.ret == 4
    result.stderr.fnmatch_lines([
        "*deploy.yaml: config has 3 mistakes:",
        "  - config key 'export.mdoe' = 'onnx' is invalid; expected no such key; known keys under 'export': "
        "['mode', 'onnx_path', 'onnx_precision', 'work_dir']",
        "  - config key 'verification.num_verify_samples' = 'two' is invalid; expected a valid integer*",
        "  - config key 'evaluation.latency_rounds' = 0 is invalid; expected greater than 0",
    ])
    assert result.stderr.str().count("config key") == 3


def test_each_mistake_carries_key_value_and_allowed():
    err = _errors(DeployConfig, {
        "project": 3,
        "export": {"mode": "tflite"},
        "backend_config": {"model_inputs": [{"input_shapes": {"x": {"min_shape": [1, "a"]}}}]},
        "verification": {"pairs": {"pytorch->onnx": {"atol": -1.0, "rtol": float("nan")}}},
    })
    found = {p.key: (p.value, p.allowed) for p in err.problems}
    assert found == {
        "project": (3, "a valid string"),
        "task_type": (None, "a value (a string); this key is required"),
        "export.mode": ("tflite", "'onnx', 'trt', 'both' or 'none'"),
        "backend_config.model_inputs[0].input_shapes.x.min_shape[1]":
            ("a", "a valid integer, unable to parse string as an integer"),
        "backend_config.model_inputs[0].input_shapes.x.opt_shape": (None, "a value (a list); this key is required"),
        "backend_config.model_inputs[0].input_shapes.x.max_shape": (None, "a value (a list); this key is required"),
        "verification.pairs.pytorch->onnx.atol": (-1.0, "greater than or equal to 0"),
        "verification.pairs.pytorch->onnx.rtol": (pytest.approx(float("nan"), nan_ok=True), "a finite number"),
    }
    assert err.key == ", ".join(p.key for p in err.problems)
    bad_key = _errors(DeployConfig, {"project": "T", "task_type": "classification",
                                     "verification": {"scenarios": {"tflite": []}}})
    assert (bad_key.key, bad_key.value) == ("verification.scenarios.tflite", "tflite")
    assert bad_key.allowed == "a mapping key that is 'onnx', 'trt', 'both' or 'none'"
    assert str(err).count("\n  - ") == len(err.problems) == 8


def test_a_single_mistake_is_the_error_itself_and_keys_start_at_the_given_root():
    err = _errors(LimitsConfig, {"max_elements": 0}, "limits")
    assert err.problems == () and err.key == "limits.max_elements" and err.value == 0
    assert str(err) == "config key 'limits.max_elements' = 0 is invalid; expected greater than 0"
    assert _errors(LimitsConfig, [1, 2], "limits").allowed == "a mapping with keys ['max_elements', 'max_parameters']"


@dataclass(frozen=True)
class _Leaf:
    lo: int = 0
    hi: int = 1

    def validate(self, key: str) -> None:
        if self.lo > self.hi:
            raise ConfigError(f"{key}.lo", self.lo, f"at most hi ({self.hi})")


@dataclass(frozen=True)
class _Root:
    a: _Leaf = field(default_factory=_Leaf)
    items: tuple[_Leaf, ...] = ()
    checked: list[str] = field(default_factory=list)

    def validate(self, key: str) -> None:
        raise ConfigError(key or "<root>", None, "never reached while a child is wrong")


def test_cross_field_rules_of_every_node_are_collected_children_first():
    err = _errors(_Root, {"a": {"lo": 5, "hi": 2}, "items": [{}, {"lo": 3}]}, "cfg")
    assert [(p.key, p.allowed) for p in err.problems] == [("cfg.a.lo", "at most hi (2)"),
                                                          ("cfg.items[1].lo", "at most hi (1)")]
    only_root = _errors(_Root, {}, "cfg")  # children clean: the node's own rule runs
    assert only_root.key == "cfg" and only_root.allowed == "never reached while a child is wrong"


def test_results_are_frozen_dataclasses_that_replace_and_serialise():
    cfg = from_mapping(DeployConfig, {"project": "Toy", "task_type": "classification",
                                      "model_io": {"input_shape": [3, 8, 8]}, "export": {"work_dir": "w"}})
    assert cfg.model_io.input_shape == (3, 8, 8)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.project = "x"  # type: ignore[misc]
    moved = dataclasses.replace(cfg, export=dataclasses.replace(cfg.export, mode="none"))
    assert moved.export.mode == "none" and cfg.export.mode == "onnx"
    doc = to_builtin(cfg)
    assert doc["export"]["work_dir"] == "w" and doc["model_io"]["input_shape"] == [3, 8, 8]
    assert doc["evaluation"]["backends"]["onnx"]["device"] == "cpu"
