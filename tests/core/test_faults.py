"""Fault injection: killed exports, corrupt artifacts, unsafe pickles, NaN outputs,
errors recorded in the metrics JSON."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from awml_harness.checkpoint import CheckpointError, load_state_dict
from awml_harness.export.store import ArtifactStore
from awml_harness.io.safe_pickle import UnsafePickleError, load_pickle

KILLED_BUILD = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from awml_harness.export.store import ArtifactStore

    def build(tmp):
        (tmp / "model.onnx").write_bytes(b"partial")
        Path(sys.argv[2]).write_text("writing")
        time.sleep(60)
        return "model.onnx"

    ArtifactStore(Path(sys.argv[1])).get_or_build("model", {"k": 1}, build)
""")


def test_kill_9_mid_export_leaves_nothing_that_a_later_run_loads(tmp_path):
    root, flag = tmp_path / "store", tmp_path / "flag"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_BUILD, str(root), str(flag)])
    try:
        deadline = time.time() + 60
        while not flag.exists():
            assert time.time() < deadline and proc.poll() is None, "builder never started"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")] == []  # nothing published
    built = []

    def build(tmp):
        built.append(tmp)
        (tmp / "model.onnx").write_bytes(b"complete")
        return "model.onnx"

    art = ArtifactStore(root).get_or_build("model", {"k": 1}, build)
    assert built and not art.reused and art.path.read_bytes() == b"complete"
    assert not list(root.glob(".model-*.tmp-*"))  # the dead builder's tmp folder was collected


def test_checkpoint_needing_full_unpickling_is_refused_with_the_opt_in(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "ckpt.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "meta": {"cfg": Path("/etc")}}, path)
    with pytest.raises(CheckpointError, match="--awml-unsafe-load"):
        load_state_dict(path)
    assert set(load_state_dict(path, allow_pickle=True)) == {"w"}
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"epoch": 3}}, path)
    assert float(load_state_dict(path)["w"][0]) == 1.0  # OpenMMLab layout, meta ignored


def test_a_pickled_callable_is_refused_naming_the_opt_in_whatever_torchs_wording(tmp_path):
    """The refusal comes from the installed torch itself (torch 2.13 writes "Weights only
    load failed ... unsupported GLOBAL posix.getcwd"); the message names the opt-in and
    the global, read from the file, not matched against torch's sentence."""
    import os

    torch = pytest.importorskip("torch")
    path = tmp_path / "callable.pth"
    torch.save({"w": torch.zeros(2), "hook": os.getcwd}, path)
    with pytest.raises(Exception) as raw:  # what torch says on its own
        torch.load(path, weights_only=True)
    assert "--awml-unsafe-load" not in str(raw.value)
    with pytest.raises(CheckpointError) as info:
        load_state_dict(path)
    assert "--awml-unsafe-load" in str(info.value) and f"{os.getcwd.__module__}.getcwd" in str(info.value)
    assert set(load_state_dict(path, allow_pickle=True)) == {"w", "hook"}
    # a truncated file is a broken file, not an unpickling question: no opt-in is offered
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(CheckpointError) as info:
        load_state_dict(path)
    assert "could not be read" in str(info.value) and "--awml-unsafe-load" not in str(info.value)


def test_info_pickles_are_restricted(tmp_path):
    import numpy as np

    ok = tmp_path / "ok.pkl"
    ok.write_bytes(pickle.dumps({"data_list": [{"lidar_points": {"lidar_path": "a.bin"}, "box": np.ones((1, 7))}]}))
    assert load_pickle(ok)["data_list"][0]["box"].shape == (1, 7)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps(subprocess.Popen))  # a callable from a non-allowed module
    with pytest.raises(UnsafePickleError, match="subprocess.Popen.*unsafe_load=True"):
        load_pickle(evil)


def test_nan_in_an_output_fails_with_path_and_count(toy_repo):
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "verification and s0",
                                           "--cfg-options", "model_cfg.export_nan=True")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*- output: mismatched elements 1 / 2 *non-finite: 1 NaN, 0 Inf*"])


def test_metrics_json_is_written_with_the_error_when_the_model_cannot_load(toy_repo):
    (toy_repo.path / "broken.pth").write_bytes(b"not a checkpoint")
    result = toy_repo.runpytest_subprocess("suites", "-p", "no:cacheprovider", "-k", "export or evaluation",
                                           "--cfg-options", "checkpoint_path=broken.pth")
    assert result.ret == 1
    doc = json.loads((toy_repo.path / "work_dirs/toy/metrics.json").read_text())
    assert doc["run"]["exitstatus"] == 1
    assert any("broken.pth could not be read" in p["message"] for p in doc["run"]["problems"])


@pytest.fixture
def tmpfs(tmp_path):
    """Mount small tmpfs file systems (read-only or tiny) for real ENOSPC / EROFS errors."""
    mounted = []

    def mount(name: str, options: str) -> Path:
        target = tmp_path / name
        target.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root or CAP_SYS_ADMIN): {done.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_read_only_work_dir_is_one_clear_error(tmpfs):
    from awml_harness.export.store import ArtifactError

    ro = tmpfs("ro", "ro,size=1m")
    with pytest.raises(ArtifactError) as info:
        ArtifactStore(ro / "artifacts").get_or_build("model", {"k": 1}, lambda tmp: "model.onnx")
    assert str(ro / "artifacts") in str(info.value) and "export.work_dir" in str(info.value)


def test_full_work_dir_is_one_clear_error_and_leaves_nothing(tmpfs):
    from awml_harness.export.store import ArtifactError

    full = tmpfs("full", "size=64k")

    def build(tmp):
        (tmp / "model.onnx").write_bytes(b"x" * 256 * 1024)  # 256 KiB into 64 KiB
        return "model.onnx"

    with pytest.raises(ArtifactError, match="check free space and permissions of export.work_dir") as info:
        ArtifactStore(full / "artifacts").get_or_build("model", {"k": 1}, build)
    assert str(full / "artifacts") in str(info.value)
    assert [p.name for p in (full / "artifacts").iterdir() if not p.name.endswith(".lock")] == []
