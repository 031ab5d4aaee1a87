"""ONNX -> TensorRT engine (completed in the TensorRT issue)."""

from __future__ import annotations

from typing import Any

from awml_harness.backends.base import BackendUnavailable


def build_engines(ctx: Any, spec: Any) -> dict[str, Any]:
    raise BackendUnavailable("TensorRT engine building not implemented yet")
