"""Thread policy (awml_harness/threads.py) and latency spread: measured, shown, gated."""

from __future__ import annotations

import json

import numpy as np
import pytest

from awml_harness.config.errors import ConfigError
from awml_harness.config.schema import EvalBackend, EvaluationConfig
from awml_harness.config.validation import from_mapping
from awml_harness.latency import check_stability, spread, spread_warning, summarize
from awml_harness.report.document import validate_document
from awml_harness.report.summary import render_summary
from awml_harness.threads import DEFAULT_THREADS, resolve


def test_spread_counts_stalls_and_warns_only_when_high():
    steady = [0.003 + 1e-5 * (i % 5) for i in range(60)]  # seconds
    stalled = list(steady)
    for i in range(0, 60, 4):  # 15 of 60 rounds stall for 0.7 s, as on a loaded 2-core box
        stalled[i] = 0.7
    s = summarize(steady)
    assert s["outlier_share"] == 0.0
    assert 1.0 <= s["p95_over_p50"] < 1.02
    assert spread_warning(s) is None
    b = summarize(stalled)
    assert b["outlier_share"] == pytest.approx(15 / 60)
    assert b["p95_over_p50"] == pytest.approx(700 / np.median(np.asarray(stalled) * 1e3))
    text = spread_warning(b)
    assert text is not None and "p95_over_p50" in text and "outlier_share" in text
    # exactly 2x the median is not an outlier, above it is
    assert spread([1.0, 1.0, 2.0])["outlier_share"] == 0.0
    assert spread([1.0, 1.0, 2.001])["outlier_share"] == pytest.approx(1 / 3)


def test_stability_gate_names_the_key_and_passes_within_limits():
    stats = summarize([0.001] * 18 + [0.005, 0.005])
    prefix = "evaluation.backends.pytorch.latency_stability"
    assert check_stability(stats, {"p95_over_p50": 10.0, "outlier_share": 0.2}, prefix) == []
    out = check_stability(stats, {"p95_over_p50": 2.0, "outlier_share": 0.05}, prefix)
    assert len(out) == 2
    assert out[0].endswith(f"exceeds {prefix}.outlier_share = 0.05") and "10.0 % of 20 rounds" in out[0]
    assert out[1].endswith(f"exceeds {prefix}.p95_over_p50 = 2")


@pytest.mark.parametrize(("stability", "culprit"), [
    ({"p99_over_p50": 2.0}, "latency_stability.p99_over_p50"),
    ({"p95_over_p50": 0.5}, "latency_stability.p95_over_p50"),
    ({"outlier_share": 1.5}, "latency_stability.outlier_share"),
])
def test_bad_stability_gate_is_a_config_error(stability, culprit):
    with pytest.raises(ConfigError, match=culprit.replace(".", r"\.")):
        EvalBackend(latency_stability=stability).validate("evaluation.backends.onnx")


def test_thread_policy_precedence_and_bad_value():
    assert resolve(None, None).intra_op == DEFAULT_THREADS == 1
    assert resolve(None, None).source == "default"
    assert resolve(None, 2).as_dict() == {"intra_op": 2, "inter_op": 1, "source": "evaluation.threads"}
    assert resolve(3, 2).as_dict() == {"intra_op": 3, "inter_op": 1, "source": "--awml-threads"}
    assert resolve(0, 2).as_dict() == {"intra_op": 0, "inter_op": 0, "source": "--awml-threads"}
    with pytest.raises(ConfigError, match=r"evaluation\.threads' = -1 is invalid; expected greater than or equal to 0"):
        from_mapping(EvaluationConfig, {"threads": -1}, "evaluation")


def test_torch_runner_holds_its_intra_op_threads():
    torch = pytest.importorskip("torch")
    from awml_harness.backends.torch import TorchRunner
    from awml_harness.threads import ThreadPolicy

    before = torch.get_num_threads()
    try:
        runner = TorchRunner(torch.nn.Linear(4, 2), ("x",), ("y",), threads=ThreadPolicy(1, 1, "default"))
        runner.activate()
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)  # someone else in the process changes it ...
        runner.infer({"x": np.ones((1, 4), np.float32)})
        assert torch.get_num_threads() == 1  # ... the runner puts its policy back
    finally:
        torch.set_num_threads(before)


