"""TensorRT runner (completed in the TensorRT issue)."""

from __future__ import annotations

from awml_harness.backends.base import BackendUnavailable


def require_tensorrt(device: str) -> None:
    try:
        import tensorrt  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        raise BackendUnavailable("tensorrt is not installed (pip install awml-harness[tensorrt] on a CUDA machine)") from None
    raise BackendUnavailable("TensorRT runner not implemented yet")


class TensorRTRunner:  # pragma: no cover - placeholder until the TensorRT issue
    def __init__(self, path, device):
        raise BackendUnavailable("TensorRT runner not implemented yet")
