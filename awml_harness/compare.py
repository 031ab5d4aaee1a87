"""Nested output comparison: every leaf, every failure, and what tolerance would pass.

The walk checks structure first (keys, lengths), then shape and dtype, then values, so
a message never talks about values of arrays that cannot be compared. An element
passes when |test - ref| <= atol + rtol * |ref|; NaN never passes (on either side), an
infinity passes only where both sides hold the same infinity. Every leaf gets
statistics, passing or not, so the metrics JSON and tolerance suggestions can use them.
A leaf's path joins mapping keys with `/` and writes sequence items as `[i]`
(`head/aux[0]/score`); tolerance patterns name leaves in the same syntax
(`verification.tolerance.output_matches`: brackets literal, `*` and `?` wildcards).

`max_mismatch_share` (per output, default 0) lets a leaf pass while at most that share
of its elements is out of tolerance. It exists for discrete outputs that legitimately
flip where the reference is ambiguous: a per-pixel argmax class map changes
class at pixels whose two best logits are nearly tied, so a tiny logit drift (fp16) moves
a few pixels to the other class, while a broken export moves many. Non-finite values are
never covered by it: a leaf with a NaN, or an infinity on one side only, fails whatever
the share.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: decade edges of the |diff| histogram: [0, 1e-12), [1e-12, 1e-11), ..., [10, inf)
HIST_EDGES = tuple([0.0] + [10.0 ** e for e in range(-12, 2)] + [float("inf")])

#: (output path) -> (atol, rtol) or (atol, rtol, max_mismatch_share)
ToleranceFn = Callable[[str], "tuple[float, ...]"]


def _unpack(tol: tuple[float, ...]) -> tuple[float, float, float]:
    """(atol, rtol[, max_mismatch_share]) -> all three; the share defaults to 0 (exact)."""
    if len(tol) == 2:
        return float(tol[0]), float(tol[1]), 0.0
    if len(tol) == 3:
        return float(tol[0]), float(tol[1]), float(tol[2])
    raise ValueError(f"a tolerance is (atol, rtol) or (atol, rtol, max_mismatch_share), got {tol!r}")


@dataclass(frozen=True)
class LeafResult:
    path: str
    passed: bool
    atol: float
    rtol: float
    problem: str = ""  # structure/shape/dtype problem; empty when values were compared
    shape: tuple[int, ...] = ()
    numel: int = 0
    mismatches: int = 0
    nan_count: int = 0
    inf_count: int = 0
    max_abs_diff: float = 0.0
    mean_abs_diff: float = 0.0
    max_rel_diff: float = 0.0
    worst_index: tuple[int, ...] = ()
    worst_ref: float = 0.0
    worst_test: float = 0.0
    min_atol: float = 0.0  # smallest atol that passes every element at this rtol (inf: none)
    diff_hist: tuple[int, ...] = ()  # counts of |diff| per decade, bins HIST_EDGES (for reports)
    max_mismatch_share: float = 0.0  # share of elements allowed out of tolerance (0: none)
    #: (|ref|, |diff|) points an (atol, rtol) pair must cover to pass every element
    #: (diff_envelope; verification.tolerance.fit picks the pair)
    envelope: tuple[tuple[float, float], ...] = ()
    mean_abs_ref: float = 0.0

    @property
    def mismatch_share(self) -> float:
        return self.mismatches / self.numel if self.numel else 0.0

    def describe(self) -> str:
        if self.problem:
            return f"{self.path}: {self.problem}"
        parts = [
            f"{self.path}: mismatched elements {self.mismatches} / {self.numel} ({100 * self.mismatch_share:.2f}%)",
            f"greatest abs diff {self.max_abs_diff:.4g} at index {self.worst_index} "
            f"(ref {self.worst_ref:.6g}, test {self.worst_test:.6g}), greatest rel diff {self.max_rel_diff:.4g}",
            f"allowed atol={self.atol:g} rtol={self.rtol:g}"
            + (f" max_mismatch_share={self.max_mismatch_share:g}" if self.max_mismatch_share else ""),
        ]
        if self.nan_count or self.inf_count:
            parts.append(f"non-finite: {self.nan_count} NaN, {self.inf_count} Inf")
        if np.isfinite(self.min_atol):
            parts.append(f"min atol to pass at rtol={self.rtol:g}: {self.min_atol:.4g}")
        else:
            parts.append("no finite atol passes (NaN/Inf mismatch)")
        return "; ".join(parts)

    def as_dict(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        d["shape"] = list(self.shape)
        d["worst_index"] = list(self.worst_index)
        d["diff_hist"] = list(self.diff_hist)
        d["envelope"] = [list(p) for p in self.envelope]
        d["mismatch_share"] = self.mismatch_share
        for k in ("min_atol", "max_abs_diff", "max_rel_diff", "mean_abs_diff", "worst_ref", "worst_test"):
            if not np.isfinite(d[k]):
                d[k] = None if np.isnan(d[k]) else str(d[k])
        return d


@dataclass(frozen=True)
class CompareResult:
    leaves: tuple[LeafResult, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(leaf.passed for leaf in self.leaves)

    @property
    def failures(self) -> list[LeafResult]:
        return [leaf for leaf in self.leaves if not leaf.passed]

    def message(self, context: str = "", hint: str = "") -> str:
        failures = self.failures
        head = f"{context}: " if context else ""
        lines = [f"{head}{len(failures)} of {len(self.leaves)} outputs differ beyond tolerance"]
        lines += [f"  - {leaf.describe()}" for leaf in failures]
        if hint:
            lines.append(hint)
        return "\n".join(lines)


def _to_numpy(x: Any) -> np.ndarray | None:
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, (np.generic, int, float, bool, complex)):
        return np.asarray(x)
    mod = type(x).__module__
    if mod.startswith("torch") and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return None


#: bins of |ref| per octave in the envelope: 2**5 (a bin's edge is within 3.1 % of its elements)
ENVELOPE_BITS = 5


def upper_hull(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper convex hull of (x, y) points, left to right (monotone chain). A line
    above its vertices is above every point, which is all a tolerance has to be."""
    hull: list[tuple[float, float]] = []
    for p in sorted(points):
        while len(hull) >= 2 and ((hull[-1][0] - hull[-2][0]) * (p[1] - hull[-2][1])
                                  - (hull[-1][1] - hull[-2][1]) * (p[0] - hull[-2][0])) >= 0:
            hull.pop()
        hull.append(p)
    return hull


