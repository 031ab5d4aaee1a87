"""What a metrics JSON becomes in MLflow (awml_harness/report/mlflow.py), without a store:
keys MLflow accepts, values never cut, the document's numbers under their keys, and the
rules of `awml publish`. The keys are checked against MLflow's own validators when it is
installed (the dev extra); tests/core/test_mlflow.py logs to real stores."""

from __future__ import annotations

import copy
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from awml_harness.config.schema import MlflowConfig, absolute_sqlite
from awml_harness.report.mlflow import (
    MAX_KEY,
    MAX_PARAM_VALUE,
    MAX_TAG_VALUE,
    RunLog,
    flatten,
    mlflow_key,
    plan,
    publish_refusals,
    settings_for,
    split_value,
    version_tags,
)


def _mlflow_validators():
    validation = pytest.importorskip("mlflow.utils.validation")
    return validation._validate_param_name, validation._validate_metric_name, validation._validate_tag_name


@pytest.mark.parametrize("key", ["onnx/accuracy", "verification/pytorch:cpu-vs-onnx:cpu/max_abs_diff",
                                 "awml.git.commit", "model_cfg.input_size", "a b", "x_y-z.1"])
def test_a_valid_key_is_kept(key):
    assert mlflow_key(key) == key


@pytest.mark.parametrize("key", ["evaluation.metric_tolerance.*", "pair_outputs.pytorch->onnx.aux[0]", "a//b",
                                 "/abs", "a/", "../x", "..x", "a/./b", "mAP@0.5", "", "ü", "x" * 300, "a\nb"])
def test_a_repaired_key_passes_mlflow_and_stays_apart(key):
    validators = _mlflow_validators()
    got = mlflow_key(key)
    assert got != key and len(got) <= MAX_KEY
    assert mlflow_key(key) == got  # deterministic
    for validate in validators:
        validate(got)
    # a key that differs from it only in a replaced character gets another repair
    assert mlflow_key(key + "#") != got


@given(st.text(max_size=300))
def test_every_key_mlflow_key_makes_passes_mlflow(key):
    validate_param, validate_metric, validate_tag = _mlflow_validators()
    got = mlflow_key(key)
    assert len(got) <= MAX_KEY
    validate_param(got)
    validate_metric(got)
    validate_tag(got)


@given(st.text(max_size=20000), st.integers(min_value=1, max_value=7000))
def test_split_values_join_back_whole_and_fit(value, limit):
    parts = split_value("k", value, limit)
    assert "".join(v for _, v in parts) == value
    assert all(len(v) <= limit for _, v in parts)
    assert parts[0][0] == "k" and len({k for k, _ in parts}) == len(parts)


def test_long_values_are_split_and_named_never_cut():
    log = RunLog.build("r", params={"model_cfg.classes": "c" * (2 * MAX_PARAM_VALUE + 5)},
                       metrics={"m": 1.0, "nan": float("nan"), "inf": float("inf"), "none": None, "s": "1.0",
                                "b": True}, tags={"awml.note": "t" * (MAX_TAG_VALUE + 1)})
    assert list(log.params) == ["model_cfg.classes", "model_cfg.classes/part2", "model_cfg.classes/part3"]
    assert "".join(log.params.values()) == "c" * (2 * MAX_PARAM_VALUE + 5)
    assert log.tags["awml.note"] + log.tags["awml.note/part2"] == "t" * (MAX_TAG_VALUE + 1)
    assert log.tags["awml.split_values"] == "model_cfg.classes,awml.note"
    assert log.metrics == {"m": 1.0}  # non-finite and non-numbers are not logged


def test_flatten_dots_mappings_numbers_list_items_and_keeps_plain_lists():
    got = flatten({"a": {"b": 1, "c": [1, 2], "d": {}}, "s": [{"x": "y"}], "o": {"aux[0]/score": 0.1}})
    assert got == {"a.b": 1, "a.c": [1, 2], "a.d": {}, "s.0.x": "y", "o.aux[0]|score": 0.1}
    assert "/" not in mlflow_key("o.aux[0]|score")


