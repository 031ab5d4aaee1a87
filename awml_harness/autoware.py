"""Autoware's parameter files: written, read and judged, for any project.

What AWML releases and Autoware runs is a folder: the ONNX files plus the parameter files
the model's ROS node reads (ROS 2 YAML, `/**: ros__parameters: {...}`, nested maps read
as dotted names; label files one name per line). A project derives those files from its
settings (`ProjectAdapter.autoware_package`) and says which value of each file the model
decides (`ProjectAdapter.autoware_checks`); this module holds what every project needs
and names none of them:

- :func:`dump_params` / :func:`read_params` / :func:`get_key`: the YAML form, floats as
  floats (ROS refuses an integer list where it declares doubles) and ints as ints;
- :func:`read_value`: the value a `(file, key)` names in a package folder (YAML key,
  `labels` of a label file, `inputs.<name>` / `outputs.<name>` / `io` of an ONNX file);
- :func:`judge`: a :class:`PackageValue` (what the model decides, and where that comes
  from) against the value found, as a :class:`PackageVerdict` naming both;
- :func:`schema_errors`: a file against a JSON schema (draft-07, as Autoware's
  `schema/*.schema.json` are written), with `jsonschema`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the file the core writes into every package: what made it (free-form for Autoware)
METADATA_FILE = "deploy_metadata.yaml"
#: the key of a package file that test_package validates against its JSON schema
SCHEMA_KEY = "schema"
#: the key of a package ONNX file that test_package compares with the exported graph's I/O
IO_KEY = "io"


class PackageError(ValueError):
    """A package file that is missing or cannot be read as the node reads it."""


@dataclass(frozen=True)
class PackageValue:
    """What the model decides for one key: `value`, and `source`, where it comes from
    (`model_cfg.voxel_size`, `pts_voxel_encoder.onnx input_features[-1]`). `measure`
    turns the value found in the file into the quantity compared (e.g. `len` for a list
    that needs one entry per class), written `measure_name(key)` in messages."""

    value: Any
    source: str
    measure: Callable[[Any], Any] | None = None
    measure_name: str = ""


@dataclass(frozen=True)
class PackageVerdict:
    file: str
    key: str
    passed: bool
    found: Any
    expected: Any
    source: str
    message: str

    def record(self) -> dict[str, Any]:
        return {"file": self.file, "key": self.key, "passed": self.passed, "found": plain(self.found),
                "expected": plain(self.expected), "source": self.source, "message": self.message}


# -- YAML parameter files -------------------------------------------------------------------
def dump_params(params: Mapping[str, Any], header: Sequence[str] = (), node: str = "/**") -> str:
    """A ROS 2 parameter file: `node: ros__parameters: params`, lists of scalars in flow
    style, floats written with a decimal point."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def _list(dumper: yaml.SafeDumper, data: list[Any]) -> Any:
        flow = all(not isinstance(v, (dict, list, tuple)) for v in data)
        return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)

    def _float(dumper: yaml.SafeDumper, data: float) -> Any:
        text = repr(float(data))
        if "e" in text and "." not in text.split("e")[0]:
            mantissa, exp = text.split("e")
            text = f"{mantissa}.0e{exp}"
        return dumper.represent_scalar("tag:yaml.org,2002:float", text)

    _Dumper.add_representer(list, _list)
    _Dumper.add_representer(tuple, _list)
    _Dumper.add_representer(float, _float)
    body = yaml.dump({node: {"ros__parameters": plain(params)}}, Dumper=_Dumper, sort_keys=False,
                     default_flow_style=False, width=120, allow_unicode=True)
    return "".join(f"# {line}\n" for line in header) + body


