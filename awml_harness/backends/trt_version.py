"""Which TensorRT major versions the harness builds and runs engines with. Here, below
`export/`, because the runner checks the installed version too (`backends/tensorrt.py`)
and the engine builder (`export/trt_settings.py`) plans per major version."""

from __future__ import annotations

import re

from awml_harness.backends.base import BackendUnavailable

SUPPORTED_MAJORS = (10, 11)


class UnsupportedTensorRT(BackendUnavailable):
    """The installed TensorRT has a major version this harness does not build for."""


def trt_major(version: str) -> int:
    """'10.13.0.35' -> 10; anything unparsable or unsupported -> UnsupportedTensorRT."""
    m = re.match(r"^\s*(\d+)\.", str(version))
    if not m:
        raise UnsupportedTensorRT(f"cannot read a TensorRT major version from {version!r}")
    return check_major(int(m.group(1)), str(version))


def check_major(major: int, version: str | None = None) -> int:
    if major not in SUPPORTED_MAJORS:
        shown = version or f"{major}.x"
        raise UnsupportedTensorRT(
            f"TensorRT {shown} is not supported: awml-harness builds engines with TensorRT "
            f"{' or '.join(f'{m}.x' for m in SUPPORTED_MAJORS)} (pip install 'tensorrt>=10,<12')")
    return major
