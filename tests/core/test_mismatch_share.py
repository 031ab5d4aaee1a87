"""`max_mismatch_share`: a per-output verification tolerance that lets a leaf pass while at
most that share of its elements differs (argmax masks whose near-tied pixels flip)."""

from __future__ import annotations

import numpy as np
import pytest

from awml_harness.compare import compare, compare_arrays
from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import DeployConfig, Scenario, Tolerance
from awml_harness.config.validation import from_mapping
from awml_harness.verification.tolerance import tolerance_for


def masks(numel: int, flipped: int) -> tuple[np.ndarray, np.ndarray]:
    ref = np.zeros(numel, np.int64)
    test = ref.copy()
    test[:flipped] = 3  # a different class
    return ref.reshape(10, -1), test.reshape(10, -1)


@pytest.mark.parametrize(("flipped", "passed"), [(0, True), (9, True), (10, True), (11, False), (500, False)])
def test_a_share_at_or_below_the_limit_passes_and_above_it_fails(flipped, passed):
    ref, test = masks(1000, flipped)  # limit 1 % of 1000 elements = 10
    leaf = compare_arrays("mask", ref, test, atol=0.0, rtol=0.0, max_mismatch_share=0.01)
    assert leaf.passed is passed
    assert leaf.mismatches == flipped and leaf.mismatch_share == pytest.approx(flipped / 1000)


def test_just_below_and_just_above_a_fractional_limit():
    ref, test = masks(1000, 25)  # share 0.025
    assert compare_arrays("m", ref, test, 0.0, 0.0, max_mismatch_share=0.0251).passed
    assert not compare_arrays("m", ref, test, 0.0, 0.0, max_mismatch_share=0.0249).passed


def test_without_a_share_one_element_fails():
    ref, test = masks(1000, 1)
    assert not compare_arrays("mask", ref, test, 0.0, 0.0).passed
    assert not compare({"mask": ref}, {"mask": test}, (0.0, 0.0)).passed


def test_a_nan_is_never_covered_by_the_share():
    ref = np.zeros(1000, np.float32)
    test = ref.copy()
    test[0] = np.nan
    leaf = compare_arrays("logits", ref, test, 1e-3, 1e-3, max_mismatch_share=0.5)
    assert not leaf.passed and leaf.nan_count == 1
    test[0] = np.inf
    assert not compare_arrays("logits", ref, test, 1e-3, 1e-3, max_mismatch_share=0.5).passed


def test_the_share_is_per_output_path_and_reported():
    ref_mask, test_mask = masks(1000, 5)
    logits = np.linspace(-1, 1, 12, dtype=np.float32)
    ref = {"logits": logits, "mask": ref_mask}
    test = {"logits": logits + np.float32(0.5), "mask": test_mask}

    def tol(path: str) -> tuple[float, ...]:
        return (0.0, 0.0, 0.01) if path == "mask" else (1e-3, 1e-3)

    result = compare(ref, test, tol)
    by_path = {leaf.path: leaf for leaf in result.leaves}
    assert by_path["mask"].passed and not by_path["logits"].passed  # the share covers the mask only
    assert by_path["mask"].as_dict()["max_mismatch_share"] == 0.01
    message = result.message("case")
    assert "1 of 2 outputs" in message and "logits" in message
    failing = compare({"mask": ref_mask}, {"mask": masks(1000, 20)[1]}, (0.0, 0.0, 0.01))
    assert "max_mismatch_share=0.01" in failing.message() and "20 / 1000 (2.00%)" in failing.message()


def test_a_tolerance_tuple_of_another_length_is_refused():
    with pytest.raises(ValueError, match="max_mismatch_share"):
        compare(np.zeros(2), np.zeros(2), (0.0,))  # type: ignore[arg-type]


def cfg(**verification):
    return from_mapping(DeployConfig, {"project": "X", "task_type": "t", "verification": verification})


def test_the_config_takes_it_per_output_and_the_fp16_floor_keeps_a_default_share():
    c = cfg(default=dict(atol=1e-4, rtol=1e-3, max_mismatch_share=0.001),
            outputs={"mask": dict(atol=0, rtol=0, max_mismatch_share=0.002)})
    fp32 = from_mapping(Scenario, {"ref_backend": "pytorch", "test_backend": "onnx"})
    fp16 = from_mapping(Scenario, {"ref_backend": "pytorch", "test_backend": "onnx", "test_precision": "fp16"})
    ver = c.verification
    assert tolerance_for(ver, fp32, "mask") == Tolerance(0.0, 0.0, 0.002)
    assert tolerance_for(ver, fp32, "logits").max_mismatch_share == 0.001
    assert tolerance_for(ver, fp16, "mask") == Tolerance(0.0, 0.0, 0.002)  # names the output: as written
    assert tolerance_for(ver, fp16, "logits") == Tolerance(0.02, 0.02, 0.001)  # the floor raises atol/rtol only


@pytest.mark.parametrize("share", [-0.1, 1.5])
def test_a_share_outside_zero_to_one_is_a_config_error(share):
    with pytest.raises(ConfigError) as info:
        cfg(outputs={"mask": dict(atol=0, rtol=0, max_mismatch_share=share)})
    assert info.value.key == "verification.outputs.mask.max_mismatch_share"
    # the bound that was crossed, in pydantic's words ("greater than or equal to 0", "less than or equal to 1")
    assert info.value.allowed.endswith("equal to 0" if share < 0 else "equal to 1"), info.value.allowed


def test_a_failing_share_governed_output_gets_a_share_suggestion_that_passes():
    """The hint for a mask names the share that would pass, not an atol (which means
    nothing for class indices); pasted back, it passes."""
    from awml_harness.config.load import parse_override
    from awml_harness.verification.suggest import verification_hint

    ref, test = masks(1000, 20)
    result = compare({"mask": ref}, {"mask": test}, (0.0, 0.0, 0.01))
    hint = verification_hint(result, "pytorch->onnx")
    assert "'mask': dict(atol=0.0, rtol=0.0, max_mismatch_share=0.03)" in hint
    import shlex

    option = shlex.split(hint.split("--cfg-options ", 1)[1].splitlines()[0])[0]
    key, value = parse_override(option)
    assert key == "verification.pair_outputs.pytorch->onnx.mask"
    assert compare({"mask": ref}, {"mask": test}, (value["atol"], value["rtol"], value["max_mismatch_share"])).passed
