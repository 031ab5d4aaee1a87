"""Metric deltas, the tolerance gate, the xdist wire format and the shard merge
(awml_harness/evaluation/), tested through its public functions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from awml_harness.evaluation.gate import judge_metrics, metric_deltas, scalar_metrics
from awml_harness.evaluation.merge import merge_chunks
from awml_harness.evaluation.wire import decode, encode
from awml_harness.project import Evaluator


def merge_shards(adapter, chunks, reference, tolerance):
    """The merged results as the metrics JSON records them, with the gate's failure lines."""
    return {name: {**res.record(), "failures": res.failures}
            for name, res in merge_chunks(adapter, chunks, reference, tolerance).items()}


def delta_failures(metrics, reference, tolerance, directions=None):
    verdict = judge_metrics(metrics, reference, tolerance, directions)
    return verdict.deltas, verdict.failures


def test_scalar_metrics_keep_numbers_only_and_make_them_floats():
    got = scalar_metrics({"mAP": 1, "acc": 0.5, "flag": True, "per_class": {"car": 0.1}, "name": "x", "n": None})
    assert got == {"mAP": 1.0, "acc": 0.5}
    assert all(type(v) is float for v in got.values())


def test_deltas_are_test_minus_reference_on_shared_keys():
    assert metric_deltas({"a": 0.7, "b": 0.1, "only_test": 1.0}, {"a": 0.5, "b": 0.3, "only_ref": 2.0}) == \
        pytest.approx({"a": 0.2, "b": -0.2})


def test_tolerance_gate_per_metric_wildcard_and_boundary():
    ref = {"mAP": 0.50, "NDS": 0.60, "recall": 0.70}
    test = {"mAP": 0.45, "NDS": 0.60, "recall": 0.75}
    deltas, failures = delta_failures(test, ref, {"*": 0.01})
    assert deltas == pytest.approx({"mAP": -0.05, "NDS": 0.0, "recall": 0.05})
    assert [line.split(":")[0].strip() for line in failures] == ["- mAP", "- recall"]  # sorted by metric
    # a named metric's tolerance wins over "*"
    _, failures = delta_failures(test, ref, {"*": 0.01, "mAP": 0.1, "recall": 0.1})
    assert failures == []
    # no rule for a metric: it is reported, never gated
    _, failures = delta_failures(test, ref, {"NDS": 0.0})
    assert failures == []
    # exactly at the tolerance passes, a hair beyond fails
    assert delta_failures({"m": 0.25}, {"m": 0.5}, {"m": 0.25})[1] == []
    assert len(delta_failures({"m": 0.25}, {"m": 0.5}, {"m": 0.2499})[1]) == 1
    # zero tolerance: any change fails, no change passes
    assert delta_failures({"m": 0.5}, {"m": 0.5}, {"*": 0.0})[1] == []
    assert len(delta_failures({"m": 0.5001}, {"m": 0.5}, {"*": 0.0})[1]) == 1


def test_failure_line_names_values_signed_delta_tolerance_and_key():
    _, failures = delta_failures({"mAP": 0.45}, {"mAP": 0.5}, {"mAP": 0.01})
    assert failures == ["  - mAP: 0.45 vs reference 0.5 (changed by 0.05: delta -0.05 = -10.0 %, direction "
                        "undeclared; allowed 0.01; key evaluation.metric_tolerance.mAP)"]
    _, failures = delta_failures({"mAP": 0.55}, {"mAP": 0.5}, {"*": 0.01})
    assert "delta +0.05 = +10.0 %, direction undeclared; allowed 0.01;" in failures[0]
    _, failures = delta_failures({"mAP": 0.45}, {"mAP": 0.5}, {"mAP": 0.01}, {"mAP": "higher"})
    assert failures == ["  - mAP: 0.45 vs reference 0.5 (worse by 0.05: delta -0.05 = -10.0 %, higher is better; "
                        "allowed 0.01; key evaluation.metric_tolerance.mAP)"]
    _, failures = delta_failures({"AbsRel": 0.4}, {"AbsRel": 0.5}, {"*": 0.01}, {"AbsRel": "lower"})
    assert failures[0].startswith("  - AbsRel: 0.4 vs reference 0.5 (better by 0.1: delta -0.1 = -20.0 %, lower is better")


