"""benchmarks/run.py's pairing: the two sides alternate, and the verdict is the ratio of
medians, so one slow run on the shared box moves neither the ratio nor the verdict."""

from __future__ import annotations

from benchmarks.run import interleaved, median_wall, spread


def test_sides_alternate_and_one_outlier_does_not_move_the_median_ratio():
    order: list[str] = []
    walls_a = iter([2.0, 2.1, 9.0, 2.2, 2.0])  # one run hit by a neighbour's burst
    walls_b = iter([1.0, 1.1, 1.0, 1.2, 1.0])

    def a():
        order.append("a")
        return {"wall": next(walls_a)}

    def b():
        order.append("b")
        return {"wall": next(walls_b)}

    runs_a, runs_b = interleaved(a, b, 5)
    assert order == ["a", "b"] * 5
    assert median_wall(runs_a) / median_wall(runs_b) == 2.1 / 1.0
    text = spread(runs_a, runs_b)
    assert "5 interleaved pairs, pair ratios 1.83-9.00" in text
    assert "walls 2.0-9.0 s vs 1.0-1.2 s" in text
