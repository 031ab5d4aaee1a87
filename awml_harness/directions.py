"""Which way a task metric gets better: the words, the defaults, the lookup.

An evaluator declares its table (`Evaluator.directions`); the metric gate
(evaluation/gate.py), `awml diff` and the reports read it. Kept apart from both so the
project API can check a table when an evaluator class is defined.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping

HIGHER, LOWER, NONE, UNDECLARED = "higher", "lower", "none", "undeclared"
DIRECTIONS = (HIGHER, LOWER, NONE)
#: what every evaluator gets unless it declares otherwise: counts are no quality
DEFAULT_DIRECTIONS: Mapping[str, str] = {"num_*": NONE}


def check_directions(declared: Mapping[str, str], owner: str) -> None:
    """An evaluator's table is code: a wrong word is a bug of the project, said at once."""
    for pattern, direction in declared.items():
        if direction not in DIRECTIONS:
            raise ValueError(f"{owner}.directions[{pattern!r}] = {direction!r}: expected one of {DIRECTIONS}")


def direction_of(metric: str, declared: Mapping[str, str]) -> str:
    """The evaluator's own entry (exact name first, then its patterns in order), then the
    harness default for counts, else "undeclared"."""
    for table in (declared, DEFAULT_DIRECTIONS):
        if metric in table:
            return table[metric]
        for pattern, direction in table.items():
            if fnmatch.fnmatchcase(metric, pattern):
                return direction
    return UNDECLARED


def resolve_directions(metrics: Iterable[str], declared: Mapping[str, str]) -> dict[str, str]:
    return {m: direction_of(m, declared) for m in metrics}