def diff_envelope(abs_ref: np.ndarray, diff: np.ndarray) -> tuple[tuple[float, float], ...]:
    """What an (atol, rtol) pair must cover, in a few points: the largest |diff| per
    1/32 octave of |ref| (bins keyed by the float64's exponent and top mantissa bits),
    each at its bin's lower edge, reduced to their upper convex hull. A pair that passes
    every hull point passes every element, since rtol >= 0 and each element's |ref| is
    at least its bin's edge."""
    shift = 52 - ENVELOPE_BITS
    flat_ref = np.ascontiguousarray(abs_ref, dtype=np.float64).reshape(-1)
    keys = (flat_ref.view(np.int64) >> shift).astype(np.intp)  # < 2**(11 + bits) for |ref| >= 0
    size = 1 << (11 + ENVELOPE_BITS)
    most = np.zeros(size, np.float64)
    np.maximum.at(most, keys, np.ascontiguousarray(diff, dtype=np.float64).reshape(-1))
    present = np.flatnonzero(np.bincount(keys, minlength=size))
    edges = (present.astype(np.int64) << shift).view(np.float64)
    points = [(float(e), float(m)) for e, m in zip(edges, most[present], strict=True) if m > 0]
    return tuple(upper_hull(points))


def compare_arrays(path: str, ref: np.ndarray, test: np.ndarray, atol: float, rtol: float,
                   max_mismatch_share: float = 0.0) -> LeafResult:
    """One leaf. It passes when every element is within atol + rtol * |ref|, or, with
    `max_mismatch_share` > 0, when the share of elements that are not is at most that
    and all of them are finite mismatches (see the module docstring)."""
    base = dict(path=path, atol=atol, rtol=rtol, max_mismatch_share=max_mismatch_share)
    if ref.shape != test.shape:
        return LeafResult(passed=False, problem=f"shape mismatch: ref {ref.shape} vs test {test.shape}", **base)
    if ref.dtype != test.dtype and not (ref.dtype.kind in "fc" and test.dtype.kind in "fc"):
        return LeafResult(passed=False, problem=f"dtype mismatch: ref {ref.dtype} vs test {test.dtype}", **base)
    numel = int(ref.size)
    if numel == 0:
        return LeafResult(passed=True, shape=ref.shape, **base)
    r = ref.astype(np.float64, copy=False)
    t = test.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore", over="ignore"):
        diff = np.abs(t - r)
    nan = np.isnan(r) | np.isnan(t)
    inf_r, inf_t = np.isinf(r), np.isinf(t)
    same_inf = inf_r & inf_t & (np.sign(r) == np.sign(t))
    nonfinite_bad = nan | ((inf_r | inf_t) & ~same_inf)
    finite = ~(nan | inf_r | inf_t)
    diff = np.where(finite, diff, 0.0)
    abs_ref = np.abs(np.where(finite, r, 0.0))
    ok = (diff <= atol + rtol * abs_ref) & finite | same_inf
    mismatches = int(numel - np.count_nonzero(ok))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        rel = np.where(abs_ref > 0, diff / abs_ref, np.where(diff > 0, np.inf, 0.0))
    flat_worst = int(np.argmax(np.where(nonfinite_bad, np.inf, diff)))
    worst_index = tuple(int(i) for i in np.unravel_index(flat_worst, ref.shape)) if ref.ndim else ()
    needed = diff - rtol * abs_ref
    min_atol = float(np.inf) if nonfinite_bad.any() else float(max(0.0, needed.max()))
    within_share = not nonfinite_bad.any() and mismatches <= max_mismatch_share * numel
    return LeafResult(
        passed=mismatches == 0 or within_share,
        shape=tuple(ref.shape),
        numel=numel,
        mismatches=mismatches,
        nan_count=int(np.count_nonzero(np.isnan(t))),
        inf_count=int(np.count_nonzero(np.isinf(t))),
        max_abs_diff=float(np.inf if nonfinite_bad.any() else diff.max()),
        mean_abs_diff=float(diff.mean()),
        max_rel_diff=float(rel.max()),
        worst_index=worst_index,
        worst_ref=float(r.flat[flat_worst]),
        worst_test=float(t.flat[flat_worst]),
        min_atol=min_atol,
        diff_hist=tuple(int(c) for c in np.histogram(diff[finite], bins=np.asarray(HIST_EDGES))[0]),
        envelope=() if nonfinite_bad.any() else diff_envelope(abs_ref, diff),
        mean_abs_ref=float(abs_ref.mean()),
        **base,
    )


