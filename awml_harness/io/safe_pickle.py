"""Dataset info `.pkl` files without arbitrary code execution or memory bombs.

mmdet3d-style info files are pickles, and unpickling calls whatever importable
callable the file names, with arguments the file chooses. This loader resolves an
exact list of names: the few builtins a pickle needs a call for (protocol 2-4 sets,
frozensets, bytearrays and bytes; complex numbers) and what numpy needs to rebuild arrays,
scalars and dtypes, under numpy 1.x names (`numpy.core.*`, which info files written
before numpy 2 hold) and numpy 2 names (`numpy._core.*`). Every one of them is a
guarded wrapper that accepts only what a genuine pickle passes, so no name on the list
can build an object larger than the file (no `range`, no `bytearray(10**12)`, no
`numpy.ndarray((10**10,), object)`) or reach attributes (`getattr`). Object arrays
and object dtypes are refused: their pickled form can allocate without bound before
numpy checks it. Anything else is refused with the name of the opt-in
(`unsafe_load=True` in the deploy config, or `--awml-unsafe-load`).
"""

from __future__ import annotations

import io
import math
import pickle
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

_OPT_IN = "if you trust this file, set unsafe_load=True in the deploy config (or pass --awml-unsafe-load)"


class UnsafePickleError(pickle.UnpicklingError):
    pass


def _refuse(what: str) -> UnsafePickleError:
    return UnsafePickleError(f"refusing to unpickle {what}: info files may hold builtin containers and "
                             f"numpy arrays of numbers/strings only; {_OPT_IN}")


def _core() -> Any:
    try:
        from numpy._core import multiarray, numeric  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    return multiarray, numeric


def _plain_dtype(dtype: Any, where: str) -> np.dtype:
    if not isinstance(dtype, np.dtype):
        raise _refuse(f"{where} with dtype {type(dtype).__name__}")
    if dtype.hasobject:
        raise _refuse(f"{where} of Python objects (dtype {dtype})")
    return dtype


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    if not isinstance(shape, tuple) or not all(type(n) is int and n >= 0 for n in shape):
        raise _refuse(f"{where} with shape {shape!r}")
    return shape


class _PickledArray(np.ndarray):
    """What `_reconstruct` hands the unpickler: an empty array whose `__setstate__`
    (pickle's BUILD) checks dtype and data size before numpy allocates anything.
    Replaced by plain ndarray views once loading is done."""

    __slots__ = ()

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise _refuse("an ndarray with a malformed state")
        shape, dtype, _fortran, data = state[-4:]
        dtype = _plain_dtype(dtype, "an ndarray")
        shape = _shape(shape, "an ndarray")
        if not isinstance(data, (bytes, bytearray)) or len(data) != math.prod(shape) * dtype.itemsize:
            size = len(data) if isinstance(data, (bytes, bytearray)) else type(data).__name__
            raise _refuse(f"an ndarray of shape {shape} {dtype} with {size} bytes of data")
        super().__setstate__(state)


class _NdarrayType:
    """Stands for `numpy.ndarray` in a pickle: only `_reconstruct` accepts it, and it
    cannot be called (the real class would allocate any shape the file names)."""


_NDARRAY = _NdarrayType()


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> np.ndarray:
    # numpy pickles an array as _reconstruct(ndarray, (0,), b"b") followed by BUILD
    if subtype is not _NDARRAY or _shape(shape, "_reconstruct") != (0,) or not isinstance(dtype, (bytes, str)):
        raise _refuse(f"numpy _reconstruct({subtype!r}, {shape!r}, {dtype!r}) (numpy writes ndarray, (0,), b'b')")
    return _PickledArray((0,), np.uint8)


def _scalar(dtype: Any, data: Any = None) -> Any:
    dtype = _plain_dtype(dtype, "a numpy scalar")
    if not isinstance(data, bytes) or len(data) != dtype.itemsize:
        raise _refuse(f"a numpy {dtype} scalar from {type(data).__name__}")
    return _core()[0].scalar(dtype, data)


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> np.ndarray:
    # protocol 5: the data is a buffer in the file, so the array is no larger than the file
    dtype = _plain_dtype(dtype, "an ndarray")
    if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)) or order not in ("C", "F"):
        raise _refuse(f"numpy _frombuffer from {type(buf).__name__}")
    return _core()[1]._frombuffer(buf, dtype, _shape(shape, "an ndarray"), order)


