"""Artifact store (awml_harness/export/store.py): the key, the manifest, reuse rules,
clean-up of failed and abandoned builds, pinned so a deliberate bug shows."""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from awml_harness.export.store import Artifact, ArtifactError, ArtifactStore, digest, file_sha256


def build_files(files: dict[str, bytes], main: str = "model.onnx", calls: list | None = None):
    def build(tmp: Path) -> str:
        if calls is not None:
            calls.append(tmp)
        for rel, data in files.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(data)
        return main

    return build


def test_key_is_the_sha256_of_the_canonical_json_of_the_key_data():
    data = {"b": [1, 2], "a": {"y": Path("/x"), "x": 1.5}}
    expected = hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()
    assert digest(data) == expected and len(expected) == 64
    # key order does not matter, values do; paths are keyed by their text
    assert digest({"a": {"x": 1.5, "y": Path("/x")}, "b": [1, 2]}) == expected
    assert digest({"a": {"x": 1.5, "y": "/x"}, "b": [1, 2]}) == expected
    assert digest({"a": {"x": 1.5, "y": Path("/z")}, "b": [1, 2]}) != expected
    assert digest({"b": [2, 1], "a": {"y": Path("/x"), "x": 1.5}}) != expected


def test_file_hash_reads_the_whole_file(tmp_path):
    big = tmp_path / "big.bin"
    payload = os.urandom((1 << 20) + 123)  # more than one read chunk
    big.write_bytes(payload)
    assert file_sha256(big) == hashlib.sha256(payload).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert file_sha256(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_a_fresh_build_is_published_with_its_manifest(tmp_path):
    store = ArtifactStore(tmp_path / "work" / "artifacts")  # created on demand, parents too
    key_data = {"opset": 17, "path": Path("/ckpt.pth")}
    art = store.get_or_build("net", key_data, build_files({"model.onnx": b"abc", "sub/w.bin": b"12345"}))
    key = digest(key_data)
    assert art.key == key and art.name == "net" and art.main == "model.onnx" and not art.reused
    assert art.folder == tmp_path / "work" / "artifacts" / f"net-{key[:16]}"
    assert art.path == art.folder / "model.onnx"
    assert art.files == {"model.onnx": {"sha256": hashlib.sha256(b"abc").hexdigest(), "size": 3},
                         "sub/w.bin": {"sha256": hashlib.sha256(b"12345").hexdigest(), "size": 5}}
    assert art.size == 8
    assert 0 <= art.build_seconds < 60 and abs(art.created_ts - time.time()) < 60
    meta = json.loads((art.folder / "manifest.json").read_text())
    assert meta["name"] == "net" and meta["key"] == key and meta["main"] == "model.onnx"
    assert meta["files"] == art.files and meta["key_data"] == {"opset": 17, "path": "/ckpt.pth"}
    assert meta["created_ts"] == art.created_ts and meta["build_seconds"] == art.build_seconds
    created = datetime.datetime.strptime(meta["created"], "%Y-%m-%dT%H:%M:%S%z")  # readable build time
    assert abs(created.timestamp() - art.created_ts) < 2
    assert sorted(p.name for p in (tmp_path / "work" / "artifacts").iterdir()) == sorted([art.folder.name, art.folder.name + ".lock"])


def test_reuse_returns_what_the_manifest_recorded(tmp_path):
    store = ArtifactStore(tmp_path)
    first = store.get_or_build("net", {"k": 1}, build_files({"graph.onnx": b"g"}, main="graph.onnx"))
    calls: list = []
    again = store.get_or_build("net", {"k": 1}, build_files({"graph.onnx": b"other"}, "graph.onnx", calls))
    assert calls == [] and again.reused
    assert (again.name, again.key, again.folder, again.main, again.files) == \
        (first.name, first.key, first.folder, "graph.onnx", first.files)
    assert again.build_seconds == pytest.approx(first.build_seconds)
    assert again.created_ts == first.created_ts
    assert again.path.read_bytes() == b"g"


def test_as_dict_for_the_metrics_json(tmp_path):
    art = ArtifactStore(tmp_path).get_or_build("net", {}, build_files({"model.onnx": b"abcd", "x.data": b"12"}))
    d = art.as_dict()
    assert d["name"] == "net" and d["key"] == art.key and d["path"] == str(art.path)
    assert d["size_bytes"] == 6 and d["reused"] is False
    assert d["files"] == art.files and d["files"] is not art.files
    assert d["build_seconds"] == round(art.build_seconds, 4)
    a = Artifact(name="n", key="k", folder=tmp_path, files={}, build_seconds=1.234567, reused=True, main="m")
    assert a.as_dict()["build_seconds"] == 1.2346 and a.created_ts == 0.0 and a.size == 0


def test_the_main_file_must_be_written(tmp_path):
    store = ArtifactStore(tmp_path)
    with pytest.raises(ArtifactError, match=r"artifact net: build did not write its main file 'model.onnx'"):
        store.get_or_build("net", {}, build_files({"other.onnx": b"x"}))
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_an_os_error_while_building_is_an_artifact_error_and_leaves_nothing(tmp_path):
    store = ArtifactStore(tmp_path)

    def build(tmp: Path) -> str:
        (tmp / "model.onnx").write_bytes(b"half")
        raise OSError(28, "No space left on device")

    with pytest.raises(ArtifactError) as info:
        store.get_or_build("net", {}, build)
    msg = str(info.value)
    assert msg.startswith(f"writing artifact net under {tmp_path} failed: ")
    assert "No space left on device" in msg
    assert msg.endswith("; check free space and permissions of export.work_dir")
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


def test_an_interrupted_build_leaves_nothing_and_propagates(tmp_path):
    store = ArtifactStore(tmp_path)

    def build(tmp: Path) -> str:
        (tmp / "model.onnx").write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.get_or_build("net", {}, build)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize("manifest", [None, "{not json", "[]", '{"files": {}}', '{"main": "model.onnx"}'])
def test_a_folder_without_a_readable_manifest_is_rebuilt(tmp_path, manifest):
    store = ArtifactStore(tmp_path)
    art = store.get_or_build("net", {}, build_files({"model.onnx": b"x"}))
    if manifest is None:
        (art.folder / "manifest.json").unlink()
    else:
        (art.folder / "manifest.json").write_text(manifest)
    calls: list = []
    again = store.get_or_build("net", {}, build_files({"model.onnx": b"y"}, calls=calls))
    assert len(calls) == 1 and not again.reused and again.path.read_bytes() == b"y"
    assert json.loads((again.folder / "manifest.json").read_text())["files"]["model.onnx"]["size"] == 1


def test_a_modified_file_is_named_in_the_warning(tmp_path):
    store = ArtifactStore(tmp_path)
    art = store.get_or_build("net", {}, build_files({"model.onnx": b"x", "w.bin": b"abc"}))
    (art.folder / "w.bin").write_bytes(b"abd")  # same size, other content
    with pytest.warns(UserWarning) as record:
        again = store.get_or_build("net", {}, build_files({"model.onnx": b"x", "w.bin": b"abc"}))
    assert str(record[0].message) == (f"artifact {art.folder.name}: w.bin does not match its recorded hash "
                                      "(truncated or modified); rebuilding it")
    assert not again.reused and (again.folder / "w.bin").read_bytes() == b"abc"
    (again.folder / "w.bin").write_bytes(b"abcd")  # other size
    with pytest.warns(UserWarning, match="w.bin does not match"):
        store.get_or_build("net", {}, build_files({"model.onnx": b"x", "w.bin": b"abc"}))


def test_rebuild_before_compares_with_the_build_time(tmp_path):
    store = ArtifactStore(tmp_path)
    art = store.get_or_build("net", {}, build_files({"model.onnx": b"x"}))
    calls: list = []
    assert store.get_or_build("net", {}, build_files({"model.onnx": b"x"}, calls=calls),
                              rebuild_before=art.created_ts).reused  # built at that very moment: reuse
    assert calls == []
    fresh = store.get_or_build("net", {}, build_files({"model.onnx": b"x"}, calls=calls),
                               rebuild_before=art.created_ts + 0.001)
    assert len(calls) == 1 and not fresh.reused and fresh.created_ts > art.created_ts


def test_unwritable_root_names_the_folder_and_the_reason(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ArtifactError) as info:
        ArtifactStore(blocker / "sub").get_or_build("m", {}, build_files({"model.onnx": b"x"}))
    assert str(info.value) == (f"artifact folder {blocker / 'sub'} is not writable (Not a directory); "
                               "set export.work_dir or --work-dir to a writable folder with free space")
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_the_write_probe_is_removed(tmp_path):
    ArtifactStore(tmp_path).get_or_build("m", {}, build_files({"model.onnx": b"x"}))
    assert not list(tmp_path.glob(".write-probe-*"))


def test_abandoned_build_folders_of_dead_processes_are_collected(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    store = ArtifactStore(tmp_path)
    stale = tmp_path / f".net-0123456789abcdef.tmp-{dead.pid}"
    odd = tmp_path / ".net-0123456789abcdef.tmp-xyz"
    other = tmp_path / f".other-0123456789abcdef.tmp-{dead.pid}"
    for p in (stale, odd, other):
        p.mkdir()
        (p / "model.onnx").write_bytes(b"partial")
    # a live builder (a process of our own, never a pid we did not start: a broken
    # liveness probe may send it a real signal)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live_tmp = tmp_path / f".net-fedcba9876543210.tmp-{live.pid}"
        live_tmp.mkdir()
        store.get_or_build("net", {}, build_files({"model.onnx": b"x"}))
        assert live.poll() is None
        assert live_tmp.exists()  # a live process may still be writing there
    finally:
        live.kill()
        live.wait()
    assert not stale.exists()
    assert odd.exists()  # not a pid: left alone
    assert other.exists()  # another artifact's builders are not this build's business


@pytest.mark.parametrize("error", [OSError(5, "I/O error"), KeyboardInterrupt()])
def test_a_build_that_removed_its_own_folder_still_fails_cleanly(tmp_path, error):
    def build(tmp: Path) -> str:
        shutil.rmtree(tmp)
        raise error

    with pytest.raises(ArtifactError if isinstance(error, OSError) else KeyboardInterrupt):
        ArtifactStore(tmp_path).get_or_build("net", {}, build)


def test_a_leftover_build_folder_of_this_process_is_cleared_first(tmp_path):
    store = ArtifactStore(tmp_path)
    key = digest({})
    leftover = tmp_path / f".net-{key[:16]}.tmp-{os.getpid()}"
    leftover.mkdir()
    (leftover / "junk.bin").write_bytes(b"junk")
    art = store.get_or_build("net", {}, build_files({"model.onnx": b"x"}))
    assert set(art.files) == {"model.onnx"} and not leftover.exists()


def test_a_manifest_without_timing_fields_is_reused_as_old(tmp_path):
    store = ArtifactStore(tmp_path)
    art = store.get_or_build("net", {}, build_files({"model.onnx": b"x"}))
    meta = json.loads((art.folder / "manifest.json").read_text())
    del meta["build_seconds"], meta["created_ts"]
    (art.folder / "manifest.json").write_text(json.dumps(meta))
    again = store.get_or_build("net", {}, build_files({"model.onnx": b"x"}))
    assert again.reused and again.build_seconds == 0.0 and again.created_ts == 0.0
    calls: list = []
    store.get_or_build("net", {}, build_files({"model.onnx": b"x"}, calls=calls), rebuild_before=0.5)
    assert len(calls) == 1  # of unknown age: older than any run