def _walk(path: str, ref: Any, test: Any, tol: ToleranceFn, out: list[LeafResult]) -> None:
    def structural(problem: str) -> None:
        atol, rtol, _ = _unpack(tol(path))
        out.append(LeafResult(path=path or "<root>", passed=False, atol=atol, rtol=rtol, problem=problem))

    if isinstance(ref, Mapping):
        if not isinstance(test, Mapping):
            return structural(f"type mismatch: ref mapping vs test {type(test).__name__}")
        for key in ref:
            sub = f"{path}/{key}" if path else str(key)
            if key not in test:
                atol, rtol, _ = _unpack(tol(sub))
                out.append(LeafResult(path=sub, passed=False, atol=atol, rtol=rtol, problem="missing in test output"))
            else:
                _walk(sub, ref[key], test[key], tol, out)
        for key in test:
            if key not in ref:
                sub = f"{path}/{key}" if path else str(key)
                atol, rtol, _ = _unpack(tol(sub))
                out.append(LeafResult(path=sub, passed=False, atol=atol, rtol=rtol, problem="not in reference output"))
        return None
    if isinstance(ref, (list, tuple)):
        if not isinstance(test, (list, tuple)):
            return structural(f"type mismatch: ref {type(ref).__name__} vs test {type(test).__name__}")
        if len(ref) != len(test):
            structural(f"length mismatch: ref {len(ref)} items vs test {len(test)}")
        for i, (a, b) in enumerate(zip(ref, test, strict=False)):
            _walk(f"{path}[{i}]", a, b, tol, out)
        return None
    a, b = _to_numpy(ref), _to_numpy(test)
    if a is None or b is None:
        if ref == test:
            atol, rtol, _ = _unpack(tol(path))
            out.append(LeafResult(path=path, passed=True, atol=atol, rtol=rtol))
            return None
        return structural(f"unsupported or unequal leaf: ref {type(ref).__name__} {ref!r:.40} vs test {type(test).__name__} {test!r:.40}")
    atol, rtol, share = _unpack(tol(path))
    out.append(compare_arrays(path or "<root>", a, b, atol, rtol, share))
    return None


def compare(ref: Any, test: Any, tolerance: ToleranceFn | tuple[float, float] = (1e-3, 1e-3)) -> CompareResult:
    """Compare nested outputs. `tolerance` is (atol, rtol[, max_mismatch_share]) or a
    function of the leaf path returning one."""
    tol: ToleranceFn = tolerance if callable(tolerance) else (lambda _p, _t=tolerance: _t)  # type: ignore[misc]
    out: list[LeafResult] = []
    _walk("", ref, test, tol, out)
    return CompareResult(tuple(out))


def assert_outputs_close(ref: Any, test: Any, tolerance: ToleranceFn | tuple[float, float] = (1e-3, 1e-3),
                         context: str = "", hint: str = "") -> CompareResult:
    __tracebackhide__ = True
    result = compare(ref, test, tolerance)
    if not result.passed:
        raise AssertionError(result.message(context, hint))
    return result

