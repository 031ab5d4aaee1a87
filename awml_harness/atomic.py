"""Write-temp-then-rename, the one way this package writes files others read."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_open(path: Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Yield a file in `path`'s folder; on success it replaces `path` (mode 0644),
    on error it is removed, so readers see the old file or the new one, never half."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: Path, text: str) -> None:
    """`text` into `path`, atomically (the reports, suggestions, markdown summaries)."""
    with atomic_open(path) as fh:
        fh.write(text)


def write_json(path: Path, doc: Any, *, allow_nan: bool = False, indent: int | None = 2) -> None:
    """`doc` as JSON into `path`, atomically; NaN/Inf refused unless `allow_nan`."""
    import json

    with atomic_open(path) as fh:
        json.dump(doc, fh, indent=indent, allow_nan=allow_nan)
        fh.write("\n")