def test_wire_format_round_trips_arrays_tuples_and_nesting():
    strided = np.arange(12, dtype=np.float32).reshape(3, 4).T  # not contiguous
    obj = {"boxes": strided, "labels": np.array([1, 2], np.int64), "pair": (np.float32(1.5), [np.int64(3), "s"]),
           7: None, "empty": np.zeros((0, 4), np.float16)}
    wire = encode(obj)
    # builtins only: what travels on an xdist report
    assert isinstance(wire["pair"], dict) and wire["pair"]["__tuple__"][0] == 1.5
    assert type(wire["pair"]["__tuple__"][1][0]) is int
    assert "7" in wire and 7 not in wire
    back = decode(wire)
    assert set(back) == {"boxes", "labels", "pair", "7", "empty"}
    np.testing.assert_array_equal(back["boxes"], strided)
    assert back["boxes"].dtype == np.float32 and back["boxes"].shape == (4, 3)
    assert back["labels"].dtype == np.int64
    assert back["empty"].shape == (0, 4) and back["empty"].dtype == np.float16
    assert back["pair"] == (1.5, [3, "s"]) and isinstance(back["pair"], tuple)
    assert back["7"] is None
    back["boxes"][0, 0] = -1.0  # decoded arrays are owned, writable copies
    assert back["boxes"][0, 0] == -1.0


def test_wire_format_keeps_byte_order():
    big = np.array([1.0, 2.0], dtype=">f8")
    back = decode(encode(big))
    assert back.dtype == np.dtype(">f8")
    np.testing.assert_array_equal(back, big)


def test_plain_values_pass_through_the_wire_unchanged():
    for value in (3, 2.5, "x", None, True, [1, [2]], {"a": {"b": 1}}):
        assert decode(encode(value)) == value


class OrderedEvaluator(Evaluator):
    """Records what it was fed and in which order; its metric depends on that order."""

    headline = "score"

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, Any]] = []

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        self.seen.append((sample_id, prediction, target))

    def compute(self) -> dict[str, Any]:
        hits = [float(np.asarray(p).sum() == t) for _, p, t in self.seen]
        # weight by position: a different feeding order gives a different number
        weighted = sum((i + 1) * h for i, h in enumerate(hits))
        return {"score": float(np.mean(hits)) if hits else 0.0, "order": weighted,
                "ids": ",".join(s for s, _, _ in self.seen)}


class Adapter:
    def __init__(self) -> None:
        self.made: list[OrderedEvaluator] = []

    def evaluator(self) -> OrderedEvaluator:
        ev = OrderedEvaluator()
        self.made.append(ev)
        return ev


def _sample(i: int, pred: int, target: int) -> dict[str, Any]:
    return {"index": i, "sample_id": f"s{i}", "prediction": encode(np.array([pred])), "target": encode(target)}


def _shards(test_preds: dict[int, int]) -> list[dict[str, Any]]:
    """Two shards (i % 2) over 4 samples; pytorch is always right, onnx predicts test_preds."""
    targets = {0: 0, 1: 1, 2: 2, 3: 3}
    shards = []
    for shard in (1, 0):  # arrive out of order
        idx = [i for i in targets if i % 2 == shard][::-1]  # and reversed inside the shard
        shards.append({"backends": {
            "pytorch": {"device": "cpu", "precision": "fp32", "seconds": 1.0 + shard,
                        "samples": [_sample(i, targets[i], targets[i]) for i in idx]},
            "onnx": {"device": "cpu", "precision": "fp16", "seconds": 0.5,
                     "samples": [_sample(i, test_preds.get(i, targets[i]), targets[i]) for i in idx]},
        }})
    return shards


def test_merge_replays_every_sample_once_in_serial_order():
    adapter = Adapter()
    tolerance_asked = []

    def tolerance(name):
        tolerance_asked.append(name)
        return {"score": 0.0}

    out = merge_shards(adapter, _shards({}), "pytorch", tolerance)
    assert set(out) == {"pytorch", "onnx"}
    for entry in out.values():
        assert entry["status"] == "ok"
        assert entry["num_samples"] == 4
        assert entry["metrics"]["ids"] == "s0,s1,s2,s3"
        assert entry["headline"] == "score"
        assert entry["passed"] is True and entry["failures"] == []
        assert entry["deltas"] == {"score": 0.0, "order": 0.0}
    assert out["pytorch"]["seconds"] == pytest.approx(3.0)  # summed over shards
    assert out["onnx"]["seconds"] == pytest.approx(1.0)
    assert (out["onnx"]["device"], out["onnx"]["precision"]) == ("cpu", "fp16")
    assert sorted(tolerance_asked) == ["onnx", "pytorch"]
    assert len(adapter.made) == 2  # one fresh evaluator per backend
    # predictions and targets arrive decoded
    sid, pred, target = adapter.made[1].seen[0]
    assert sid == "s0" and isinstance(pred, np.ndarray) and target == 0


