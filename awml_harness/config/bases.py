"""A config file's `_base_` list, read without running the file.

Two places need it before any config is executed: the loader's cycle and YAML-safety
walk, and the project lookup rule (a config outside the tree finds its project through
the files it inherits). Both read it the same way: a literal `_base_ = ...` assignment in
a `.py` file, the `_base_` key of a YAML mapping.
"""

from __future__ import annotations

import ast
from pathlib import Path

YAML_SUFFIXES = (".yaml", ".yml")


def declared_bases(path: Path) -> list[str]:
    """The `_base_` entries of a config file as written (strings only); [] when there are
    none or the file cannot be read this way (the real read reports those files)."""
    try:
        if path.suffix == ".py":
            for node in ast.parse(path.read_text()).body:
                if (isinstance(node, ast.Assign) and len(node.targets) == 1
                        and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "_base_"):
                    bases = ast.literal_eval(node.value)
                    break
            else:
                return []
        elif path.suffix in YAML_SUFFIXES:
            import yaml

            data = yaml.safe_load(path.read_text())
            bases = data.get("_base_") if isinstance(data, dict) else None
        else:
            return []
    except Exception:  # unreadable, invalid or not a literal: the real read reports it
        return []
    if isinstance(bases, str):
        return [bases]
    if isinstance(bases, (list, tuple)):
        return [b for b in bases if isinstance(b, str)]
    return []
