"""Dataset info `.pkl` files without arbitrary code execution.

mmdet3d-style info files are pickles, and unpickling can call any importable
function. This loader resolves only builtin containers/scalars and what numpy needs
to rebuild arrays and dtypes; anything else is refused with the name of the opt-in
(`unsafe_load=True` in the deploy config, or `--awml-unsafe-load`).
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

import numpy as np

_NUMPY_CORE = "numpy._core" if int(np.__version__.split(".")[0]) >= 2 else "numpy.core"

_ALLOWED = {
    ("builtins", n) for n in ("dict", "list", "tuple", "set", "frozenset", "str", "bytes", "bytearray", "int",
                              "float", "complex", "bool", "slice", "range")
} | {
    ("collections", "OrderedDict"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
}


class UnsafePickleError(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ALLOWED or (module == "numpy" and name.endswith("DType")) or module == "numpy.dtypes":
            if module.startswith("numpy.core."):
                # pickles written under numpy 1.x name numpy.core; numpy 2 moved it to numpy._core
                module = _NUMPY_CORE + module[len("numpy.core"):]
            return super().find_class(module, name)
        raise UnsafePickleError(
            f"refusing to unpickle {module}.{name}: info files may hold builtin containers and numpy arrays only; "
            "if you trust this file, set unsafe_load=True in the deploy config (or pass --awml-unsafe-load)")


def loads(data: bytes, *, allow_unsafe: bool = False) -> Any:
    if allow_unsafe:
        return pickle.loads(data)  # noqa: S301 - explicit opt-in
    return RestrictedUnpickler(io.BytesIO(data)).load()


def load_pickle(path: Path | str, *, allow_unsafe: bool = False) -> Any:
    return loads(Path(path).read_bytes(), allow_unsafe=allow_unsafe)
