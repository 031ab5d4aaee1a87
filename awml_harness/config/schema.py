"""The deploy config, typed. Section names follow the seed spec so its configs load.

Every dataclass is frozen: a config is read once at session start and never mutated.
config/validation.py builds them from mappings with pydantic. Allowed ranges of one value
are `annotated_types` constraints on its annotation (pydantic reports them with every
other mistake); rules across fields live in `validate(key)` methods so their errors carry
the key path.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from annotated_types import Ge, Gt, Interval

from awml_harness.config.errors import ConfigError

NonNegInt = Annotated[int, Ge(0)]
PosInt = Annotated[int, Gt(0)]
NonNegFloat = Annotated[float, Ge(0)]


class Backend(str, enum.Enum):
    """Accepted wherever a backend name is: `Backend.ONNX` and `"onnx"` are the same key."""

    PYTORCH = "pytorch"
    ONNX = "onnx"
    TENSORRT = "tensorrt"

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: object) -> Backend | None:
        """"ONNX" and "onnx" name the same backend."""
        if isinstance(value, str):
            return next((m for m in cls if m.value == value.lower()), None)
        return None


ExportMode = Literal["onnx", "trt", "both", "none"]
# auto_mixed: fp16 with the fewest nodes kept in fp32 that pass verification (export/auto_mixed.py);
# int8: the Q/DQ ONNX (export/int8.py); auto_int8: int8 with the fewest nodes left unquantized that
# pass verification and the metric gate (export/auto_int8.py)
PrecisionPolicy = Literal["auto", "fp16", "fp32_tf32", "strongly_typed", "auto_mixed", "int8", "auto_int8"]
Precision = Literal["fp32", "fp16", "int8"]
PRECISIONS = ("fp32", "fp16", "int8")
_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def check_device(device: str, key: str) -> str:
    if not _DEVICE.match(device):
        raise ConfigError(key, device, "'cpu', 'cuda' or 'cuda:N'")
    return "cuda:0" if device == "cuda" else device


#: default of `limits.max_elements`: 2**28 elements (1 GiB of float32) in one tensor
DEFAULT_MAX_ELEMENTS = 1 << 28
#: default of `limits.max_parameters`: a billion parameters (4 GB of float32)
DEFAULT_MAX_PARAMETERS = 1_000_000_000


@dataclass(frozen=True)
class LimitsConfig:
    """Bounds checked before anything is allocated, so a typo in a shape fails at config
    time (naming the key) instead of asking for tens of GB."""

    max_elements: PosInt = DEFAULT_MAX_ELEMENTS  # per tensor, batch included
    #: the model's parameters as its project estimates them from model_cfg (4 GB of float32)
    max_parameters: PosInt = DEFAULT_MAX_PARAMETERS


def check_elements(shape: Any, key: str, limit: int = DEFAULT_MAX_ELEMENTS) -> None:
    """Refuse a tensor shape with more than `limit` elements; call before allocating it."""
    dims = [int(d) for d in shape]
    count = math.prod(dims)
    if count > limit:
        raise ConfigError(key, dims, f"a shape of at most {limit} elements (limits.max_elements; this one has "
                                     f"{count}); fix the shape or raise limits.max_elements")


@dataclass(frozen=True)
class ExportConfig:
    mode: ExportMode = "onnx"
    work_dir: Path = Path("work_dirs/awml")
    # an existing ONNX file / folder: mode="trt" builds engines from it, mode="none" runs it
    # as is; either way it is verified against PyTorch when a checkpoint is given
    onnx_path: Path | None = None
    # what onnx_path holds; None: the loader decides from the file (Q/DQ nodes: "int8"),
    # and an int8 file runs, verifies and reports as onnx-int8 (config/load.py)
    onnx_precision: Literal["fp32", "int8"] | None = None

    def validate(self, key: str) -> None:
        if self.onnx_path is not None and self.mode not in ("trt", "none"):
            raise ConfigError(f"{key}.onnx_path", str(self.onnx_path), "unset unless export.mode is 'trt' or 'none'")


@dataclass(frozen=True)
class RuntimeIO:
    info_file: Path | None = None  # dataset annotation (info .pkl, COCO JSON, ...): a file
    data_root: Path | None = None
    sample_idx: NonNegInt = 0  # sample whose tensors are traced at export

    def validate(self, key: str) -> None:
        if self.info_file is not None and str(self.info_file) in ("", "."):  # "" reads as Path(".")
            raise ConfigError(f"{key}.info_file", str(self.info_file) if str(self.info_file) != "." else "",
                              "the path of a dataset annotation file (info .pkl, COCO JSON, ...), or None "
                              "when the project needs none; an empty path names no file")


@dataclass(frozen=True)
class IOSpec:
    """A further graph input the seed's `model_io.additional_inputs` declares (-1: any size)."""

    name: str
    shape: tuple[int, ...] | None = None
    dtype: Literal["float32", "float16", "int32", "int64"] = "float32"