def _doc(**run):
    """A small finished document (the shape build_document writes) of one project."""
    backend = {"device": "cpu", "precision": "fp16", "status": "ok", "headline": "mAP", "passed": True,
               "metrics": {"mAP": 0.75, "per_class": {"car": 0.5}, "names": ["car"]},
               "deltas": {"mAP": -0.0125}, "seconds": 1.5, "memory": {"method": "m", "peak_rss_bytes": 1000},
               "gate": {"mAP": {"passed": True}}}
    return {
        "schema_version": 2,
        "run": {"exitstatus": 0, "failures": [], "tests": {"passed": 7}, "duration_s": 12.0, "argv": ["suites"],
                "git": {"commit": "abc123", "branch": "main", "dirty": False}, "unverified": [], **run},
        "machine": {"awml_harness": "9.9", "torch": "2.13.0", "gpu": None, "onnxruntime_providers": ["CPU"]},
        "projects": {"Det": {
            "project": "Det", "task_type": "detection2d", "config": "/c.py", "export_mode": "onnx",
            "artifacts": [{"name": "model", "variant": "fp16", "key": "k1", "path": "/w/model.onnx", "size_bytes": 9,
                           "build_seconds": 0.5, "files": {"model.onnx": {"sha256": "s1", "size": 9}}}],
            "verification": {"status": "verified", "passed": 3, "failed": 0, "results": [
                {"scenario": "pytorch:cpu-vs-onnx:cpu", "leaves": [{"max_abs_diff": 0.5, "mismatch_share": 0.0}]},
                {"scenario": "pytorch:cpu-vs-onnx:cpu", "leaves": [{"max_abs_diff": 0.25, "mismatch_share": 0.0}]}]},
            "evaluation": {"reference": "pytorch", "backends": {"onnx-fp16": backend}},
            "latency": {"onnx-fp16": {"p50": 2.0, "p95": 3.0, "stages_median_ms": {"model": 1.5}}},
            "shapes": [{"scenario": "s", "which": "min", "passed": True}],
            "resolved_config": {"export": {"mode": "onnx"}, "evaluation": {"metric_tolerance": {"*": 0.02}}},
        }},
    }


def test_the_document_s_numbers_land_under_their_keys():
    doc = _doc()
    got = plan(doc)
    entry = doc["projects"]["Det"]
    be = entry["evaluation"]["backends"]["onnx-fp16"]
    m = got.projects["Det"].metrics
    assert m["onnx-fp16/mAP"] == be["metrics"]["mAP"] and m["onnx-fp16/per_class/car"] == be["metrics"]["per_class"]["car"]
    assert m["onnx-fp16/delta/mAP"] == be["deltas"]["mAP"]
    assert m["onnx-fp16/memory/peak_rss_bytes"] == be["memory"]["peak_rss_bytes"]
    assert m["onnx-fp16/latency/p95_ms"] == entry["latency"]["onnx-fp16"]["p95"]
    assert m["onnx-fp16/latency/stage/model_ms"] == 1.5
    assert m["verification/pytorch:cpu-vs-onnx:cpu/max_abs_diff"] == 0.5  # the worst sample
    assert "onnx-fp16/names" not in m
    params = got.projects["Det"].params
    assert params["export.mode"] == "onnx" and params[mlflow_key("evaluation.metric_tolerance.*")] == "0.02"
    tags = got.projects["Det"].tags
    assert tags["awml.verification.status"] == "verified" and tags["awml.precision"] == "fp16"
    assert tags["awml.gates"] == "passed" and tags["awml.git.commit"] == "abc123" == tags["mlflow.source.git.commit"]
    assert tags["awml.harness_version"] == "9.9" and tags["awml.verdict"] == "PASSED"
    assert got.run.tags["awml.exitstatus"] == "0" and got.run.metrics["run/tests/passed"] == 7
    assert got.run.params["machine.torch"] == "2.13.0" and "machine.onnxruntime_providers" not in got.run.params