def test_onnxruntime_session_gets_the_policy(tmp_path):
    pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, save

    from awml_harness.backends.onnxruntime import OnnxRuntimeRunner

    node = helper.make_node("Relu", ["x"], ["y"])
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "m.onnx"))
    runner = OnnxRuntimeRunner(tmp_path / "m.onnx", threads=1, inter_op=1)
    runner.activate()
    opts = runner.session.get_session_options()
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    assert runner.infer({"x": -np.ones((1, 4), np.float32)})["y"].max() == 0.0
    assert opts.enable_cpu_mem_arena  # small input: the arena stays
    big = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 1024, 1024])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 1024, 1024])])
    model = helper.make_model(big, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "big.onnx"))
    large = OnnxRuntimeRunner(tmp_path / "big.onnx", threads=1, inter_op=1)
    large.activate()
    assert not large.session.get_session_options().enable_cpu_mem_arena  # 32 MB input: no arena
    dyn = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 4])],
                            [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])])
    model = helper.make_model(dyn, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(tmp_path / "dyn.onnx"))
    dynamic = OnnxRuntimeRunner(tmp_path / "dyn.onnx", threads=1, inter_op=1)
    dynamic.activate()
    assert not dynamic.session.get_session_options().enable_cpu_mem_arena  # dynamic axis: no arena


def test_latency_run_records_threads_and_spread_and_gates(toy_repo):
    bench_json = toy_repo.path / "bench.json"
    ok = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "latency",
                                       f"--benchmark-json={bench_json}")
    ok.assert_outcomes(passed=2)
    doc = json.loads((toy_repo.path / "work_dirs/toy/metrics.json").read_text())
    validate_document(doc)
    policy = {"intra_op": 1, "inter_op": 1, "source": "default"}
    assert doc["run"]["threads"]["policy"] == {"Toy": policy}
    for name in ("pytorch", "onnx"):
        lat = doc["projects"]["Toy"]["latency"][name]
        assert lat["threads"]["policy"] == policy
        assert lat["threads"]["torch"]["intra_op"] == 1
        assert lat["p95_over_p50"] == pytest.approx(lat["p95"] / lat["p50"])
        assert lat["outlier_share"] == pytest.approx(np.mean(np.asarray(lat["samples_ms"]) > 2 * lat["median"]))
    ok.stdout.fnmatch_lines(["*p95/p50*outliers*", "*threads: intra-op 1, inter-op 1 (default)*"])
    machine = json.loads(bench_json.read_text())["machine_info"]["awml"]["threads"]
    assert machine["policy"] == {"Toy": policy} and machine["torch"]["intra_op"] == 1
    # the option wins over the config key, and is what the process really runs with
    two = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "latency and pytorch",
                                        "--awml-threads=2", "--cfg-options", "evaluation.threads=1")
    two.assert_outcomes(passed=1)
    lat = json.loads((toy_repo.path / "work_dirs/toy/metrics.json").read_text())["projects"]["Toy"]["latency"]
    assert lat["pytorch"]["threads"] == {"policy": {"intra_op": 2, "inter_op": 1, "source": "--awml-threads"},
                                         "torch": {"intra_op": 2, "inter_op": 1}}
    # p95 equals p50 only if the rounds are identical to the nanosecond: a 1.0 gate fails
    gated = toy_repo.runpytest_subprocess(
        "suites", "-p", "no:cacheprovider", "-k", "latency and onnx",
        "--cfg-options", "evaluation.backends.onnx.latency_stability={'p95_over_p50': 1.0}")
    gated.assert_outcomes(failed=1)
    gated.stdout.fnmatch_lines(["*unstable*", "*- p95_over_p50 = * exceeds evaluation.backends.onnx.latency_stability"
                                ".p95_over_p50 = 1"])


def test_summary_marks_high_spread():
    lat = {"device": "cpu", "precision": "fp32", "p50": 3.0, "p95": 700.0, "p95_over_p50": 233.3,
           "outlier_share": 0.25, "spread_warning": "latency is unstable (p95_over_p50 = 233 > 2)"}
    doc = {"run": {"threads": {"policy": {"P": {"intra_op": 2, "inter_op": 1, "source": "evaluation.threads"}}}},
           "projects": {"P": {"task_type": "classification", "export_mode": "onnx", "artifacts": [],
                              "verification": {"passed": 0, "failed": 0, "results": []},
                              "evaluation": {"backends": {}}, "latency": {"pytorch": lat}}}}
    lines = render_summary(doc)
    assert "p95/p50" in lines[1] and "outliers" in lines[1]
    assert "233.30 !" in lines[2] and "25 % !" in lines[2]
    assert "  latency pytorch: latency is unstable (p95_over_p50 = 233 > 2)" in lines
    assert "  threads: intra-op 2, inter-op 1 (evaluation.threads)" in lines


