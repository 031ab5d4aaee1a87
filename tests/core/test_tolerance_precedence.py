"""One documented precedence for verification tolerances (issue 24 item 4): the most
specific rule wins, and the fp16 floor is the least specific rule of all, so a rule that
names an output holds the fp16 graph as written."""

from __future__ import annotations

import numpy as np
import pytest

from awml_harness.compare import compare
from awml_harness.config.schema import DeployConfig, Scenario, Tolerance
from awml_harness.config.validation import from_mapping
from awml_harness.verification.tolerance import resolve

FP32 = from_mapping(Scenario, {"ref_backend": "pytorch", "test_backend": "onnx"})
FP16 = from_mapping(Scenario, {"ref_backend": "pytorch", "test_backend": "onnx", "test_precision": "fp16"})
TRT = from_mapping(Scenario, {"ref_backend": "onnx", "test_backend": "tensorrt", "test_device": "cuda:0"})


def ver(**verification):
    return from_mapping(DeployConfig, {"project": "X", "task_type": "t", "verification": verification}).verification


def test_a_per_output_rule_holds_the_fp16_graph_so_a_one_percent_bias_fails():
    v = ver(outputs={"depth": dict(atol=0.02, rtol=0.005)})
    depth = np.linspace(1.0, 40.0, 1000, dtype=np.float32)
    biased = depth * 1.01  # a systematic 1 % error of a continuous output
    result = compare({"depth": depth}, {"depth": biased}, lambda p: resolve(v, FP16, p).as_tuple())
    assert not result.passed
    assert resolve(v, FP16, "depth") == resolve(v, FP32, "depth")
    assert resolve(v, FP16, "depth").rule == "verification.outputs['depth']" and not resolve(v, FP16, "depth").lifted


def test_each_level_decides_in_the_documented_order():
    v = ver(default=dict(atol=1e-6, rtol=0.0), tolerance=1e-5, pairs={"pytorch->onnx": dict(atol=1e-4, rtol=0.0)},
            outputs={"a*": dict(atol=1e-3, rtol=0.0)},
            pair_outputs={"pytorch->onnx": {"ab": dict(atol=1e-2, rtol=0.0)},
                          "pytorch:cpu->onnx:cpu": {"abc": dict(atol=0.1, rtol=0.0)}})
    assert resolve(v, FP32, "abc").rule == "verification.pair_outputs['pytorch:cpu->onnx:cpu']['abc']"
    assert resolve(v, FP32, "ab").rule == "verification.pair_outputs['pytorch->onnx']['ab']"
    assert resolve(v, FP32, "a").rule == "verification.outputs['a*']"
    assert resolve(v, FP32, "b").rule == "verification.pairs['pytorch->onnx']"
    assert resolve(v, TRT, "b").rule == "verification.tolerance"
    assert resolve(v, TRT, "b").tolerance == Tolerance(1e-5, 0.0)  # the seed's number: absolute
    assert resolve(ver(default=dict(atol=1e-6, rtol=0.0)), TRT, "b").rule == "verification.default"


def test_the_fp16_floor_lifts_only_rules_that_name_neither_the_output_nor_the_fp16_pair():
    v = ver(default=dict(atol=1e-4, rtol=1e-4), pairs={"pytorch->onnx": dict(atol=1e-5, rtol=0.0)})
    got = resolve(v, FP16, "x")
    assert got.tolerance == Tolerance(2e-2, 2e-2) and got.lifted
    assert got.rule == "verification.pairs['pytorch->onnx'] + fp16 floor"
    named = ver(pairs={"pytorch->onnx-fp16": dict(atol=1e-3, rtol=0.0)})
    assert resolve(named, FP16, "x").tolerance == Tolerance(1e-3, 0.0)
    assert resolve(ver(default=dict(atol=1e-4, rtol=1e-4)), FP16, "x").rule == "verification.default + fp16 floor"
    # a rule already above the floor is not "lifted"
    loose = resolve(ver(default=dict(atol=0.5, rtol=0.5)), FP16, "x")
    assert loose.tolerance == Tolerance(0.5, 0.5) and not loose.lifted and loose.rule == "verification.default"


@pytest.mark.parametrize("table", ["outputs", "pair_outputs"])
def test_output_rules_beat_pair_rules_for_the_outputs_they_name(table):
    rule = {"heatmap": dict(atol=1e-5, rtol=0.0)}
    v = ver(pairs={"onnx->tensorrt": dict(atol=1e-2, rtol=1e-2)},
            **({table: rule} if table == "outputs" else {table: {"onnx->tensorrt": rule}}))
    assert resolve(v, TRT, "heatmap").tolerance == Tolerance(1e-5, 0.0)
    assert resolve(v, TRT, "reg").tolerance == Tolerance(1e-2, 1e-2)
