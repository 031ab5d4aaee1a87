"""Predictions travel between xdist processes (and into shard files) as builtins.

numpy arrays become base64 with dtype and shape, tuples are tagged so they come back as
tuples; everything else is already JSON-ready."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

import numpy as np


def encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return {"__nd__": base64.b64encode(np.ascontiguousarray(obj).tobytes()).decode(), "dtype": obj.dtype.str,
                "shape": list(obj.shape)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Mapping):
        return {str(k): encode(v) for k, v in obj.items()}
    if isinstance(obj, tuple):
        return {"__tuple__": [encode(v) for v in obj]}
    if isinstance(obj, list):
        return [encode(v) for v in obj]
    return obj


def decode(obj: Any) -> Any:
    if isinstance(obj, dict):
        if "__nd__" in obj:
            arr = np.frombuffer(base64.b64decode(obj["__nd__"]), dtype=np.dtype(obj["dtype"]))
            return arr.reshape(obj["shape"]).copy()
        if "__tuple__" in obj:
            return tuple(decode(v) for v in obj["__tuple__"])
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj
