"""Typed test parameters, and the one place test ids are written and read.

The suites are parametrized with these, so a test id reads like
`MyDetector-pytorch:cpu-vs-onnx:cpu-s0` and `-k mydetector` selects a project. The
xdist scheduler reads the ids back (`scope_of`) to keep a config's tests on one worker."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from awml_harness.config.schema import BackendSpec, Scenario

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig

TENSORRT = "tensorrt"
#: the export target that writes a config's Autoware package (ExportCase graph PACKAGE)
AUTOWARE = "autoware"
PACKAGE = "package"


def onnx_target(precision: str) -> str:
    """The export target of an ONNX precision variant: `onnx` (fp32), `onnx-fp16`, ..."""
    return "onnx" if precision == "fp32" else f"onnx-{precision}"


def target_precision(target: str) -> str | None:
    """The ONNX precision an export target builds; None for the TensorRT engines and the
    Autoware package."""
    if target in (TENSORRT, AUTOWARE):
        return None
    return "fp32" if target == "onnx" else target.removeprefix("onnx-")


def artifact_variants(spec: BackendSpec, handed: str | None = None) -> list[tuple[str, Any]]:
    """The artifacts a backend spec runs on: ("onnx", precision), the fp32 source of a
    reduced-precision variant first, or ("tensorrt", spec). `handed`: the precision of a
    handed-over export.onnx_path, which is its own source (an int8 file has no fp32 one)."""
    kind = spec.backend.value
    if kind == "onnx":
        if handed is not None and spec.precision == handed:
            return [("onnx", spec.precision)]
        return [("onnx", "fp32")] + ([("onnx", spec.precision)] if spec.precision != "fp32" else [])
    if kind == TENSORRT:
        return [(TENSORRT, spec)]
    return []


def export_targets(cfg: DeployConfig) -> list[str]:
    """What test_export checks for a config: the ONNX files of its export mode, every
    reduced-precision ONNX variant it evaluates, the engines of modes that build them."""
    targets = ["onnx"] if cfg.export.mode in ("onnx", "both") else []
    if cfg.export.mode != "none":
        precisions = {s.precision for s in cfg.evaluation.specs().values() if s.backend.value == "onnx"}
        targets += [onnx_target(p) for p in sorted(precisions - {"fp32"})]
    if cfg.export.mode in ("trt", "both"):
        targets.append(TENSORRT)
    return targets


@dataclass(frozen=True)
class ExportCase:
    config_id: str
    graph: str
    target: str  # "onnx" | "onnx-<precision>" | "tensorrt" (export_targets)

    @property
    def id(self) -> str:
        return f"{self.config_id}-{self.graph}-{self.target}"


@dataclass(frozen=True)
class VerifyCase:
    config_id: str
    scenario: Scenario
    sample_index: int
    golden: bool = False  # reference outputs come from --awml-golden files

    @property
    def id(self) -> str:
        prefix = "golden:" if self.golden else ""
        return f"{self.config_id}-{prefix}{self.scenario.label}-s{self.sample_index}"


@dataclass(frozen=True)
class ShapeCase:
    """Graph-level check at profile shapes ("min", "opt", "max") or of batch-row consistency."""

    config_id: str
    scenario: Scenario
    which: str

    @property
    def id(self) -> str:
        return f"{self.config_id}-{self.scenario.label}-{self.which}"


@dataclass(frozen=True)
class BackendCase:
    """One backend of one config: evaluation and latency tests."""

    config_id: str
    name: str  # key in evaluation.backends, e.g. "onnx" or "onnx-fp16"
    spec: BackendSpec

    @property
    def id(self) -> str:
        return f"{self.config_id}-{self.spec.label}"


@dataclass(frozen=True)
class SplitCase:
    """--awml-shard I/N: every backend on this job's slice of samples; `awml merge` joins
    the N jobs' shard files (awml_harness/split.py). Not an xdist shard."""

    config_id: str
    index: int  # zero-based
    count: int

    @property
    def id(self) -> str:
        return f"{self.config_id}-split{self.index + 1}of{self.count}"


@dataclass(frozen=True)
class PackageCase:
    """One value of a config's Autoware package: a key of a parameter file, a file's JSON
    schema (`schema`) or an ONNX file's I/O (`io`), against the model config and the
    exported ONNX (suites/test_package.py)."""

    config_id: str
    file: str
    key: str

    @property
    def id(self) -> str:
        return f"{self.config_id}-{self.file}-{self.key}"


@dataclass(frozen=True)
class ChunkCase:
    """A large evaluation in chunks of samples i % of == chunk, every backend in each; the
    controller merges the chunks (evaluation/merge.py). Not a --awml-shard split."""

    config_id: str
    chunk: int
    of: int

    @property
    def id(self) -> str:
        return f"{self.config_id}-chunk{self.chunk + 1}of{self.of}"


_CHUNK = re.compile(r"chunk(\d+)of\d+")


def scope_of(param: str, config_ids: tuple[str, ...]) -> str | None:
    """The config a test id's parameter belongs to (`<config id>-chunkN` for a chunk, a
    unit of work of its own); None when it names no loaded config."""
    for cid in sorted(config_ids, key=len, reverse=True):  # "A-b" before "A"
        if param == cid or param.startswith(cid + "-"):
            chunk = _CHUNK.fullmatch(param[len(cid) + 1:])
            return f"{cid}-chunk{chunk.group(1)}" if chunk else cid
    return None
