"""The restricted unpickler (awml_harness/io/safe_pickle.py): what an info file may hold
loads, numpy 1.x pickles load under numpy 2, everything else is refused naming the opt-in."""

from __future__ import annotations

import collections
import pickle

import numpy as np
import pytest

from awml_harness.io.safe_pickle import UnsafePickleError, load_pickle, loads


def _global(module: str, name: str) -> bytes:
    """A protocol-0 pickle that only looks up `module.name` (what an attacker writes by hand)."""
    return f"c{module}\n{name}\n.".encode()


INFO = {
    "metainfo": collections.OrderedDict(version="1.1", classes=("car", "pedestrian")),
    "data_list": [{"sample_idx": 3, "token": "ab", "raw": b"\x00\x01", "ok": True, "score": 0.5, "z": 1 + 2j,
                   "none": None, "gt_bboxes_3d": np.arange(14, dtype=np.float32).reshape(2, 7),
                   "labels": np.array([0, 1], np.int64), "timestamp": np.float64(1.5),
                   "table": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", "<f8")]), "dt": np.dtype(">u2")}],
}


def _assert_same_info(got):
    assert got["metainfo"] == INFO["metainfo"] and isinstance(got["metainfo"], collections.OrderedDict)
    a, b = got["data_list"][0], INFO["data_list"][0]
    assert set(a) == set(b)
    for k, v in b.items():
        if isinstance(v, np.ndarray):
            assert a[k].dtype == v.dtype
            np.testing.assert_array_equal(a[k], v)
        else:
            assert a[k] == v and type(a[k]) is type(v)


@pytest.mark.parametrize("protocol", [3, 4, 5])
def test_info_file_contents_load_under_every_protocol(tmp_path, protocol):
    path = tmp_path / "infos.pkl"
    path.write_bytes(pickle.dumps(INFO, protocol=protocol))
    _assert_same_info(load_pickle(path))
    _assert_same_info(load_pickle(str(path)))


def test_numpy_1_pickles_load_under_numpy_2():
    # numpy 1.x wrote its reconstructors under numpy.core; numpy 2 moved them to numpy._core
    data = pickle.dumps({"a": np.arange(6.0).reshape(2, 3), "s": np.float32(2.5)}, protocol=3)
    if b"numpy._core." in data:
        data = data.replace(b"numpy._core.", b"numpy.core.")
    assert b"cnumpy.core.multiarray\n" in data
    got = loads(data)
    np.testing.assert_array_equal(got["a"], np.arange(6.0).reshape(2, 3))
    assert got["s"] == np.float32(2.5) and got["s"].dtype == np.float32


def test_numpy_dtype_classes_are_refused():
    # ordinary numpy pickles reduce dtypes through numpy.dtype itself; a bare DType class is
    # never needed by an info file, so the restricted loader does not hand it out
    with pytest.raises(UnsafePickleError, match="numpy.dtypes.Float64DType"):
        loads(pickle.dumps(type(np.dtype("f8"))))


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("os", "system"),
        ("builtins", "eval"),
        ("builtins", "getattr"),
        ("subprocess", "Popen"),
        ("numpy", "load"),  # numpy, but not a dtype class
        ("numpy.core.multiarray", "fromfile"),  # the numpy 1.x module, but not an allowed name
        ("numpy.testing", "assert_equal"),
        ("os", "NotADType"),  # the DType suffix only counts inside numpy
        ("numpy.dtypesx", "Float64DType"),
    ],
)
def test_everything_else_is_refused_naming_the_culprit_and_the_opt_in(module, name):
    with pytest.raises(UnsafePickleError) as info:
        loads(_global(module, name))
    msg = str(info.value)
    assert msg.startswith(f"refusing to unpickle {module}.{name}: ")
    assert "builtin containers and numpy arrays of numbers/strings only" in msg
    assert "unsafe_load=True in the deploy config (or pass --awml-unsafe-load)" in msg
    assert isinstance(info.value, pickle.UnpicklingError)  # callers catching the pickle error still work


def test_opting_in_loads_anything(tmp_path):
    path = tmp_path / "trusted.pkl"
    path.write_bytes(pickle.dumps({"when": collections.Counter("aab"), "f": len}))
    with pytest.raises(UnsafePickleError, match="collections.Counter"):
        load_pickle(path)
    got = load_pickle(path, allow_unsafe=True)
    assert got["when"] == collections.Counter("aab") and got["f"] is len
    assert loads(_global("os", "getcwd"), allow_unsafe=True).__name__ == "getcwd"


def test_refusal_message_ends_with_the_opt_in():
    with pytest.raises(UnsafePickleError) as info:
        loads(_global("numpy", "issubdtype"))  # a numpy function whose name ends in "dtype"
    assert str(info.value).endswith("set unsafe_load=True in the deploy config (or pass --awml-unsafe-load)")