def test_config_scope_of_node_ids():
    from awml_harness.xdist_scheduling import config_scope

    ids = ("CenterPoint", "CenterPoint-deploy_config_full", "Toy")
    assert config_scope("suites/test_export.py::test_export[Toy-model-onnx]", ids) == "Toy"
    assert config_scope("suites/test_verification.py::test_verification[CenterPoint-pytorch:cpu-vs-onnx:cpu-s0]",
                        ids) == "CenterPoint"
    assert config_scope("suites/test_export.py::test_export[CenterPoint-deploy_config_full-x-onnx]",
                        ids) == "CenterPoint-deploy_config_full"
    assert config_scope("suites/test_evaluation.py::test_evaluation[Toy-chunk2of2]", ids) == "Toy-chunk2"
    assert config_scope("tests/core/test_x.py::test_y[Other-1]", ids) == "tests/core/test_x.py::test_y[Other-1]"
    assert config_scope("tests/core/test_x.py::test_z", ids) == "tests/core/test_x.py::test_z"


def test_xdist_keeps_a_config_on_one_worker_and_shards_only_large_evaluations(toy_repo):
    """5 samples < evaluation.chunk_min_samples (200): no shards under -n 2, and the
    config's tests are one unit of work (one worker sets the model up)."""
    pytest.importorskip("xdist")
    one = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "evaluation or verification",
                                        "-n", "2", "-v")
    one.assert_outcomes(passed=4)
    out = one.stdout.str()
    assert "ConfigScopeScheduling" in out and "-chunk1of" not in out
    workers = {line.split("]")[0] for line in out.splitlines() if line.startswith("[gw") and "PASSED" in line}
    assert len(workers) == 1, out
    # sharded once shards keep >= shard_min_samples: 5 samples at 1 each, at most 4 shards
    # (fixtures.eval_chunks), each a unit of its own, spread over both workers
    sharded = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "evaluation", "-n", "2", "-v",
                                            "--cfg-options", "evaluation.chunk_min_samples=1",
                                            "evaluation.max_chunks=4")
    sharded.assert_outcomes(passed=4)
    lines = [x for x in sharded.stdout.str().splitlines() if x.startswith("[gw") and "PASSED" in x]
    assert sorted(x.split("PASSED ")[1].strip() for x in lines) == [
        f"suites/test_evaluation.py::test_evaluation[Toy-chunk{k}of4]" for k in range(1, 5)]
    assert len({x.split("]")[0] for x in lines}) == 2
    bad = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "--cfg-options",
                                        "evaluation.chunk_min_samples=0")
    assert bad.ret == 4
    bad.stderr.fnmatch_lines(["*evaluation.chunk_min_samples*"])


def _shard_session(workers: int, samples: int, shard_min: int, max_shards: int) -> object:
    from types import SimpleNamespace

    ev = SimpleNamespace(chunk_min_samples=shard_min, max_chunks=max_shards, num_samples=-1)
    return SimpleNamespace(shards=workers, configs={"C": SimpleNamespace(evaluation=ev)},
                           context=lambda cid: SimpleNamespace(num_eval_samples=lambda: samples))


@pytest.mark.parametrize(("samples", "shard_min", "max_shards", "expected"), [
    (99, 50, 16, 1),      # a second shard would keep < shard_min_samples: one test
    (100, 50, 16, 2),
    (1040, 50, 16, 16),   # capped: many small shards let a free worker take the next one
    (1040, 200, 16, 5),
    (5000, 50, 1, 1),     # max_shards 1: never sharded
    (5, 1, 4, 4),
])
def test_eval_chunks_follow_the_data_not_the_worker_count(samples, shard_min, max_shards, expected):
    """The shard count, hence every evaluation test id, is the same serial and under -n."""
    from awml_harness.fixtures import eval_chunks

    got = {eval_chunks(_shard_session(w, samples, shard_min, max_shards), "C") for w in (1, 2, 4)}
    assert got == {expected}
