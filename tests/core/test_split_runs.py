"""Runs split across machines (issue 18, item 4): `--awml-shard I/N` jobs write shard
files, `awml merge` checks they belong together and computes metrics equal to a serial
run's, exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from awml_harness.split import SHARD_FORMAT, SHARD_VERSION, ShardError, check_shards, parse_shard, read_shard

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("text", "expected"), [("1/3", (0, 3)), ("3/3", (2, 3)), (" 2 / 5 ", (1, 5)), ("1/1", (0, 1))])
def test_parse_shard(text, expected):
    assert parse_shard(text) == expected


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "a/b", "1/0", "-1/3", "1/3/2"])
def test_parse_shard_refuses(text):
    with pytest.raises(ValueError, match=r"--awml-shard expects I/N with 1 <= I <= N \(e.g. 2/3\)"):
        parse_shard(text)


def _shard(index, count, digest="d1", configs=("A", "B")):
    return {"format": SHARD_FORMAT, "version": SHARD_VERSION, "shard": {"index": index, "count": count},
            "configs": {c: {"config_digest": digest, "num_samples": 7, "backends": {}} for c in configs}}


def test_shards_that_belong_together():
    assert check_shards({f"s{i}.json": _shard(i, 3) for i in (1, 2, 3)}) == 3


def test_missing_and_duplicate_shards_are_named():
    with pytest.raises(ShardError) as info:
        check_shards({"a.json": _shard(1, 3), "b.json": _shard(1, 3), "c.json": _shard(3, 3)})
    text = str(info.value)
    assert "shard 1/3 given 2 times: a.json, b.json" in text
    assert "missing shard(s) 2/3 (run `pytest ... --awml-shard 2/3`" in text


def test_shards_of_other_configs_or_splits_are_refused():
    with pytest.raises(ShardError, match=r"config A: the shards were made from different configs.*a.json: d1.*b.json: d2"):
        check_shards({"a.json": _shard(1, 2), "b.json": _shard(2, 2, digest="d2")})
    with pytest.raises(ShardError, match=r"b.json holds configs \['A'\], a.json holds \['A', 'B'\]"):
        check_shards({"a.json": _shard(1, 2), "b.json": _shard(2, 2, configs=("A",))})
    with pytest.raises(ShardError, match="shards of different splits: a.json is 1/2, b.json is 2/3"):
        check_shards({"a.json": _shard(1, 2), "b.json": _shard(2, 3)})


def test_a_file_that_is_no_shard_is_one_clear_error(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"schema_version": 1, "projects": {}}))
    with pytest.raises(ShardError, match=r"m.json: not an awml shard file \(written by `pytest --awml-shard I/N`\)"):
        read_shard(tmp_path / "m.json")
    (tmp_path / "t.json").write_text('{"format": "awml-sh')
    with pytest.raises(ShardError, match="t.json: not a readable shard file"):
        read_shard(tmp_path / "t.json")
    with pytest.raises(ShardError, match="nope.json: no such shard file"):
        read_shard(tmp_path / "nope.json")


def test_predictions_round_trip_exactly_through_the_shard_file(tmp_path):
    from awml_harness.evaluation.wire import decode, encode
    from awml_harness.split import write_shard

    rng = np.random.default_rng(0)
    pred = {"boxes": rng.standard_normal((5, 4)).astype(np.float32), "score": float(np.float32(1 / 3)),
            "labels": np.arange(5, dtype=np.int64), "pair": (0.1 + 0.2, np.float64(np.pi))}
    write_shard(tmp_path / "s.json", {"format": SHARD_FORMAT, "p": encode(pred)})
    back = decode(json.loads((tmp_path / "s.json").read_text())["p"])
    assert back["boxes"].dtype == np.float32 and np.array_equal(back["boxes"], pred["boxes"])
    assert back["score"] == pred["score"] and back["pair"] == (0.1 + 0.2, np.pi)
    assert np.array_equal(back["labels"], pred["labels"]) and back["labels"].dtype == np.int64


# -- end to end: three jobs and a merge against a serial run, every shipped project -------------
CONFIGS = [ROOT / "projects" / p / "configs" / "deploy_config.py"
           for p in ("CalibrationStatusClassification", "YOLOX_opt_elan", "CenterPoint")]


def _pytest(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = str(ROOT)
    cfgs = [a for c in CONFIGS for a in ("--deploy-cfg", str(c))]
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "suites/test_evaluation.py",
                           *cfgs, "--work-dir", str(tmp_path / "wd"), *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.skipif(not all((ROOT / f).is_file() for f in ("fixtures/yolox/checkpoint.pth",)),
                    reason="project checkpoints not generated")
def test_three_shards_merge_to_the_serial_metrics_exactly(tmp_path, capsys):
    from awml_harness.cli import main
    from awml_harness.report.document import validate_document

    serial = _pytest(tmp_path, "--awml-metrics-json", str(tmp_path / "serial.json"))
    assert serial.returncode == 0, serial.stdout[-3000:]
    shards = []
    for i in (1, 2, 3):
        job = tmp_path / f"job{i}"
        proc = _pytest(tmp_path, "--awml-shard", f"{i}/3", "--awml-metrics-json", str(job / "metrics.json"))
        assert proc.returncode == 0, proc.stdout[-3000:]
        shards.append(job / f"shard-{i}of3.json")
        assert shards[-1].is_file()
        doc = json.loads(shards[-1].read_text())
        assert doc["shard"] == {"index": i, "count": 3} and sorted(doc["configs"]) == sorted(
            ["CalibrationStatusClassification", "YOLOX_opt_elan", "CenterPoint"])
        # a shard job computes no metrics
        assert all(not p["evaluation"]["backends"]
                   for p in json.loads((job / "metrics.json").read_text())["projects"].values())

    out = tmp_path / "merged.json"
    assert main(["merge", *map(str, reversed(shards)), "-o", str(out)]) == 0
    merged = json.loads(out.read_text())
    validate_document(merged)
    expected = json.loads((tmp_path / "serial.json").read_text())["projects"]
    compared = 0
    for cid, project in expected.items():
        backends = project["evaluation"]["backends"]
        assert set(merged["projects"][cid]["evaluation"]["backends"]) == set(backends) and len(backends) >= 3
        for name, entry in backends.items():
            got = merged["projects"][cid]["evaluation"]["backends"][name]
            assert got["metrics"] == entry["metrics"], (cid, name)
            assert got["deltas"] == entry["deltas"] and got["num_samples"] == entry["num_samples"]
            assert got["passed"] is entry["passed"] is True
            compared += len(entry["metrics"])
    assert compared > 30

    # two shards of three: nothing is written, the missing one is named
    capsys.readouterr()
    assert main(["merge", str(shards[0]), str(shards[2]), "-o", str(tmp_path / "partial.json")]) == 2
    assert "missing shard(s) 2/3" in capsys.readouterr().err and not (tmp_path / "partial.json").exists()


def test_a_bad_shard_option_is_a_usage_error():
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--co", "-q",
                           "suites/test_evaluation.py", "--deploy-cfg", str(CONFIGS[0]), "--awml-shard", "4/3"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 4
    assert "--awml-shard expects I/N with 1 <= I <= N (e.g. 2/3), got '4/3'" in proc.stderr


def test_shard_runs_collect_one_split_case_per_config():
    from awml_harness.cases import SplitCase
    from awml_harness.config.load import load_deploy_config
    from awml_harness.fixtures import generate_cases
    from awml_harness.session import HarnessSession, RunOptions

    configs = [load_deploy_config(c, base_dir=ROOT) for c in CONFIGS[:2]]
    session = HarnessSession(configs, RunOptions(split=(1, 3)), shards=4)  # under -n 4 too
    cases = generate_cases(session, "awml_eval_case")
    assert [(type(c), c.config_id, c.index, c.count) for c in cases] == [
        (SplitCase, cfg.id, 1, 3) for cfg in configs]
    assert cases[0].id == "CalibrationStatusClassification-split2of3"


def _calibration_shards(tmp_path):
    """Three shard files of the calibration config, made in-process as the suite makes them."""
    from awml_harness.config.load import load_deploy_config
    from awml_harness.session import HarnessSession, RunOptions
    from awml_harness.split import config_digest, shard_document, write_shard

    cfg = load_deploy_config(CONFIGS[0], base_dir=ROOT, work_dir=str(tmp_path / "wd"))
    load = {"cfg_options": [], "work_dir": str(tmp_path / "wd"), "device": None, "unsafe_load": False,
            "allow_python_in_yaml": False, "model_cfg": None, "checkpoint": None}
    paths, ctx = [], None
    for k in range(3):
        harness = HarnessSession([cfg], RunOptions(split=(k, 3)))
        if ctx is not None:
            harness._contexts[cfg.id] = ctx  # one model for the three slices (they are independent)
        ctx = harness.context(cfg.id)
        rec = {"kind": "evaluation-split", "config": cfg.id, "config_digest": config_digest(ctx, ROOT),
               "num_samples": ctx.num_eval_samples(), "backends": ctx.evaluate_chunk(k, 3, "shard")}
        paths.append(tmp_path / f"s{k + 1}.json")
        write_shard(paths[-1], shard_document(harness, [rec], {}, load, ROOT))
    return paths, ctx


def test_merged_calibration_metrics_equal_the_serial_pass_and_tampering_is_caught(tmp_path):
    from awml_harness.cli.merge import merge_files as merge
    from awml_harness.report.document import jsonable

    paths, ctx = _calibration_shards(tmp_path)
    doc, failures = merge(paths[::-1], ROOT)
    assert not failures
    serial = ctx.evaluate_all()
    got = doc["projects"][ctx.cfg.id]["evaluation"]["backends"]
    assert set(got) == set(serial) == {"pytorch", "onnx", "onnx-fp16", "onnx-int8"}
    for name, entry in serial.items():
        assert got[name]["metrics"] == jsonable(entry.metrics) and got[name]["num_samples"] == 40

    original = [p.read_text() for p in paths]
    data = json.loads(paths[1].read_text())
    data["configs"][ctx.cfg.id]["backends"]["onnx"]["samples"].pop(3)  # one prediction lost
    paths[1].write_text(json.dumps(data))
    with pytest.raises(ShardError, match=r"s2.json: config CalibrationStatusClassification backend onnx holds samples"):
        merge(paths, ROOT)

    data["configs"][ctx.cfg.id]["backends"]["onnx"]["samples"] = json.loads(
        paths[0].read_text())["configs"][ctx.cfg.id]["backends"]["onnx"]["samples"]  # shard 1's rows in shard 2
    paths[1].write_text(json.dumps(data))
    with pytest.raises(ShardError, match="holds samples"):
        merge(paths, ROOT)

    for p, text in zip(paths, original, strict=True):  # another checkpoint: the shards agree, this checkout not
        d = json.loads(text)
        d["configs"][ctx.cfg.id]["config_digest"] = "0" * 64
        p.write_text(json.dumps(d))
    with pytest.raises(ShardError, match=r"config CalibrationStatusClassification: the shards were made from another "
                                         r"config, checkpoint or code than .*deploy_config.py"):
        merge(paths, ROOT)
