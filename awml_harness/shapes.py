"""Inputs at the edges of a graph's dynamic range.

An engine or runtime built for one shape can silently misbehave at another, so the
shape sweep runs each dynamic graph at its profile's min, opt and max shapes, and
checks that a batch of N gives the same rows as N runs of batch 1. Inputs at a new
shape are made from the traced example by wrapping indices along each axis, so
values stay realistic (real voxels, real pixels) rather than random noise.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np

from awml_harness.graph import Graph, ShapeRange, profile_input

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import DeployConfig


def resize_like(example: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    out = example
    for axis, n in enumerate(shape):
        out = np.take(out, np.arange(n) % out.shape[axis], axis=axis)
    return np.ascontiguousarray(out)


def profile_shapes(graph: Graph, cfg: DeployConfig) -> dict[str, ShapeRange]:
    """Shape ranges of the graph's dynamic inputs: the graph's first profile, else the
    config's backend_config.model_inputs[0] entries with matching input names."""
    dynamic = [n for n in graph.input_names if graph.dynamic_axes.get(n)]
    ranges: dict[str, ShapeRange] = {}
    if graph.profiles:
        ranges.update({k: v for k, v in graph.profiles[0].items() if k in dynamic})
    if cfg.backend_config.model_inputs:
        for key, p in cfg.backend_config.model_inputs[0].input_shapes.items():
            name = profile_input(key, graph.name, dynamic)
            if name is not None and name not in ranges:
                ranges[name] = ShapeRange(tuple(p.min_shape), tuple(p.opt_shape), tuple(p.max_shape))
    return ranges


def feeds_at(graph: Graph, ranges: Mapping[str, ShapeRange], which: str) -> dict[str, np.ndarray]:
    feeds = {}
    for name in graph.input_names:
        example = np.asarray(graph.example_inputs[name])
        rng = ranges.get(name)
        feeds[name] = resize_like(example, getattr(rng, which)) if rng is not None else example
    return feeds


def batch_axis_inputs(graph: Graph) -> list[str]:
    """Inputs whose axis 0 is dynamic: their rows must be independent of each other."""
    return [n for n in graph.input_names if 0 in graph.dynamic_axes.get(n, {})]
