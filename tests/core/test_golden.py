"""Golden outputs record their provenance (config digest, checkpoint, tool versions,
sample id), and a failing golden comparison names what changed since (issue 17 item 8)."""

from __future__ import annotations

import dataclasses
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np

from awml_harness import golden


def _rewrite(path: Path, *, provenance: dict | None = None, drop_provenance: bool = False, scale: float = 1.0,
             shape: tuple[int, ...] | None = None) -> None:
    with np.load(path, allow_pickle=False) as data:
        items = {k: data[k] for k in data.files}
    if drop_provenance:
        del items["__provenance__"]
    elif provenance is not None:
        items["__provenance__"] = np.asarray(json.dumps(provenance))
    items["o0"] = items["o0"] * scale + (0.5 if scale != 1.0 else 0.0)
    if shape is not None:
        items["o0"] = np.zeros(shape, dtype=items["o0"].dtype)
    with open(path, "wb") as fh:
        np.savez(fh, **items)


def test_what_changed_names_each_difference():
    saved = {"config_digest": "aaaa", "checkpoint": "c1", "sample_id": "s0", "reference": "pytorch:cpu",
             "tools": {"torch": "2.12.0", "onnx": "1.17.0", "numpy": "2.1.0"}}
    now = {**saved, "config_digest": "bbbb", "sample_id": "s7",
           "tools": {"torch": "2.13.0", "onnx": "1.17.0", "numpy": "2.1.0", "tensorrt": "10.3"}}
    assert golden.what_changed(saved, now) == [
        "config digest (model_cfg, runtime_io, model_io) differs (golden 'aaaa', now 'bbbb')",
        "sample id differs (golden 's0', now 's7')",
        "torch version differs (golden 2.12.0, now 2.13.0)",
        "tensorrt version differs (golden not installed, now 10.3)",
    ]
    assert golden.what_changed(saved, saved) == []
    assert "records no provenance" in golden.what_changed({}, now)[0]


def test_provenance_parts():
    from awml_harness.config.load import load_deploy_config

    here = Path(__file__).parents[1] / "toy" / "projects" / "Toy" / "configs" / "deploy.yaml"
    cfg = load_deploy_config(here, base_dir=here.parents[3])
    tools = golden.tool_versions()
    assert tools["torch"] == version("torch") and tools["numpy"] == version("numpy") and "python" in tools
    assert tools["onnxruntime"] and tools["awml-harness"]
    digest = golden.config_digest(cfg)
    moved = dataclasses.replace(cfg, export=dataclasses.replace(cfg.export, work_dir="/elsewhere"))
    assert golden.config_digest(moved) == digest  # paths do not enter it
    other = load_deploy_config(here, base_dir=here.parents[3], overrides=["model_cfg.channels=5"])
    assert golden.config_digest(other) != digest
    prov = golden.provenance(cfg, "f" * 64, "sample-3", "pytorch:cpu")
    assert prov == {"config_digest": digest, "checkpoint": "f" * 16, "sample_id": "sample-3",
                    "reference": "pytorch:cpu", "tools": tools}


def test_a_failing_golden_comparison_names_what_changed(toy_repo, tmp_path):
    gold = tmp_path / "golden"
    run = ("suites", "-p", "no:cacheprovider", "-k", "verification")
    toy_repo.runpytest_subprocess(*run, f"--awml-save-golden={gold}").assert_outcomes(passed=2)
    files = sorted(gold.rglob("*.npz"))
    assert len(files) == 2
    saved = golden.load_provenance(gold, "Toy", "pytorch:cpu", 0)
    assert saved["tools"]["torch"] == version("torch") and saved["sample_id"] and len(saved["config_digest"]) == 16
    golden_run = (*run, "-k", "golden", f"--awml-golden={gold}")
    toy_repo.runpytest_subprocess(*golden_run).assert_outcomes(passed=2)  # same setup, same outputs

    # a config change: the failure says the config digest differs
    changed = toy_repo.runpytest_subprocess(*golden_run, "--cfg-options", "model_cfg.export_skew=0.5")
    changed.assert_outcomes(failed=2)
    changed.stdout.fnmatch_lines(["*Toy-golden:pytorch:cpu-vs-onnx:cpu-s0: 1 of 1 outputs differ*",
                                  "*was saved with a different setup: config digest (model_cfg, runtime_io, model_io) "
                                  "differs (golden '*', now '*')*"])
    assert "torch version differs" not in changed.stdout.str()

    # another torch and another sample when the file was saved, values differ
    _rewrite(files[0], provenance={**saved, "sample_id": "elsewhere-7",
                                   "tools": {**saved["tools"], "torch": "0.0.1-old"}}, scale=2.0)
    out = toy_repo.runpytest_subprocess(*golden_run)
    out.assert_outcomes(passed=1, failed=1)
    out.stdout.fnmatch_lines([f"*sample id differs (golden 'elsewhere-7', now '{saved['sample_id']}'); "
                              f"torch version differs (golden 0.0.1-old, now {version('torch')})*"])

    # a shape mismatch with the same setup: the backend under test is the one to look at
    _rewrite(files[0], provenance=saved, shape=(1, 3))
    out = toy_repo.runpytest_subprocess(*golden_run)
    out.assert_outcomes(passed=1, failed=1)
    out.stdout.fnmatch_lines(["*shape*", "*saved with the same config digest, checkpoint, sample and tool versions: "
                              "the difference comes from the backend under test*"])

    # a file from before provenance existed says so
    _rewrite(files[0], drop_provenance=True, scale=2.0)
    out = toy_repo.runpytest_subprocess(*golden_run)
    out.stdout.fnmatch_lines(["*records no provenance (saved by an older awml-harness)*"])
    doc = json.loads((toy_repo.path / "work_dirs" / "toy" / "metrics.json").read_text())
    failed = [r for r in doc["projects"]["Toy"]["verification"]["results"] if not r["passed"]]
    assert "records no provenance" in failed[0]["golden_changed"][0]