@dataclass(frozen=True)
class ModelIO:
    """Optional declaration of the exported I/O; test_export checks the ONNX file against it."""

    input_name: str | None = None
    input_shape: tuple[PosInt, ...] | None = None  # without batch
    input_dtype: Literal["float32", "float16", "int32", "int64"] = "float32"
    output_name: str | None = None
    output_shape: tuple[PosInt, ...] | None = None  # without batch
    batch_size: PosInt | None = 1  # None: dynamic batch
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    # the seed's further I/O declarations: test_export checks each name is a graph's input/output
    additional_inputs: tuple[IOSpec, ...] = ()
    additional_outputs: tuple[str, ...] = ()


@dataclass(frozen=True)
class OnnxConfig:
    opset_version: Annotated[int, Interval(ge=7, le=25)] = 17
    do_constant_folding: bool = True
    simplify: bool = False  # onnxslim when installed
    exporter: Literal["torchscript", "dynamo"] = "torchscript"
    save_file: str = "model.onnx"
    multi_file: bool = False  # informational (seed compatibility): graphs decide the file count
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        if not self.save_file.endswith(".onnx"):
            raise ConfigError(f"{key}.save_file", self.save_file, "a file name ending in .onnx")
        check_file_name(self.save_file, f"{key}.save_file")