def test_publish_takes_only_a_passed_verified_run():
    assert publish_refusals(_doc(), "Det") == []
    cases = {
        "exit status 1, not 0": lambda d: d["run"].update(exitstatus=1),
        "1 failure(s): p95 over budget": lambda d: d["run"].update(failures=[{"message": "p95 over budget"}]),
        "is 'unverified', not 'verified' (no scenario)": lambda d: d["projects"]["Det"]["verification"].update(
            status="unverified", reason="no scenario"),
        "verification: 1 of 4 comparisons failed": lambda d: d["projects"]["Det"]["verification"].update(failed=1),
        "evaluation onnx-fp16: metric gate failed on mAP": lambda d: d["projects"]["Det"]["evaluation"]["backends"][
            "onnx-fp16"].update(passed=False, gate={"mAP": {"passed": False}}),
        "shape sweep failed: s min": lambda d: d["projects"]["Det"]["shapes"][0].update(passed=False),
        "latency onnx-fp16: p95 too slow": lambda d: d["projects"]["Det"]["latency"]["onnx-fp16"].update(
            budget_violations=["p95 too slow"]),
        "records no deployed artifact": lambda d: d["projects"]["Det"].update(artifacts=[]),
    }
    for reason, spoil in cases.items():
        doc = copy.deepcopy(_doc())
        spoil(doc)
        refusals = publish_refusals(doc, "Det")
        assert len(refusals) == 1 and reason in refusals[0], (reason, refusals)


def test_a_version_s_tags_hold_the_deltas_artifact_keys_and_run_ids():
    doc = _doc(mlflow={"run_id": "r1", "projects": {"Det": "c1"}, "experiment_id": "3", "tracking_uri": "sqlite://"})
    tags = version_tags(doc, "Det")
    assert tags["delta.onnx-fp16.mAP"] == repr(-0.0125) and tags["metric.onnx-fp16.mAP"] == repr(0.75)
    assert tags["artifact.model-fp16.key"] == "k1" and tags["artifact.model-fp16.sha256"] == "s1"
    assert tags["awml.run_id"] == "r1" and tags["awml.project_run_id"] == "c1" and tags["awml.git.commit"] == "abc123"


def _cfg(work_dir, mlflow=None):
    return SimpleNamespace(export=SimpleNamespace(work_dir=work_dir), report=SimpleNamespace(mlflow=mlflow))


def test_the_tracking_uri_option_config_environment_then_the_work_dir(tmp_path):
    wd = tmp_path / "wd"
    assert settings_for([_cfg(wd)], None, env={}) is None  # nothing asked for it
    bare = settings_for([_cfg(wd)], "", env={})
    assert bare.tracking_uri == f"sqlite:///{wd.resolve()}/mlflow.db"
    assert bare.artifact_location == (wd.resolve() / "mlartifacts").as_uri() and not bare.log_models
    env = {"MLFLOW_TRACKING_URI": "http://team:5000"}
    assert settings_for([_cfg(wd)], "", env=env).tracking_uri == "http://team:5000"
    assert settings_for([_cfg(wd)], "", env=env).artifact_location is None  # the server keeps them
    cfg = MlflowConfig(tracking_uri="postgresql://db/x", experiment="e", log_models=True)
    got = settings_for([_cfg(tmp_path / "other"), _cfg(wd, cfg)], None, env=env)
    assert (got.tracking_uri, got.experiment, got.log_models) == ("postgresql://db/x", "e", True)
    assert got.artifact_location == (tmp_path / "other").resolve().joinpath("mlartifacts").as_uri()
    assert settings_for([_cfg(wd, cfg)], "sqlite:////x/y.db", env=env).tracking_uri == "sqlite:////x/y.db"
    assert settings_for([_cfg(wd, MlflowConfig(enabled=False))], None, env=env) is None
    assert settings_for([_cfg(wd, MlflowConfig(artifact_location="/art"))], None, env={}).artifact_location == \
        "file:///art"


def test_relative_sqlite_paths_resolve_against_the_base(tmp_path):
    assert absolute_sqlite("sqlite:///rel/m.db", tmp_path) == f"sqlite:///{tmp_path}/rel/m.db"
    assert absolute_sqlite("sqlite:////abs/m.db", tmp_path) == "sqlite:////abs/m.db"
    assert absolute_sqlite("sqlite:///m.db?timeout=5", Path("/b")) == "sqlite:////b/m.db?timeout=5"
    assert absolute_sqlite("http://h:1", tmp_path) == "http://h:1"
