"""Content-addressed artifact cache: build once, reuse while nothing that matters changed.

Layout under `<work_dir>/artifacts/`:

    <name>-<key16>/            one artifact: its files plus manifest.json
    <name>-<key16>.lock        file lock held while building (xdist workers wait on it)
    .<name>-<key16>.tmp-<pid>  build folder; renamed into place when complete

A folder becomes visible only by `os.rename` of a finished build, so a crash or kill
mid-export leaves a stale tmp folder, never a half-written artifact. On reuse each
file's sha256 is checked against the manifest; a mismatch (truncated, edited) is
warned about, removed and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class ArtifactError(RuntimeError):
    pass


@dataclass(frozen=True)
class Artifact:
    name: str
    key: str
    folder: Path
    files: dict[str, dict[str, Any]]  # relative name -> {"sha256", "size"}
    build_seconds: float
    reused: bool
    main: str  # the file a runner opens (e.g. "model.onnx")
    created_ts: float = 0.0

    @property
    def path(self) -> Path:
        return self.folder / self.main

    @property
    def size(self) -> int:
        return sum(f["size"] for f in self.files.values())

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "key": self.key, "path": str(self.path), "size_bytes": self.size,
                "build_seconds": round(self.build_seconds, 4), "reused": self.reused,
                "files": {k: dict(v) for k, v in self.files.items()}}


def digest(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


def code_digest(files: Iterable[Path], root: Path) -> str:
    """One sha256 over the given source files' paths (relative to `root`) and contents,
    in sorted order. Artifact keys hold it so that editing the code that produced an
    artifact (a model's layers, the exporter) rebuilds it instead of reusing a file
    made by the old code; module names are deliberately not used, since how a project
    is imported can change while its files stay the same."""
    h = hashlib.sha256()
    for f in sorted({Path(p) for p in files}, key=lambda p: p.relative_to(root).as_posix()):
        h.update(f.relative_to(root).as_posix().encode() + b"\0")
        h.update(file_sha256(f).encode() + b"\n")
    return h.hexdigest()


_NOT_SOURCE = {"configs", "__pycache__", "node_modules", "site-packages"}


def source_files(folder: Path, whole_tree: bool | None = None) -> list[Path]:
    """The .py files of a project's folder, subfolders included, except `configs/`
    (deploy configs enter artifact keys as parsed settings, so editing a tolerance does
    not re-export), caches, hidden folders and virtual environments.

    `whole_tree`: True for a folder the loader resolved as `projects/<Name>/` (imported by
    path, with or without `__init__.py`); None decides by `__init__.py`, so an adapter
    module at a repository's root (`pkg.module:Class` outside a package) gives its own
    .py files only, never the whole tree below it."""
    folder = Path(folder)
    if whole_tree is None:
        whole_tree = (folder / "__init__.py").is_file()
    if not whole_tree:
        return sorted(folder.glob("*.py"))
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(n for n in dirnames if not n.startswith(".") and n not in _NOT_SOURCE
                             and not (here / n / "pyvenv.cfg").exists())
        out += [here / f for f in sorted(filenames) if f.endswith(".py")]
    return out


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _ensure_root(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            probe = self.root / f".write-probe-{os.getpid()}"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ArtifactError(
                f"artifact folder {self.root} is not writable ({exc.strerror or exc}); "
                "set export.work_dir or --work-dir to a writable folder with free space"
            ) from None

    def _load(self, folder: Path, name: str, key: str) -> Artifact | None:
        manifest = folder / "manifest.json"
        if not manifest.is_file():
            return None
        try:
            meta = json.loads(manifest.read_text())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict) or not isinstance(meta.get("files"), dict) or "main" not in meta:
            return None  # valid JSON but not a manifest (hand-edited, other tool): rebuild
        for rel, info in meta.get("files", {}).items():
            f = folder / rel
            if not f.is_file() or f.stat().st_size != info["size"] or file_sha256(f) != info["sha256"]:
                warnings.warn(f"artifact {folder.name}: {rel} does not match its recorded hash "
                              "(truncated or modified); rebuilding it", stacklevel=3)
                return None
        return Artifact(name=name, key=key, folder=folder, files=meta["files"],
                        build_seconds=float(meta.get("build_seconds", 0.0)), reused=True, main=meta["main"],
                        created_ts=float(meta.get("created_ts", 0.0)))

    def get_or_build(self, name: str, key_data: Any, build: Callable[[Path], str], *,
                     rebuild_before: float | None = None) -> Artifact:
        """`build(tmp_folder)` writes the artifact's files there and returns the main file name.

        `rebuild_before`: a timestamp (the run's start, shared by all xdist workers);
        an artifact built before it is rebuilt, one built after it by a sibling worker
        of the same run is reused, so `--awml-rebuild` still exports once per run."""
        key = digest(key_data)
        folder = self.root / f"{name}-{key[:16]}"
        self._ensure_root()
        from filelock import FileLock

        with FileLock(str(folder) + ".lock"):
            found = self._load(folder, name, key)
            if found is not None and (rebuild_before is None or found.created_ts >= rebuild_before):
                return found
            tmp = self.root / f".{folder.name}.tmp-{os.getpid()}"
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            start = time.perf_counter()
            try:
                main = build(tmp)
                seconds = time.perf_counter() - start
                files = {
                    str(p.relative_to(tmp)): {"sha256": file_sha256(p), "size": p.stat().st_size}
                    for p in sorted(tmp.rglob("*")) if p.is_file()
                }
                if main not in files:
                    raise ArtifactError(f"artifact {name}: build did not write its main file {main!r}")
                meta = {"name": name, "key": key, "main": main, "files": files, "build_seconds": seconds,
                        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "created_ts": time.time(),
                        "key_data": key_data}
                (tmp / "manifest.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str))
                if folder.exists():
                    shutil.rmtree(folder)
                os.rename(tmp, folder)
            except OSError as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                raise ArtifactError(f"writing artifact {name} under {self.root} failed: {exc}; "
                                    "check free space and permissions of export.work_dir") from None
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._gc_stale_tmp(name)
            return Artifact(name=name, key=key, folder=folder, files=files, build_seconds=seconds, reused=False,
                            main=main, created_ts=meta["created_ts"])

    def _gc_stale_tmp(self, name: str) -> None:
        """Remove tmp folders whose builder process is gone (killed mid-export)."""
        for tmp in self.root.glob(f".{name}-*.tmp-*"):
            pid = tmp.name.rsplit("-", 1)[-1]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(tmp, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