def read_params(path: Path) -> dict[str, Any]:
    """The parameters of a ROS 2 parameter file: the `ros__parameters` of its one node
    entry (`/**` or a node name); a file without the wrapper (the YOLOX manifest form) as is."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PackageError(f"{path}: not a readable YAML parameter file ({type(exc).__name__}: {exc})") from None
    if not isinstance(doc, dict):
        raise PackageError(f"{path}: a YAML mapping of parameters, found {type(doc).__name__}")
    nodes = [v for v in doc.values() if isinstance(v, dict) and "ros__parameters" in v]
    if len(nodes) == 1 and len(doc) == 1:
        params = nodes[0]["ros__parameters"]
        return params if isinstance(params, dict) else {}
    return doc


_MISSING = object()


def get_key(params: Mapping[str, Any], key: str, default: Any = _MISSING) -> Any:
    """`model_params.voxel_size` in nested maps (or written flat, `model_params.voxel_size: ...`)."""
    if key in params:
        return params[key]
    node: Any = params
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if default is _MISSING:
                raise KeyError(key)
            return default
        node = node[part]
    return node


def set_key(params: dict[str, Any], key: str, value: Any) -> None:
    node = params
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PackageError(f"parameter {key!r}: {part!r} holds a {type(node).__name__}, not a map")
    node[parts[-1]] = value


def read_labels(path: Path) -> list[str]:
    """A label file as tensorrt_yolox reads it: one class name per line (the line's index
    is the class id), whitespace trimmed; blank lines are no class."""
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise PackageError(f"{path}: not a readable label file ({exc})") from None
    return [line.strip() for line in lines if line.strip()]


def labels_text(names: Sequence[str]) -> str:
    return "".join(f"{n}\n" for n in names)


# -- reading a package ------------------------------------------------------------------------
def find_file(folder: Path, name: str) -> Path | None:
    """`name` in a package folder; else the one file that differs by a prefix
    (`centerpoint_ml_package.param.yaml` for `ml_package.param.yaml`, as AWML's releases
    name them) or, for an ONNX file, by a suffix of its stem (`pts_voxel_encoder_centerpoint.onnx`)."""
    folder = Path(folder)
    exact = folder / name
    if exact.is_file():
        return exact
    stem, dot, suffix = name.partition(".")
    candidates = sorted(folder.glob(f"*_{name}"))
    if not candidates and name.endswith(".onnx"):
        candidates = sorted(folder.glob(f"{name[:-5]}*.onnx"))
    return candidates[0] if len(candidates) == 1 else None


def read_value(path: Path, key: str) -> Any:
    """The value `key` names in a package file (see the module docstring)."""
    path = Path(path)
    if path.suffix == ".onnx":
        from awml_harness.graph import io_signature

        sig = io_signature(path)
        if key == IO_KEY:
            return sig
        side, _, name = key.partition(".")
        if side in ("inputs", "outputs") and name in sig[side]:
            return list(sig[side][name])
        raise PackageError(f"{path.name}: no tensor {key!r} (inputs {list(sig['inputs'])}, outputs {list(sig['outputs'])})")
    if path.suffix in (".yaml", ".yml"):
        try:
            return get_key(read_params(path), key)
        except KeyError:
            raise PackageError(f"{path.name}: the node reads {key!r}, and the file has no such parameter") from None
    if key == "labels":
        return read_labels(path)
    raise PackageError(f"{path.name}: no reader for key {key!r}")


# -- judging ---------------------------------------------------------------------------------
def same(a: Any, b: Any, rel: float = 1e-6) -> bool:
    """Equal as the node reads them: numbers within `rel` (0.24 written as 0.2400001 is the
    same float32), lists element by element in order, maps key by key."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (isinstance(a, bool) and isinstance(b, bool) and a == b)
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=rel, abs_tol=rel)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(same(x, y, rel) for x, y in zip(a, b, strict=True))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return set(a) == set(b) and all(same(a[k], b[k], rel) for k in a)
    return bool(a == b)


def judge(file: str, key: str, found: Any, expected: PackageValue, where: str = "") -> PackageVerdict:
    """`found` (the file's value) against what the model decides."""
    measured = expected.measure(found) if expected.measure is not None else found
    shown = f"{expected.measure_name}({key})" if expected.measure is not None else key
    ok = same(measured, expected.value)
    message = (f"{where or file}: {shown} = {_show(measured)} agrees with {expected.source} = {_show(expected.value)}"
               if ok else
               f"{where or file}: {shown} = {_show(measured)} but {expected.source} = {_show(expected.value)}; "
               "Autoware's node would feed the model with the file's value")
    return PackageVerdict(file, key, ok, measured, expected.value, expected.source, message)


def schema_errors(instance: Any, schema_path: Path) -> list[str]:
    """Every violation of the JSON schema at `schema_path`, with the path in the file;
    empty when the instance validates. `jsonschema` is imported here only."""
    import json

    import jsonschema

    schema = json.loads(Path(schema_path).read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(str(p) for p in err.absolute_path) or '<root>'}: {err.message}"
            for err in sorted(validator.iter_errors(instance), key=lambda e: list(map(str, e.absolute_path)))]


def document(path: Path) -> Any:
    """A package file as its schema sees it: the whole YAML document, or the lines of a text file."""
    import yaml

    if Path(path).suffix in (".yaml", ".yml"):
        return yaml.safe_load(Path(path).read_text())
    return read_labels(path)


def plain(value: Any) -> Any:
    """Builtins only (tuples as lists, numpy scalars as numbers): what YAML and JSON take."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    return value


def _show(value: Any) -> str:
    return repr(plain(value))
