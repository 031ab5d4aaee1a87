"""The unit of export: one exportable piece of a model, one ONNX file, one engine.

A project with one network has one Graph. A project whose deployed form is several
files (a pillar detector: voxel encoder, then backbone/neck/head) returns several, and its
pipeline calls them in turn with plain Python in between. Nothing in the core knows
how many a project has, which is why no "workflow" class exists.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class ShapeRange:
    """min/opt/max shape of one input; the TensorRT optimization profile entry."""

    min: tuple[int, ...]
    opt: tuple[int, ...]
    max: tuple[int, ...]

    def as_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}


@dataclass(frozen=True)
class Graph:
    """An exportable module with its I/O contract.

    `module` is excluded from equality and from the artifact key: the key covers the
    checkpoint bytes and settings instead, which determine the module's weights.
    `example_inputs` are the tensors traced during export (host numpy arrays, ordered
    like `input_names`). `profiles` is a tuple of TensorRT optimization profiles, each
    mapping input name -> ShapeRange; empty means static shapes taken from the examples.
    """

    name: str
    module: Any = field(compare=False, repr=False)
    example_inputs: Mapping[str, np.ndarray] = field(compare=False, repr=False)
    input_names: tuple[str, ...]
    output_names: tuple[str, ...]
    dynamic_axes: Mapping[str, Mapping[int, str]] = field(default_factory=dict)
    profiles: tuple[Mapping[str, ShapeRange], ...] = ()

    def __post_init__(self) -> None:
        missing = [n for n in self.input_names if n not in self.example_inputs]
        if missing:
            raise ValueError(
                f"Graph {self.name!r}: example_inputs lacks {missing}; it has "
                f"{sorted(self.example_inputs)}"
            )

    def spec(self) -> dict[str, Any]:
        """Everything about this graph that changes the exported file, as JSON data."""
        return {
            "name": self.name,
            "inputs": {
                n: {"shape": list(self.example_inputs[n].shape), "dtype": str(self.example_inputs[n].dtype)}
                for n in self.input_names
            },
            "outputs": list(self.output_names),
            "dynamic_axes": {k: {str(a): v for a, v in ax.items()} for k, ax in self.dynamic_axes.items()},
            "profiles": [{k: r.as_dict() for k, r in p.items()} for p in self.profiles],
        }


def profile_input(key: str, graph_name: str, input_names: tuple[str, ...] | list[str]) -> str | None:
    """The input of graph `graph_name` that a `backend_config.model_inputs[i].input_shapes`
    key names, or None. The two documented forms: the input's name (`spatial_features`),
    and `<graph>.<input>` (`pts_backbone_neck_head.spatial_features`) where two graphs
    share an input name. Every reader of profile keys asks this one function."""
    if key in input_names:
        return key
    head, dot, rest = key.partition(".")
    if dot and head == graph_name and rest in input_names:
        return rest
    return None


def io_signature(path: Any) -> dict[str, dict[str, list]]:
    """Names and shapes (ints, or the symbolic axis names) of an ONNX file's inputs/outputs."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    init = {i.name for i in model.graph.initializer}

    def dims(v: Any) -> list:
        return [d.dim_param if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim]

    return {
        "inputs": {v.name: dims(v) for v in model.graph.input if v.name not in init},
        "outputs": {v.name: dims(v) for v in model.graph.output},
    }