def test_merge_gates_the_test_backend_against_the_reference():
    out = merge_shards(Adapter(), _shards({2: 9}), "pytorch", lambda name: {"score": 0.1})
    onnx = out["onnx"]
    assert onnx["metrics"]["score"] == 0.75
    assert onnx["deltas"]["score"] == pytest.approx(-0.25)
    assert onnx["passed"] is False
    assert len(onnx["failures"]) == 1 and "score: 0.75 vs reference 1" in onnx["failures"][0]
    assert out["pytorch"]["passed"] is True


def test_unavailable_and_failed_backends_are_not_evaluated():
    shards = _shards({})
    shards[0]["backends"]["tensorrt"] = {"device": "cuda:0", "precision": "fp32", "unavailable": "no GPU",
                                         "samples": []}
    shards[1]["backends"]["tensorrt"] = {"device": "cuda:0", "precision": "fp32", "unavailable": "no GPU",
                                         "samples": []}
    shards[1]["backends"]["onnx"]["error"] = "session crashed"
    adapter = Adapter()
    out = merge_shards(adapter, shards, "pytorch", lambda name: {"*": 0.0})
    assert out["tensorrt"] == {"device": "cuda:0", "precision": "fp32", "status": "unavailable", "reason": "no GPU",
                               "failures": []}
    assert out["onnx"]["status"] == "error" and out["onnx"]["error"] == "session crashed"
    assert "metrics" not in out["onnx"] and "passed" not in out["onnx"]
    assert out["pytorch"]["status"] == "ok" and out["pytorch"]["passed"] is True
    assert len(adapter.made) == 1


def test_without_a_reference_result_nothing_is_gated():
    shards = _shards({2: 9})
    for shard in shards:
        shard["backends"]["pytorch"]["error"] = "checkpoint missing"
    out = merge_shards(Adapter(), shards, "pytorch", lambda name: {"*": 0.0})
    assert out["onnx"]["status"] == "no-reference"
    assert "passed" not in out["onnx"] and out["onnx"]["metrics"]["score"] == 0.75
    out = merge_shards(Adapter(), _shards({}), "tensorrt", lambda name: {"*": 0.0})
    assert {e["status"] for e in out.values()} == {"no-reference"}


def test_float_noise_below_1e_12_is_not_a_metric_change():
    assert delta_failures({"m": 1e-12}, {"m": 0.0}, {"*": 0.0})[1] == []
    assert len(delta_failures({"m": 2e-12}, {"m": 0.0}, {"*": 0.0})[1]) == 1


def test_merge_tolerates_shards_without_timing_and_sorts_by_sample_index_not_id():
    shards = _shards({})
    for shard in shards:
        for entry in shard["backends"].values():
            for s in entry["samples"]:
                s["sample_id"] = f"id{9 - s['index']}"  # ids sort the other way round
    del shards[0]["backends"]["onnx"]["seconds"]
    out = merge_shards(Adapter(), shards, "pytorch", lambda name: {"*": 0.0})
    assert out["onnx"]["seconds"] == pytest.approx(0.5)
    assert out["onnx"]["metrics"]["ids"] == "id9,id8,id7,id6"


def test_a_failed_backend_listed_first_does_not_stop_the_gate_of_the_others():
    shards = _shards({2: 9})
    for shard in shards:
        shard["backends"] = {"tensorrt": {"device": "cuda:0", "precision": "fp32", "error": "boom", "samples": []},
                             **shard["backends"]}
    out = merge_shards(Adapter(), shards, "pytorch", lambda name: {"*": 0.0})
    assert list(out)[0] == "tensorrt" and out["tensorrt"]["status"] == "error"
    assert out["onnx"]["passed"] is False and out["pytorch"]["passed"] is True


def test_an_unavailable_backend_listed_first_does_not_hide_the_others():
    shards = _shards({})
    for shard in shards:
        shard["backends"] = {"tensorrt": {"device": "cuda:0", "precision": "fp32", "unavailable": "no GPU",
                                          "samples": []}, **shard["backends"]}
    out = merge_shards(Adapter(), shards, "pytorch", lambda name: {"*": 0.0})
    assert [(n, e["status"]) for n, e in out.items()] == [("tensorrt", "unavailable"), ("pytorch", "ok"),
                                                          ("onnx", "ok")]
