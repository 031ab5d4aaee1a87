"""Which samples calibrate an int8 graph, and the inputs each graph saw on them.

Calibration samples are kept apart from the evaluated ones where the dataset allows: a
separate split when `quantization.info_file` names one, else the samples outside the
evaluation first (a seeded draw among them), and only when those run out samples that
are also evaluated. Whatever overlaps is recorded, so the report can say that the
int8 metric was partly measured on its own calibration data.

The inputs come from the project's own preprocessing and pipeline: every graph's feeds
are recorded while the fp32 ONNX graphs run the sample (`FeedRecorder` wraps each
runner), so a downstream graph (CenterPoint's backbone) is calibrated on what its
upstream graph really produced for those frames (the scattered pillar features).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np


def choose_samples(size: int, want: int, seed: int, avoid: Iterable[int] = ()) -> tuple[list[int], list[int]]:
    """(chosen indices, those of them in `avoid`): up to `want` of `range(size)`, first from
    outside `avoid` (a seeded draw when there are more than needed), then from inside it."""
    avoided = set(avoid)
    rng = np.random.default_rng(seed)

    def draw(pool: list[int], k: int) -> list[int]:
        if k >= len(pool):
            return pool
        return sorted(int(i) for i in rng.choice(pool, size=k, replace=False))

    apart = draw([i for i in range(size) if i not in avoided], want)
    inside = draw([i for i in range(size) if i in avoided], want - len(apart))
    return sorted(apart + inside), inside


@dataclass(frozen=True)
class CalibrationPlan:
    """The calibration samples of one config and where they stand relative to evaluation."""

    source: str  # "evaluation dataset" or the info file of another split
    indices: tuple[int, ...]  # into the source's dataset
    ids: tuple[str, ...]  # the samples' ids, as the project names them
    requested: int
    available: int
    overlap_evaluation: tuple[str, ...] = ()  # ids also evaluated
    overlap_verification: tuple[str, ...] = ()  # ids also verification samples
    inputs: str = "dataset"  # or "zeros" (the diagnostic blank calibration)

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "indices": list(self.indices), "ids": list(self.ids),
                "requested": self.requested, "available": self.available, "count": len(self.indices),
                "overlap_evaluation": list(self.overlap_evaluation),
                "overlap_verification": list(self.overlap_verification), "inputs": self.inputs,
                "description": self.describe()}

    def describe(self) -> str:
        """One line for a gate message or the report."""
        where = "from the evaluated dataset" if self.source == "evaluation dataset" else f"from {self.source}"
        text = f"{len(self.indices)} samples {where}"
        if self.overlap_evaluation:
            text += f", {len(self.overlap_evaluation)} of them also evaluated"
        else:
            text += ", none of them evaluated"
        if self.inputs != "dataset":
            text += f", inputs replaced by {self.inputs} (quantization.inputs, a diagnostic)"
        return text


@dataclass
class FeedRecorder:
    """A Runner that records every feed it is given (copies) and runs the wrapped runner."""

    runner: Any
    feeds: list[dict[str, np.ndarray]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.runner.name}-recorded"

    @property
    def is_active(self) -> bool:
        return bool(self.runner.is_active)

    @property
    def last_inference_time(self) -> float | None:
        return self.runner.last_inference_time

    def activate(self) -> None:
        self.runner.activate()

    def infer(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.feeds.append({k: np.array(v, copy=True) for k, v in feeds.items()})
        return self.runner.infer(feeds)

    def deactivate(self) -> None:
        self.runner.deactivate()


def blank(feeds: Sequence[Mapping[str, np.ndarray]]) -> list[dict[str, np.ndarray]]:
    """The same feeds as zeros (quantization.inputs="zeros")."""
    return [{k: np.zeros_like(v) for k, v in item.items()} for item in feeds]


def inputs_digest(prepared: Iterable[Any]) -> str:
    """sha256 over the calibration samples' ids and preprocessed input arrays."""
    h = hashlib.sha256()
    for p in prepared:
        h.update(f"{p.sample_id}\n".encode())
        for name in sorted(p.inputs):
            arr = np.ascontiguousarray(p.inputs[name])
            h.update(f"{name}:{arr.dtype.str}:{list(arr.shape)}\n".encode())
            h.update(arr.tobytes())
    return h.hexdigest()