def check_file_name(name: str, key: str) -> str:
    """A bare file name, so what it names stays inside the artifact folder: no folder
    part (`/` or `\\`), no `..`, no absolute or drive path."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or ":" in name:
        raise ConfigError(key, name, "a bare file name inside the artifact folder (no '/', '\\', '..', "
                                     "drive or absolute path), e.g. 'model.onnx'")
    return name


@dataclass(frozen=True)
class ProfileShape:
    min_shape: tuple[int, ...]
    opt_shape: tuple[int, ...]
    max_shape: tuple[int, ...]

    def validate(self, key: str) -> None:
        if not len(self.min_shape) == len(self.opt_shape) == len(self.max_shape):
            raise ConfigError(key, [self.min_shape, self.opt_shape, self.max_shape], "min/opt/max shapes of equal rank")
        for lo, mid, hi in zip(self.min_shape, self.opt_shape, self.max_shape, strict=False):
            if not 0 < lo <= mid <= hi:
                raise ConfigError(key, {"min": self.min_shape, "opt": self.opt_shape, "max": self.max_shape},
                                  "0 < min <= opt <= max in every dimension")


@dataclass(frozen=True)
class ModelInputs:
    input_shapes: Mapping[str, ProfileShape] = field(default_factory=dict)


@dataclass(frozen=True)
class CommonBackendConfig:
    precision_policy: PrecisionPolicy = "auto"
    max_workspace_size: PosInt = 1 << 30
    builder_optimization_level: Annotated[int, Interval(ge=0, le=5)] = 3
    # TensorRT runner: replay a captured CUDA graph for static input shapes (less launch cost)
    cuda_graph: bool = False


@dataclass(frozen=True)
class BackendConfig:
    common_config: CommonBackendConfig = field(default_factory=CommonBackendConfig)
    # one entry per optimization profile; keys name an input, or "<graph>.<input>" (graph.profile_input)
    model_inputs: tuple[ModelInputs, ...] = ()


@dataclass(frozen=True)
class Tolerance:
    atol: NonNegFloat = 1e-3
    rtol: NonNegFloat = 1e-3
    #: share (0..1) of an output's elements allowed beyond atol/rtol; for discrete outputs
    #: such as an argmax mask, whose near-tied elements flip between backends
    #: (awml_harness/compare.py). 0: every element must be within tolerance.
    max_mismatch_share: Annotated[float, Interval(ge=0.0, le=1.0)] = 0.0

    def as_tuple(self) -> tuple[float, float, float]:
        """(atol, rtol, max_mismatch_share): what `compare()` takes per output path."""
        return self.atol, self.rtol, self.max_mismatch_share


@dataclass(frozen=True)
class MetricTolerance:
    """How far a backend's task metric may move from the reference's: `atol` in the
    metric's own units plus `rtol` times |reference| (either or both). `one_sided=True`:
    only a change for the worse counts (the metric's direction, declared by its
    evaluator), so an improvement never fails the gate. A plain number in the config is
    `atol` alone, two-sided."""

    atol: NonNegFloat | None = None
    rtol: NonNegFloat | None = None
    one_sided: bool = False

    def validate(self, key: str) -> None:
        if self.atol is None and self.rtol is None:
            raise ConfigError(key, {"atol": None, "rtol": None, "one_sided": self.one_sided},
                              "a number (absolute), or dict(atol=..., rtol=..., one_sided=...) with atol and/or rtol")

    def allowed(self, reference: float) -> float:
        return (self.atol or 0.0) + (self.rtol or 0.0) * abs(reference)

    def describe(self) -> str:
        """As the failure line and the reports state it: `0.02`, `rtol=0.05`, `0.01 + rtol=0.05, one-sided`."""
        parts = []
        if self.atol is not None:
            parts.append(f"{self.atol:g}")
        if self.rtol is not None:
            parts.append(f"rtol={self.rtol:g}")
        return " + ".join(parts) + (", one-sided" if self.one_sided else "")


def as_metric_tolerance(value: float | MetricTolerance) -> MetricTolerance:
    return value if isinstance(value, MetricTolerance) else MetricTolerance(atol=float(value))


@dataclass(frozen=True)
class Scenario:
    ref_backend: Backend
    test_backend: Backend
    ref_device: str = "cpu"
    test_device: str = "cpu"
    ref_precision: Precision = "fp32"
    test_precision: Precision = "fp32"

    def validate(self, key: str) -> None:
        object.__setattr__(self, "ref_device", check_device(self.ref_device, f"{key}.ref_device"))
        object.__setattr__(self, "test_device", check_device(self.test_device, f"{key}.test_device"))

    @property
    def ref(self) -> BackendSpec:
        return BackendSpec(self.ref_backend, self.ref_device, self.ref_precision)

    @property
    def test(self) -> BackendSpec:
        return BackendSpec(self.test_backend, self.test_device, self.test_precision)

    @property
    def label(self) -> str:
        return f"{self.ref.label}-vs-{self.test.label}"


@dataclass(frozen=True)
class BackendSpec:
    """One way to run the graphs: backend, device, precision. Hashable runner key."""

    backend: Backend
    device: str = "cpu"
    precision: Precision = "fp32"

    @property
    def label(self) -> str:
        suffix = "" if self.precision == "fp32" else f"-{self.precision}"
        return f"{self.backend.value}{suffix}:{self.device}"


@dataclass(frozen=True)
class DetectionMatch:
    """Detection-aware verification of postprocessed predictions."""

    enabled: bool = True
    threshold: float | None = None  # IoU (2D) or center distance in m (3D); None: project default
    score_atol: float = 0.05
    box_atol: float | None = None  # None: project default
    # a box up to min_score + score_atol that finds no partner is borderline, not lost or extra
    # (near-tied low-score boxes flicker between backends; matched pairs are still held to the atols)
    min_score: float | None = None


@dataclass(frozen=True)
class VerificationConfig:
    enabled: bool = True
    num_verify_samples: NonNegInt = 3
    # the seed's single number: an absolute bound (atol, rtol 0), as upstream's max|ref - test|
    tolerance: NonNegFloat | None = None
    default: Tolerance = field(default_factory=Tolerance)
    # "pytorch->onnx" or "pytorch:cpu->onnx-fp16:cpu" style keys (backend or label)
    pairs: Mapping[str, Tolerance] = field(default_factory=dict)
    # glob on output path ("heatmap", "*/pillar_features") -> tolerance; beats pairs.
    # Which rule holds an output: awml_harness/verification/tolerance.py (most specific first)
    outputs: Mapping[str, Tolerance] = field(default_factory=dict)
    # per pair and output: {"pytorch->onnx": {"heatmap": dict(atol, rtol)}}; beats everything
    # (what --awml-suggest-tolerances writes)
    pair_outputs: Mapping[str, Mapping[str, Tolerance]] = field(default_factory=dict)
    devices: Mapping[str, str] = field(default_factory=dict)  # seed compatibility, informational
    scenarios: Mapping[ExportMode, tuple[Scenario, ...]] = field(default_factory=dict)
    detection: DetectionMatch = field(default_factory=DetectionMatch)
    # per pair ("pytorch->onnx-int8"; keys as in `pairs`): detection matching of that pair
    # instead of `detection` (an int8 graph moves scores further than fp16)
    # (verification/tolerance.py: detection_for)
    pair_detection: Mapping[str, DetectionMatch] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        for section in ("pairs", "pair_outputs", "pair_detection"):
            for pair in getattr(self, section):
                if "->" not in pair:
                    raise ConfigError(f"{key}.{section}.{pair}", pair, "a key like 'pytorch->onnx'")


@dataclass(frozen=True)
class EvalBackend:
    enabled: bool = True
    device: str = "cpu"
    precision: Precision = "fp32"
    # latency budgets in milliseconds on pytest-benchmark statistics, e.g. {"p95_ms": 20}
    latency_budget: Mapping[str, float] = field(default_factory=dict)
    # overrides evaluation.metric_tolerance for this backend (e.g. looser for fp16)
    metric_tolerance: Mapping[str, NonNegFloat | MetricTolerance] = field(default_factory=dict)
    # max relative increase vs a saved pytest-benchmark baseline (--awml-latency-baseline),
    # any statistic incl. percentiles, e.g. {"p95": 0.10} = at most 10 % slower at p95
    latency_regression: Mapping[str, float] = field(default_factory=dict)
    # latency spread gate, e.g. {"p95_over_p50": 2.0, "outlier_share": 0.05}: test_latency
    # fails when p95/p50 or the share of rounds slower than 2x the median exceeds it
    latency_stability: Mapping[str, float] = field(default_factory=dict)

    def validate(self, key: str) -> None:
        object.__setattr__(self, "device", check_device(self.device, f"{key}.device"))
        for stat, value in self.latency_stability.items():
            if stat not in LATENCY_STABILITY_KEYS:
                raise ConfigError(f"{key}.latency_stability.{stat}", value, f"one of {sorted(LATENCY_STABILITY_KEYS)}")
            if stat == "p95_over_p50" and not value >= 1.0:
                raise ConfigError(f"{key}.latency_stability.{stat}", value, "a ratio >= 1 (p95 is never below p50)")
            if stat == "outlier_share" and not 0.0 <= value <= 1.0:
                raise ConfigError(f"{key}.latency_stability.{stat}", value, "a share between 0 and 1")
        for stat, value in self.latency_budget.items():
            if stat not in LATENCY_BUDGET_KEYS:
                raise ConfigError(f"{key}.latency_budget.{stat}", value, f"one of {sorted(LATENCY_BUDGET_KEYS)}")
            if value <= 0:
                raise ConfigError(f"{key}.latency_budget.{stat}", value, "a positive number of milliseconds")
        for stat, value in self.latency_regression.items():
            if stat not in LATENCY_STATS:
                raise ConfigError(f"{key}.latency_regression.{stat}", value, f"one of {sorted(LATENCY_STATS)}")
            if value < 0:
                raise ConfigError(f"{key}.latency_regression.{stat}", value, "a fraction >= 0 (0.1 = 10 % slower)")


LATENCY_STATS = frozenset({"mean", "median", "min", "max", "p50", "p90", "p95", "p99"})
LATENCY_BUDGET_KEYS = frozenset(f"{s}_ms" for s in LATENCY_STATS)
LATENCY_STABILITY_KEYS = frozenset({"p95_over_p50", "outlier_share"})


@dataclass(frozen=True)
class ProfileConfig:
    """Per-node profiles (awml_harness/profile/): `enabled` generates test_profile per
    backend (`--awml-profile` does for every config); each profiles `rounds` forwards
    after `warmup` (at least 1: the first run includes kernel selection); the terminal
    summary lists the `top` nodes."""

    enabled: bool = False
    rounds: PosInt = 20
    warmup: PosInt = 3
    top: PosInt = 10


@dataclass(frozen=True)
class EvaluationConfig:
    enabled: bool = True
    num_samples: int = -1  # -1: all
    verbose: bool = False
    reference: str = "pytorch"  # key of `backends` whose metrics the others are held to
    # backend name (or name-precision, e.g. "onnx-fp16") -> settings
    backends: Mapping[str, EvalBackend] = field(
        default_factory=lambda: {"pytorch": EvalBackend(), "onnx": EvalBackend()}
    )
    # metric name -> allowed change vs the reference backend: a number (absolute) or
    # dict(atol=, rtol=, one_sided=); "*" applies to every scalar metric that is a quality
    # (evaluation/gate.py: a count such as num_samples is never gated by "*")
    metric_tolerance: Mapping[str, NonNegFloat | MetricTolerance] = field(default_factory=lambda: {"*": 0.02})
    latency: bool = True  # test_latency per backend (independent of `enabled`)
    latency_rounds: PosInt = 20
    latency_warmup: NonNegInt = 3
    profile: ProfileConfig = field(default_factory=ProfileConfig)  # per-node profiles, opt-in
    # CPU threads per backend (PyTorch and ONNX Runtime intra-op; inter-op 1); None: the
    # harness default (awml_harness/threads.py), 0: each library's own default.
    # --awml-threads overrides it.
    threads: NonNegInt | None = None
    # a large evaluation is split into chunks of samples (one test each, a unit of work of
    # its own under pytest-xdist), each of at least chunk_min_samples samples, at most
    # max_chunks; the count does not depend on -n, so test ids do not either. Chunks are
    # cheap: a worker sets the model up once whatever number it runs, and small chunks let
    # xdist hand the next one to whichever worker is free (fixtures.eval_chunks). Not
    # --awml-shard, which splits a run across machines
    chunk_min_samples: PosInt = 50
    max_chunks: PosInt = 16

    def validate(self, key: str) -> None:
        if self.num_samples < -1 or self.num_samples == 0:
            raise ConfigError(f"{key}.num_samples", self.num_samples, "-1 (all) or a positive integer")
        for name in self.backends:
            base, _, prec = name.partition("-")
            if base not in {b.value for b in Backend} or (prec and prec not in PRECISIONS):
                raise ConfigError(f"{key}.backends.{name}", name, f"a backend among {[b.value for b in Backend]} "
                                                                  f"(optionally '-fp16' or '-int8')")
        if self.enabled and self.reference not in self.backends:
            raise ConfigError(f"{key}.reference", self.reference, f"one of the configured backends {sorted(self.backends)}")

    def tolerance_for(self, backend: str) -> dict[str, MetricTolerance]:
        """metric -> tolerance for `backend`. Most specific first: the backend's entry for
        the metric, the global entry for the metric, the backend's "*", the global "*"."""
        own = self.backends[backend].metric_tolerance if backend in self.backends else {}
        return {k: as_metric_tolerance(v) for k, v in {**self.metric_tolerance, **own}.items()}

    def specs(self) -> dict[str, BackendSpec]:
        out = {}
        for name, be in self.backends.items():
            if not be.enabled:
                continue
            base, _, prec = name.partition("-")
            out[name] = BackendSpec(Backend(base), be.device, (prec or be.precision))  # type: ignore[arg-type]
        return out


