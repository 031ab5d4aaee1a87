"""Config file -> dict: Python configs (mmengine `Config` semantics) and YAML configs,
`_base_` chains walked and merged. Below the project lookup (`awml_harness/project.py`
reads model configs with `read_file`), while `config/load.py` turns the dict into a
DeployConfig and resolves the project above it.
"""

from __future__ import annotations

import copy
import os
import re
import types
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from awml_harness.config.bases import YAML_SUFFIXES, declared_bases
from awml_harness.config.errors import ConfigError


def _merge(base: dict, override: Mapping) -> dict:
    out = copy.deepcopy(base)
    for k, v in override.items():
        if isinstance(v, Mapping) and v.get("_delete_"):
            out[k] = {kk: vv for kk, vv in v.items() if kk != "_delete_"}
        elif isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = copy.deepcopy(v)
    return out


#: mmengine's predefined variables: `{{ fileDirname }}` in a config's text is the folder of
#: that file (each file of a `_base_` chain its own), so a config names its data relative
#: to itself and works wherever it is installed (the shipped configs in a wheel)
_FILE_VARIABLES = re.compile(r"\{\{\s*(fileDirname|fileBasenameNoExtension|fileBasename|fileExtname)\s*\}\}")


def substitute_file_variables(text: str, path: Path) -> str:
    """The text of config `path` with mmengine's predefined variables filled in, as
    `mmengine.config.Config.fromfile` does (`fileDirname`, `fileBasename`,
    `fileBasenameNoExtension`, `fileExtname`; backslashes written as `/`)."""
    name = os.path.abspath(path)
    base = os.path.basename(name)
    values = {"fileDirname": os.path.dirname(name), "fileBasename": base,
              "fileBasenameNoExtension": os.path.splitext(base)[0], "fileExtname": os.path.splitext(name)[1]}
    return _FILE_VARIABLES.sub(lambda m: values[m.group(1)].replace("\\", "/"), text)


def _read_python(path: Path) -> dict[str, Any]:
    try:
        from mmengine.config import Config  # type: ignore[import-not-found]
    except ImportError:
        Config = None
    if Config is not None:
        try:
            cfg = Config.fromfile(str(path), import_custom_modules=False)
        except Exception as exc:  # syntax errors, bad _base_ ...
            raise ConfigError("<file>", str(path), f"a loadable Python config ({type(exc).__name__}: {exc})") from None
        return cfg.to_dict()
    namespace: dict[str, Any] = {"__name__": "<run_path>", "__file__": str(path)}
    try:
        text = substitute_file_variables(path.read_text(encoding="utf-8"), path)
        exec(compile(text, str(path), "exec"), namespace)
    except Exception as exc:
        raise ConfigError("<file>", str(path), f"a loadable Python config ({type(exc).__name__}: {exc})") from None
    data = {k: v for k, v in namespace.items()
            if not k.startswith("__") and not callable(v) and not isinstance(v, types.ModuleType)}
    return _apply_base(data, path)


def _read_yaml(path: Path) -> dict[str, Any]:
    import yaml

    try:
        data = yaml.safe_load(substitute_file_variables(path.read_text(encoding="utf-8"), path))
    except yaml.YAMLError as exc:
        raise ConfigError("<file>", str(path), f"valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise ConfigError("<root>", data, "a YAML mapping at the top level")
    return _apply_base(data, path)


def _apply_base(data: dict[str, Any], path: Path) -> dict[str, Any]:
    bases = data.pop("_base_", None)
    if bases is None:
        return data
    merged: dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else list(bases):
        merged = _merge(merged, read_file(path.parent / base))
    return _merge(merged, data)


#: the command-line flag that lets YAML configs reach Python files
PYTHON_IN_YAML_OPT_IN = "--awml-allow-python-in-yaml"
_PYTHON_IN_YAML: ContextVar[bool] = ContextVar("awml_allow_python_in_yaml", default=False)


@contextmanager
def python_in_yaml_allowed(allowed: bool) -> Iterator[None]:
    """While active, YAML files may name `.py` files (the user's explicit opt-in)."""
    token = _PYTHON_IN_YAML.set(allowed)
    try:
        yield
    finally:
        _PYTHON_IN_YAML.reset(token)


def refuse_python_from_yaml(key: str, target: Any, yaml_file: Path | str) -> None:
    """A YAML config is data; a `.py` file it names would run as code. Refused unless opted in."""
    if str(target).endswith(".py") and not _PYTHON_IN_YAML.get():
        raise ConfigError(key, str(target), f"a YAML file: {yaml_file} is YAML, and a YAML config never "
                                            f"runs Python (pass {PYTHON_IN_YAML_OPT_IN} to allow it)")


def check_bases(path: Path | str) -> None:
    """Walk the `_base_` graph from `path` before reading it: a cycle, or a YAML file
    naming a `.py` base without the opt-in, is a ConfigError (not a RecursionError)."""

    def visit(node: Path, chain: tuple[Path, ...]) -> None:
        for base in declared_bases(node):
            if node.suffix in YAML_SUFFIXES:
                refuse_python_from_yaml("_base_", base, node)
            target = (node.parent / base).resolve()
            if target in chain:
                shown = " -> ".join(p.name for p in (*chain[chain.index(target):], target))
                raise ConfigError("_base_", base, f"an acyclic _base_ chain; {node} closes the cycle {shown}")
            if target.is_file():
                visit(target, (*chain, target))

    start = Path(path).resolve()
    visit(start, (start,))


def read_file(path: Path | str) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError("--deploy-cfg", str(path), "an existing .py, .yaml or .yml file")
    check_bases(path)
    if path.suffix == ".py":
        return _read_python(path)
    if path.suffix in (".yaml", ".yml"):
        return _read_yaml(path)
    raise ConfigError("--deploy-cfg", str(path), "a file ending in .py, .yaml or .yml")
