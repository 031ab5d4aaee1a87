"""Where a run came from: the command line and the git commit, so a report or a PR
comment can be traced back to the exact code and invocation that produced it."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any


def command_line(args: list[str]) -> str:
    """The pytest invocation as a shell line: `python -m pytest ...` or `pytest ...`."""
    prog = sys.argv[0] if sys.argv else "pytest"
    name = "python -m pytest" if prog.endswith("__main__.py") or prog in ("-m", "-c", "") else Path(prog).name
    return f"{name} {shlex.join(str(a) for a in args)}".strip()


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info(root: Path) -> dict[str, Any] | None:
    """commit, branch and whether tracked files differ from it; None outside a git
    checkout (then GITHUB_SHA, set by GitHub Actions, is used when present)."""
    commit = _git(root, "rev-parse", "HEAD")
    if not commit:
        sha = os.environ.get("GITHUB_SHA")
        return {"commit": sha, "branch": os.environ.get("GITHUB_REF_NAME"), "dirty": None, "source": "GITHUB_SHA"} if sha else None
    status = _git(root, "status", "--porcelain", "--untracked-files=no")
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    return {"commit": commit, "branch": None if branch in (None, "HEAD") else branch,
            "dirty": None if status is None else bool(status), "source": "git"}
