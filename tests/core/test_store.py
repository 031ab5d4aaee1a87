from __future__ import annotations

import multiprocessing as mp
import os
import time
from pathlib import Path

import pytest

from awml_harness.export.store import ArtifactError, ArtifactStore


def writer(calls: list, payload: bytes = b"onnx-bytes"):
    def build(tmp: Path) -> str:
        calls.append(tmp)
        (tmp / "model.onnx").write_bytes(payload)
        (tmp / "model.onnx.data").write_bytes(b"weights")
        return "model.onnx"

    return build


def test_build_then_reuse(tmp_path):
    store = ArtifactStore(tmp_path)
    calls: list = []
    a = store.get_or_build("model", {"k": 1}, writer(calls))
    b = store.get_or_build("model", {"k": 1}, writer(calls))
    assert len(calls) == 1 and not a.reused and b.reused
    assert a.path == b.path and a.path.read_bytes() == b"onnx-bytes"
    assert set(a.files) == {"model.onnx", "model.onnx.data"}  # external data is hashed too
    assert not list(tmp_path.glob(".*tmp*"))


def test_key_change_builds_a_new_artifact(tmp_path):
    store = ArtifactStore(tmp_path)
    calls: list = []
    a = store.get_or_build("model", {"k": 1}, writer(calls))
    b = store.get_or_build("model", {"k": 2}, writer(calls))
    assert len(calls) == 2 and a.folder != b.folder


@pytest.mark.parametrize("damage", ["truncate", "alter", "delete_data"])
def test_corrupt_artifact_is_detected_warned_and_rebuilt(tmp_path, damage):
    store = ArtifactStore(tmp_path)
    calls: list = []
    a = store.get_or_build("model", {"k": 1}, writer(calls))
    if damage == "truncate":
        a.path.write_bytes(a.path.read_bytes()[:3])
    elif damage == "alter":
        a.path.write_bytes(b"onnx-bytez")  # same size, other content
    else:
        (a.folder / "model.onnx.data").unlink()
    with pytest.warns(UserWarning, match="rebuilding") if damage != "delete_data" else pytest.warns(UserWarning):
        b = store.get_or_build("model", {"k": 1}, writer(calls))
    assert len(calls) == 2 and not b.reused and b.path.read_bytes() == b"onnx-bytes"


def test_failed_build_leaves_nothing_behind(tmp_path):
    store = ArtifactStore(tmp_path)

    def broken(tmp: Path) -> str:
        (tmp / "model.onnx").write_bytes(b"half")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        store.get_or_build("model", {"k": 1}, broken)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []
    calls: list = []
    assert not store.get_or_build("model", {"k": 1}, writer(calls)).reused


def test_rebuild_before_rebuilds_once_per_run(tmp_path):
    store = ArtifactStore(tmp_path)
    calls: list = []
    store.get_or_build("model", {"k": 1}, writer(calls))
    run_started = time.time()
    store.get_or_build("model", {"k": 1}, writer(calls), rebuild_before=run_started)
    again = store.get_or_build("model", {"k": 1}, writer(calls), rebuild_before=run_started)
    assert len(calls) == 2 and again.reused


def test_unwritable_work_dir_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ArtifactError, match=str(blocker)) as info:
        ArtifactStore(blocker / "artifacts").get_or_build("m", {}, writer([]))
    assert "export.work_dir" in str(info.value)


def _slow_build(root: str, counter: str) -> None:
    def build(tmp: Path) -> str:
        with open(counter, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        (tmp / "model.onnx").write_bytes(b"x")
        return "model.onnx"

    ArtifactStore(Path(root)).get_or_build("model", {"k": 1}, build)


def test_concurrent_processes_build_once(tmp_path):
    counter = tmp_path / "builds.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_slow_build, args=(str(tmp_path / "store"), str(counter))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert len(counter.read_text().splitlines()) == 1
