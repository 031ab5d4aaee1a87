"""Property-based tests (hypothesis): the config loader only ever raises ConfigError, one
per config listing every mistake of it, and compare() keeps its promises for any input.
Profile: AWML_HYPOTHESIS_PROFILE."""

from __future__ import annotations

import copy

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from awml_harness.compare import compare
from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import DeployConfig
from awml_harness.config.validation import from_mapping

VALID = {
    "project": "Toy",
    "task_type": "classification",
    "checkpoint_path": None,
    "export": {"mode": "onnx", "work_dir": "w", "onnx_path": None},
    "runtime_io": {"sample_idx": 0},
    "model_io": {"input_name": "input", "input_shape": [3, 8, 8], "batch_size": 1},
    "onnx_config": {"opset_version": 17, "do_constant_folding": True, "dynamic_axes": {"input": {0: "b"}}},
    "backend_config": {"common_config": {"precision_policy": "fp16", "max_workspace_size": 1024},
                       "model_inputs": [{"input_shapes": {"input": {"min_shape": [1, 3, 8, 8], "opt_shape": [2, 3, 8, 8],
                                                                    "max_shape": [4, 3, 8, 8]}}}]},
    "verification": {"enabled": True, "num_verify_samples": 2, "default": {"atol": 1e-3, "rtol": 0.0},
                     "pairs": {"pytorch->onnx": {"atol": 1.0, "rtol": 0.0}},
                     "scenarios": {"onnx": [{"ref_backend": "pytorch", "ref_device": "cpu", "test_backend": "onnx",
                                             "test_device": "cpu"}]}},
    "evaluation": {"enabled": True, "num_samples": -1, "backends": {"pytorch": {"device": "cpu"}, "onnx": {"device": "cpu"}},
                   "metric_tolerance": {"*": 0.01}},
}

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=8), st.sampled_from(["pytorch", "onnx", "tensorrt", "cuda:0", "gpu", "fp16",
                                                          "onnx->tensorrt", "both", "-1"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.one_of(st.text(max_size=6), st.integers(-2, 5)),
                                                                      inner, max_size=4)), max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


ALL_PATHS = [p for p in _paths(VALID) if p]


def _only_config_errors(data) -> None:
    try:
        from_mapping(DeployConfig, data)
    except ConfigError as exc:
        assert exc.key and isinstance(exc.key, str)
        for problem in exc.problems or (exc,):  # one line per mistake, each naming its key
            assert isinstance(problem, ConfigError) and not problem.problems
            assert problem.key and "\n" not in str(problem)
            assert str(problem) in str(exc)


def test_the_valid_base_config_loads():
    cfg = from_mapping(DeployConfig, VALID)
    assert cfg.backend_config.common_config.precision_policy == "fp16"


@given(st.sampled_from(ALL_PATHS), values)
def test_replacing_any_value_ends_only_in_config_error(path, value):
    data = copy.deepcopy(VALID)
    node = data
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    _only_config_errors(data)


@given(st.sampled_from(ALL_PATHS))
def test_deleting_any_key_ends_only_in_config_error(path):
    data = copy.deepcopy(VALID)
    node = data
    for part in path[:-1]:
        node = node[part]
    if isinstance(node, dict):
        del node[path[-1]]
    else:
        node.pop(path[-1])
    _only_config_errors(data)


@given(st.dictionaries(st.text(max_size=10), values, max_size=6))
def test_arbitrary_top_level_dicts_end_only_in_config_error(data):
    _only_config_errors(data)


@given(st.sampled_from([p for p in ALL_PATHS if isinstance(p[-1], str)]), st.text(min_size=1, max_size=6), values)
def test_unknown_keys_anywhere_end_only_in_config_error(path, key, value):
    data = copy.deepcopy(VALID)
    node = data
    for part in path[:-1]:
        node = node[part]
    if isinstance(node, dict):
        node[key + "_x"] = value
    _only_config_errors(data)


# -- compare() --------------------------------------------------------------------------
floats = hnp.arrays(np.float64, hnp.array_shapes(max_dims=3, max_side=5),
                    elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@given(floats)
def test_identical_inputs_pass(arr):
    assert compare({"a": arr, "b": [arr, arr.copy()]}, {"a": arr.copy(), "b": [arr, arr]}, (0.0, 0.0)).passed


@given(floats.filter(lambda a: a.size > 0), st.data())
def test_nan_anywhere_fails(arr, data):
    i = data.draw(st.integers(0, arr.size - 1))
    bad = arr.copy()
    bad.flat[i] = np.nan
    side = data.draw(st.booleans())
    result = compare(bad if side else arr, arr if side else bad, (1e12, 1e12))
    assert not result.passed and result.failures[0].mismatches >= 1


@given(floats, st.data(), st.floats(0, 10), st.floats(0, 1), st.floats(0, 10), st.floats(0, 1))
def test_widening_tolerance_never_turns_pass_into_fail(arr, data, atol, rtol, more_atol, more_rtol):
    noise = data.draw(hnp.arrays(np.float64, arr.shape, elements=st.floats(-5, 5)))
    test = arr + noise
    if compare(arr, test, (atol, rtol)).passed:
        assert compare(arr, test, (atol + more_atol, rtol + more_rtol)).passed


@given(st.dictionaries(st.sampled_from("abcde"), st.integers(0, 3).map(np.zeros), min_size=1),
       st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 4).map(np.zeros)),
       st.lists(st.integers(0, 3), max_size=4), st.lists(st.integers(0, 3), max_size=4))
def test_structure_mismatches_are_reported_not_raised(ref, test, ref_list, test_list):
    result = compare({"d": ref, "l": [np.zeros(n) for n in ref_list]},
                     {"d": test, "l": [np.zeros(n) for n in test_list]})
    same = (set(ref) == set(test) and all(ref[k].shape == test[k].shape for k in ref) and ref_list == test_list)
    assert result.passed == same
    if not same:
        assert all(leaf.path for leaf in result.failures)
