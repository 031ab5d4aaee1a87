"""What the subcommands share: reading a metrics JSON with one clear error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

EXPECTED = "a metrics JSON written by an awml-harness run (pytest --awml-metrics-json PATH, or <work_dir>/metrics.json)"


class CliError(Exception):
    """A file or argument the command cannot use; printed as one line, exit status 2."""


def load_document(path: str | Path) -> dict[str, Any]:
    """The metrics JSON at `path`, checked for the shape every subcommand relies on.

    Validated against the shipped JSON Schema when jsonschema is installed (dev extra);
    without it, the top-level keys are checked, which is what the commands read."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CliError(f"{p}: no such file; expected {EXPECTED}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CliError(f"{p}: cannot read it ({getattr(exc, 'strerror', None) or exc}); expected {EXPECTED}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CliError(f"{p}: not valid JSON (line {exc.lineno} column {exc.colno}: {exc.msg}); "
                       f"expected {EXPECTED}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("projects"), dict) or "schema_version" not in doc:
        found = sorted(doc)[:8] if isinstance(doc, dict) else type(doc).__name__
        raise CliError(f"{p}: not a metrics JSON (top level has {found}, needs schema_version, run, machine, "
                       f"projects); expected {EXPECTED}")
    from awml_harness.report.document import READABLE_VERSIONS

    if doc["schema_version"] not in READABLE_VERSIONS:
        raise CliError(f"{p}: schema_version {doc['schema_version']!r}, this awml-harness reads "
                       f"{' and '.join(map(str, READABLE_VERSIONS))}")
    try:
        import jsonschema
    except ImportError:
        return doc
    from awml_harness.report.document import validate_document

    try:
        validate_document(doc)
    except jsonschema.ValidationError as exc:
        where = "/".join(str(x) for x in exc.absolute_path) or "<top level>"
        raise CliError(f"{p}: does not follow metrics.schema.json at {where}: {exc.message}") from None
    return doc