QuantMethod = Literal["minmax", "max", "entropy", "percentile", "mse"]


@dataclass(frozen=True)
class QuantizationConfig:
    """int8 as a Q/DQ ONNX (backend `onnx-int8`, precision policies "int8" / "auto_int8";
    export/int8.py, docs/int8.md): where the calibration samples come from, how ranges are
    calibrated and what stays unquantized. Calibration runs each graph on the inputs it
    sees in the project's pipeline (the fp32 ONNX graphs in ONNX Runtime)."""

    quantizer: Literal["onnxruntime", "modelopt"] = "onnxruntime"
    #: minmax (= max with symmetric activations), entropy, percentile, mse (onnxruntime);
    #: max, entropy (modelopt)
    method: QuantMethod = "minmax"
    percentile: Annotated[float, Interval(gt=50.0, le=100.0)] = 99.999
    bins: Annotated[int, Interval(ge=128, le=1 << 16)] = 2048  # histogram bins: entropy, percentile, mse
    num_samples: PosInt = 32
    seed: NonNegInt = 0  # which samples, when more are available than asked for
    #: calibrate on another split (an info file of the same format as runtime_io.info_file);
    #: None: the evaluated dataset, samples outside the evaluated ones first
    info_file: Path | None = None
    data_root: Path | None = None  # of info_file; None: runtime_io.data_root
    #: "zeros": every graph input replaced by zeros (a diagnostic: a blank calibration must fail the gate)
    inputs: Literal["dataset", "zeros"] = "dataset"
    graphs: tuple[str, ...] | None = None  # graphs to quantize (None: all); the others stay float
    op_types: tuple[str, ...] = ()  # () = the TensorRT-guided default (export/int8.py TRT_OP_TYPES)
    exclude_nodes: tuple[str, ...] = ()  # regexes, searched in node names: those nodes stay float
    exclude_op_types: tuple[str, ...] = ()
    #: a TensorRT calibration cache (text) whose scales replace the calibrated ones where it names a tensor
    calibration_cache: Path | None = None
    #: auto_int8: the metric gate on the search samples is part of the criterion (else verification only)
    search_metric: bool = True

    def validate(self, key: str) -> None:
        for i, pattern in enumerate(self.exclude_nodes):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ConfigError(f"{key}.exclude_nodes[{i}]", pattern, f"a regular expression ({exc})") from None
        if self.quantizer == "modelopt" and self.method not in ("minmax", "max", "entropy"):
            raise ConfigError(f"{key}.method", self.method, "'max' or 'entropy' with quantizer='modelopt' (its ONNX "
                                                            "PTQ has no percentile or MSE calibration); or quantizer='onnxruntime'")


