"""Typed test parameters. The suites are parametrized with these, so a test id reads
like `MyDetector-pytorch:cpu-vs-onnx:cpu-s0` and `-k mydetector` selects a project."""

from __future__ import annotations

from dataclasses import dataclass

from awml_harness.config.schema import BackendSpec, Scenario


@dataclass(frozen=True)
class ExportCase:
    config_id: str
    graph: str
    target: str  # "onnx" | "onnx-fp16" | "tensorrt"

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
class EvalShardCase:
    """Under pytest-xdist: every backend on samples i % of == shard; merged on the controller."""

    config_id: str
    shard: int
    of: int

    @property
    def id(self) -> str:
        return f"{self.config_id}-shard{self.shard + 1}of{self.of}"
