"""The restricted unpickler for info files (issue 12, item 14): an exact allow-list whose
names cannot build objects larger than the file or reach attributes, and that still
reads what numpy 1.x wrote (mmcv/mmengine info files: protocol 2, `numpy.core.*`)."""

from __future__ import annotations

import builtins
import operator
import pickle
from collections import OrderedDict

import numpy as np
import pytest

from awml_harness.io.safe_pickle import UnsafePickleError, loads

try:
    from numpy._core import multiarray, numeric
except ImportError:  # pragma: no cover - numpy 1.x
    from numpy.core import multiarray, numeric  # type: ignore[no-redef]

INFO = {
    "metainfo": OrderedDict(classes=["car", "pedestrian"], version="v1"),
    "data_list": [
        {"token": "t0", "lidar_points": {"lidar_path": "a.bin", "num_pts_feats": 5},
         "lidar2ego": np.eye(4), "timestamp": np.float64(1.5e9), "num_lidar_pts": np.int64(12),
         "gt_names": np.array(["car", "bicycle"]), "valid": np.array([True, False]),
         "fortran": np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3)),
         "fields": np.zeros(2, dtype=[("a", "<f4"), ("b", "<i8")]), "empty": np.zeros((0, 7), np.float32),
         "tags": {"day", "rain"}, "frozen": frozenset({1}), "raw": b"\x00\xff", "buf": bytearray(b"ab"),
         "nothing": b"", "z": complex(1.0, -2.0), "shared": None},
    ],
}
INFO["data_list"][0]["shared"] = INFO["data_list"][0]["lidar2ego"]


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray):
        return type(b) is np.ndarray and a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
    if isinstance(a, dict):
        return type(a) is type(b) and list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@pytest.fixture
def numpy_1x_names(monkeypatch):
    """Pickle as numpy 1.x did: its array/scalar rebuilders lived in `numpy.core`."""
    monkeypatch.setattr(multiarray._reconstruct, "__module__", "numpy.core.multiarray")
    monkeypatch.setattr(multiarray.scalar, "__module__", "numpy.core.multiarray")
    monkeypatch.setattr(numeric._frombuffer, "__module__", "numpy.core.numeric")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_1x_info_files_load_exactly(numpy_1x_names, protocol):
    data = pickle.dumps(INFO, protocol=protocol)
    assert b"numpy.core.multiarray" in data and b"numpy._core" not in data
    loaded = loads(data)
    assert _same(INFO, loaded)
    entry = loaded["data_list"][0]
    assert entry["fortran"].flags.f_contiguous
    assert type(entry["timestamp"]) is np.float64 and type(entry["num_lidar_pts"]) is np.int64


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_2_info_files_load_exactly(protocol):
    assert _same(INFO, loads(pickle.dumps(INFO, protocol=protocol)))


class Call:
    """Pickles as `func(*args)` (plus BUILD with `state`), without ever calling it here."""

    def __init__(self, func, args, state=None) -> None:
        self.func, self.args, self.state = func, args, state

    def __reduce__(self):
        return (self.func, self.args) if self.state is None else (self.func, self.args, self.state)


class VoidDtypeClaimingObjects:
    """A 'V8' dtype whose pickled flags claim Python objects (numpy trusts those flags)."""

    def __reduce__(self):
        return np.dtype, ("V8", False, True), (3, "|", None, None, None, 8, 1, 63)


HOSTILE = {
    "range": Call(range, (10**13,)),
    "set-of-range": Call(set, (Call(range, (10**13,)),)),
    "frozenset-of-range": Call(frozenset, (Call(range, (10**13,)),)),
    "bytearray-of-size": Call(bytearray, (10**13,)),
    "bytes-of-size": Call(bytes, (10**13,)),
    "getattr": Call(getattr, ("text", "join")),
    "attrgetter": Call(operator.attrgetter, ("system",)),
    "eval": Call(builtins.eval, ("1+1",)),
    "slice": Call(slice, (1, 2)),
    "ndarray-called": Call(np.ndarray, ((10**13,), np.dtype("O"))),
    "reconstruct-huge": Call(multiarray._reconstruct, (np.ndarray, (10**13,), b"b")),
    "object-array": np.array([1, None], dtype=object),
    "object-array-state": Call(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                               (1, (10**13,), np.dtype("O"), False, [])),
    "flags-claim-objects": Call(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                (1, (10**13,), VoidDtypeClaimingObjects(), False, [])),
    "state-larger-than-data": Call(multiarray._reconstruct, (np.ndarray, (0,), b"b"),
                                   (1, (10**13,), np.dtype("f8"), False, b"ab")),
    "dtype-object": np.dtype("O"),
    "scalar-object": Call(multiarray.scalar, (np.dtype("O"), [1])),
    "complex-from-text": Call(complex, ("1" * 100,)),
}


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_pickles_are_refused_before_anything_is_built(name, protocol):
    data = pickle.dumps({"data_list": [HOSTILE[name]]}, protocol=protocol)
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle .*set unsafe_load=True in the deploy config "
                                                r"\(or pass --awml-unsafe-load\)"):
        loads(data)


def test_the_opt_in_loads_what_the_restricted_loader_refuses():
    data = pickle.dumps({"rows": np.array([1, None], dtype=object)})
    with pytest.raises(UnsafePickleError):
        loads(data)
    assert loads(data, allow_unsafe=True)["rows"][1] is None


def test_awml_unsafe_load_reaches_the_checkpoint_from_the_command_line(toy_repo):
    torch = pytest.importorskip("torch")
    ckpt = toy_repo.path / "epoch_1.pth"
    state = {"0.weight": torch.full((4, 3, 3, 3), 0.1), "0.bias": torch.zeros(4),
             "4.weight": torch.full((2, 4), 0.5), "4.bias": torch.zeros(2)}
    from pathlib import Path

    torch.save({"state_dict": state, "meta": {"work_dir": Path("/runs/1")}}, ckpt)
    args = ("suites", "-p", "no:cacheprovider", "-k", "export", "--cfg-options", f"checkpoint_path={ckpt}")
    refused = toy_repo.runpytest_subprocess(*args)
    refused.assert_outcomes(failed=1)
    refused.stdout.fnmatch_lines(["*epoch_1.pth needs full unpickling, which can run arbitrary code (it references pathlib.PosixPath); "
                                  "if you trust it, pass --awml-unsafe-load*"])
    toy_repo.runpytest_subprocess(*args, "--awml-unsafe-load").assert_outcomes(passed=1)