#: what a task type name looks like; which names exist is up to the projects
TASK_TYPE_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


#: a tracking URI names its scheme: sqlite:///..., http(s)://..., postgresql://..., databricks
TRACKING_URI_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S*")
TRACKING_URI_EXPECTED = ("a tracking URI with its scheme, e.g. sqlite:///work_dirs/mlflow.db, http://127.0.0.1:5000 "
                         "or databricks")


def check_tracking_uri(key: str, uri: str) -> None:
    """One rule for report.mlflow.tracking_uri, --awml-mlflow URI and `awml merge --mlflow URI`."""
    if not TRACKING_URI_RE.fullmatch(uri) and uri != "databricks":
        raise ConfigError(key, uri, TRACKING_URI_EXPECTED)


def absolute_sqlite(uri: str, base: Path) -> str:
    """`sqlite:///rel/mlflow.db` names a file relative to the process's cwd (SQLAlchemy's
    rule); the harness resolves it against `base` (the rootdir, or where the command was
    invoked) like its other paths. Absolute (`sqlite:////abs`) and other URIs are kept."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix) or uri.startswith(prefix + "/") or uri == prefix:
        return uri
    path, sep, query = uri[len(prefix):].partition("?")
    return prefix + str(Path(base) / path) + sep + query


@dataclass(frozen=True)
class MlflowConfig:
    """report.mlflow: log the run to MLflow (awml_harness/report/mlflow.py). Present and
    enabled = on, like --awml-mlflow; the option's URI wins over tracking_uri."""

    enabled: bool = True
    # None: $MLFLOW_TRACKING_URI, else sqlite:///<export.work_dir of the first config>/mlflow.db;
    # a relative sqlite path resolves against the rootdir like every config path
    tracking_uri: str | None = None
    experiment: str = "awml"
    # the deployed ONNX files and engines as artifacts of each project's run (sha256-checked);
    # `awml publish` uploads them itself when the run did not
    log_models: bool = False
    # where a new experiment keeps its artifacts; None: beside a sqlite DB (mlartifacts/), the
    # server's own for http(s)/databricks, else <work_dir>/mlartifacts (never the cwd)
    artifact_location: str | None = None

    def validate(self, key: str) -> None:
        if self.tracking_uri is not None:
            check_tracking_uri(f"{key}.tracking_uri", self.tracking_uri)
        if not self.experiment.strip() or len(self.experiment) > 500:
            raise ConfigError(f"{key}.experiment", self.experiment, "a non-empty experiment name of at most 500 characters")
        if self.artifact_location is not None and not TRACKING_URI_RE.fullmatch(self.artifact_location) \
                and not self.artifact_location.startswith("/"):
            raise ConfigError(f"{key}.artifact_location", self.artifact_location,
                              "an absolute path or a URI (file:///..., s3://..., mlflow-artifacts:/...)")


