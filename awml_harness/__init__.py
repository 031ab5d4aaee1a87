"""awml-harness: export, verify, evaluate and time deployed perception models in pytest.

Importing this package is cheap; torch, onnxruntime and tensorrt load only when a
test needs them.
"""

from __future__ import annotations

__version__ = "0.1.0"
