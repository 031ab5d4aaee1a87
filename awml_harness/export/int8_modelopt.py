"""The optional second quantizer: NVIDIA ModelOpt's ONNX PTQ (`quantizer="modelopt"`).

`modelopt.onnx.quantization.quantize(quantize_mode="int8")` writes the same TensorRT
form as export/int8.py (it drives ONNX Runtime's quantize_static with symmetric int8,
per-channel weights, no output Q/DQ), adds its own Conv heuristics (small-channel
convolutions stay float) and reads TensorRT calibration caches natively. It calibrates
and places in one call, with max or entropy calibration only.

Install it without its `[onnx]` extra: that extra pins onnxruntime-gpu (installed beside
a CPU onnxruntime, both write the `onnxruntime/` package) and an older onnx. What the
int8 path imports on a CPU machine: `pip install nvidia-modelopt lief onnxscript
onnx-graphsurgeon` (the harness's `[modelopt]` extra). Imported lazily, only here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable
from awml_harness.export.int8 import QMAX, Placement, QuantizationError, qdq_count, quantized_nodes, scales_of


def _module() -> Any:
    try:
        from modelopt.onnx.quantization import quantize  # type: ignore[import-not-found]
    except ImportError as exc:
        raise BackendUnavailable("quantization.quantizer='modelopt' needs NVIDIA ModelOpt without its [onnx] extra: "
                                 "pip install nvidia-modelopt lief onnxscript onnx-graphsurgeon "
                                 f"(import failed: {exc})") from None
    return quantize


def quantize_modelopt(prepared: Path, dst: Path, feeds: Sequence[Mapping[str, np.ndarray]], *, method: str,
                      exclude: Iterable[str] = (), op_types: Sequence[str] = (),
                      calibration_cache: Path | None = None) -> tuple[Placement, dict[str, tuple[float, float]]]:
    """Calibrate and place with ModelOpt on CPU (fp32 for what stays float, so ONNX Runtime
    runs it); returns the placement and the ranges read back from its Q scales."""
    import onnx

    from awml_harness.export.int8 import _reader

    quantize = _module()
    excluded = tuple(sorted(set(exclude)))
    start = time.perf_counter()
    try:
        quantize(str(prepared), quantize_mode="int8", calibration_data_reader=_reader(feeds),
                 calibration_method="entropy" if method == "entropy" else "max", calibration_eps=["cpu"],
                 op_types_to_quantize=list(op_types) or None,
                 nodes_to_exclude=[re.escape(n) + "$" for n in excluded] or None, high_precision_dtype="fp32",
                 calibration_cache_path=str(calibration_cache) if calibration_cache else None,
                 output_path=str(dst), log_level="WARNING")
    except BackendUnavailable:
        raise
    except Exception as exc:
        raise QuantizationError(f"int8 quantization (modelopt) of {prepared.name} failed: "
                                f"{type(exc).__name__}: {str(exc)[:600]}") from None
    seconds = time.perf_counter() - start
    model = onnx.load(str(dst))
    ranges = {name: (-QMAX * s, QMAX * s) for name, s in scales_of(model).items()}
    return Placement(dst.name, qdq_count(model), tuple(quantized_nodes(model)), excluded, seconds), ranges


def modelopt_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("nvidia-modelopt")
    except metadata.PackageNotFoundError:
        return None