@dataclass(frozen=True)
class ReportConfig:
    metrics_json: Path | None = None  # default: <work_dir>/metrics.json
    markdown: Path | None = None  # PR-comment summary; --awml-markdown overrides; default: none
    mlflow: MlflowConfig | None = None  # MLflow tracking; --awml-mlflow turns it on too


@dataclass(frozen=True)
class PackageConfig:
    """The Autoware package: the parameter files the model's ROS node reads, written with
    the ONNX files (export target `autoware`, where the project has one) and checked by
    test_package against the model config and the exported ONNX."""

    enabled: bool = True
    #: an existing package folder (a release, a user's package) test_package checks instead
    #: of the one the harness writes; --awml-package DIR sets it for every config
    check_dir: Path | None = None
    #: values written over the derived ones, per file and dotted key: the node's choices the
    #: model does not decide, e.g. {"ml_package.param.yaml": {"trt_precision": "fp32"}}
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeployConfig:
    """A whole deploy config. `model_settings` is the project's typed `model_cfg`."""

    project: str
    #: the project's own name for its task (any name it chooses): the
    #: core keeps no list of task types; the loader checks it equals the project's
    #: declared `ProjectAdapter.task_type` (`config/load.py`)
    task_type: str
    checkpoint_path: Path | None = None
    model_cfg: Any = None  # project-specific mapping (validated by the project's settings_cls)
    export: ExportConfig = field(default_factory=ExportConfig)
    runtime_io: RuntimeIO = field(default_factory=RuntimeIO)
    model_io: ModelIO = field(default_factory=ModelIO)
    onnx_config: OnnxConfig = field(default_factory=OnnxConfig)
    backend_config: BackendConfig = field(default_factory=BackendConfig)
    verification: VerificationConfig = field(default_factory=VerificationConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    report: ReportConfig = field(default_factory=ReportConfig)
    package: PackageConfig = field(default_factory=PackageConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    quantization: QuantizationConfig = field(default_factory=QuantizationConfig)
    devices: Mapping[str, str] = field(default_factory=dict)  # seed compatibility
    # checkpoints / info files that need full unpickling run code from the file: opt-in only
    unsafe_load: bool = False
    # filled by the loader, not by the user
    source: str = ""
    project_dir: str = ""  # the project's folder (or `pkg.module:Class`) the loader resolved
    name: str = ""
    model_settings: Any = None
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    def validate(self, key: str) -> None:
        """A task type is a name; shapes the config declares are bounded by `limits.max_elements`."""
        limit = self.limits.max_elements
        prefix = f"{key}." if key else ""
        if not TASK_TYPE_RE.fullmatch(self.task_type):
            raise ConfigError(f"{prefix}task_type", self.task_type,
                              "a task type name: letters, digits, '_' or '-', starting with a letter "
                              "(the one the project declares)")
        batch = self.model_io.batch_size or 1
        for name in ("input_shape", "output_shape"):
            shape = getattr(self.model_io, name)
            if shape is not None:
                check_elements((batch, *shape), f"{prefix}model_io.{name}", limit)
        for i, entry in enumerate(self.backend_config.model_inputs):
            for input_name, prof in entry.input_shapes.items():
                for which in ("min_shape", "opt_shape", "max_shape"):
                    check_elements(getattr(prof, which), f"{prefix}backend_config.model_inputs[{i}]"
                                                         f".input_shapes.{input_name}.{which}", limit)

    @property
    def id(self) -> str:
        """What test ids start with: the config name (project name unless overridden)."""
        return self.name or self.project

    def scenarios(self) -> tuple[Scenario, ...]:
        """The export mode's configured scenarios, plus `implicit_onnx_scenario()` if any."""
        if not self.verification.enabled:
            return ()
        configured = tuple(self.verification.scenarios.get(self.export.mode, ()))
        implicit = self.implicit_onnx_scenario(configured)
        return configured if implicit is None else (*configured, implicit)

    def implicit_onnx_scenario(self, configured: tuple[Scenario, ...]) -> Scenario | None:
        """pytorch:cpu vs onnx:cpu (onnx-int8:cpu for a Q/DQ graph) for modes whose deployed ONNX no configured scenario holds
        to PyTorch: mode "trt" (the ONNX the engines are built from) and an ONNX handed in
        as export.onnx_path ("trt" or "none"). A handed ONNX needs the checkpoint it came
        from: without one, PyTorch has random weights and nothing can be compared."""
        mode, handed = self.export.mode, self.export.onnx_path is not None
        if mode not in ("trt", "none") or (mode == "none" and not handed):
            return None
        if handed and self.checkpoint_path is None:
            return None
        precision = self.handed_precision or "fp32"
        if any(s.ref_backend is Backend.PYTORCH and s.test_backend is Backend.ONNX and s.test_precision == precision
               for s in configured):
            return None
        return Scenario(Backend.PYTORCH, Backend.ONNX, test_precision=precision)  # type: ignore[arg-type]

    @property
    def handed_precision(self) -> str | None:
        """The precision of a handed-over export.onnx_path ("int8" for a Q/DQ graph), else None."""
        return (self.export.onnx_precision or "fp32") if self.export.onnx_path is not None else None

    def needs_onnx(self) -> bool:
        return self.export.mode in ("onnx", "both", "trt")