def _dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    if not isinstance(spec, str) or not isinstance(align, bool) or not isinstance(copy, bool):
        raise _refuse(f"numpy dtype({spec!r}, {align!r}, {copy!r})")
    return _plain_dtype(np.dtype(spec, align, copy), "a dtype")


def _from_list(kind: type) -> Callable[..., Any]:
    def build(items: Any = ()) -> Any:
        if type(items) not in (list, tuple):  # materialized in the file, so bounded by its size
            raise _refuse(f"{kind.__name__}() of {type(items).__name__}")
        return kind(items)

    return build


def _bytearray(data: Any = b"") -> bytearray:
    if type(data) is not bytes:  # bytearray(10**12) would allocate a terabyte
        raise _refuse(f"bytearray() of {type(data).__name__}")
    return bytearray(data)


def _complex(real: Any = 0.0, imag: Any = 0.0) -> complex:
    if type(real) not in (int, float) or type(imag) not in (int, float):
        raise _refuse("complex() of non-numbers")
    return complex(real, imag)


def _encode(text: Any, encoding: Any = "utf-8") -> bytes:
    # protocol 2 (what mmcv/mmengine wrote for years) stores bytes as _codecs.encode(str, "latin1")
    if type(text) is not str or encoding not in ("latin1", "latin-1"):
        raise _refuse(f"_codecs.encode of {type(text).__name__} as {encoding!r}")
    return text.encode("latin1")


def _bytes(*args: Any) -> bytes:
    if args:  # protocol 2 writes b"" as bytes(); bytes(10**12) would allocate a terabyte
        raise _refuse("bytes() with arguments")
    return b""


def _ordered_dict(items: Any = ()) -> OrderedDict:
    if items != ():  # pickle builds it empty, then fills it with SETITEMS
        raise _refuse("OrderedDict() with arguments")
    return OrderedDict()


_ALLOWED: dict[tuple[str, str], Any] = {
    ("builtins", "set"): _from_list(set),
    ("builtins", "frozenset"): _from_list(frozenset),
    ("builtins", "bytearray"): _bytearray,
    ("builtins", "bytes"): _bytes,
    ("builtins", "complex"): _complex,
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): _ordered_dict,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _dtype,
}
for _core_name in ("numpy.core", "numpy._core"):  # numpy 1.x names, numpy 2 names
    _ALLOWED[(f"{_core_name}.multiarray", "_reconstruct")] = _reconstruct
    _ALLOWED[(f"{_core_name}.multiarray", "scalar")] = _scalar
    _ALLOWED[(f"{_core_name}.numeric", "_frombuffer")] = _frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module == "__builtin__":  # protocol 2 spells builtins the Python 2 way
            module = "builtins"
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise _refuse(f"{module}.{name}") from None


def _plain(obj: Any, seen: dict[int, Any]) -> Any:
    """Replace the loader's checked arrays by plain ndarrays, in place where possible
    (shared and cyclic containers stay shared and cyclic)."""
    key = id(obj)
    if key in seen:
        return seen[key]
    if isinstance(obj, _PickledArray):
        seen[key] = obj.view(np.ndarray)
    elif type(obj) is list:
        seen[key] = obj
        obj[:] = [_plain(v, seen) for v in obj]
    elif isinstance(obj, dict):
        seen[key] = obj
        for k, v in obj.items():
            obj[k] = _plain(v, seen)
    elif type(obj) is tuple:
        items = tuple(_plain(v, seen) for v in obj)
        seen[key] = obj if all(a is b for a, b in zip(items, obj, strict=True)) else items
    else:
        seen[key] = obj
    return seen[key]


def loads(data: bytes, *, allow_unsafe: bool = False) -> Any:
    if allow_unsafe:
        return pickle.loads(data)  # noqa: S301 - explicit opt-in
    return _plain(RestrictedUnpickler(io.BytesIO(data)).load(), {})


def load_pickle(path: Path | str, *, allow_unsafe: bool = False) -> Any:
    return loads(Path(path).read_bytes(), allow_unsafe=allow_unsafe)
