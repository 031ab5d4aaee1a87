"""A tiny classification project for the harness's own tests: seconds to export and run.

It exercises the same contract as the shipped projects (settings dataclass, graphs,
pipeline, evaluator) without their data, so core tests stay independent of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from awml_harness.config.errors import ConfigError
from awml_harness.graph import Graph, ShapeRange
from awml_harness.project import Evaluator, Prepared, ProjectAdapter


@dataclass(frozen=True)
class ToySettings:
    channels: int = 4
    size: int = 16
    num_samples: int = 6
    seed: int = 0
    # testing aids: `scale` multiplies the head weights (bigger logits, bigger diffs);
    # `export_skew` is added to logit 0 only while tracing, so the exported ONNX graph
    # disagrees with PyTorch the way a broken deployment would
    scale: float = 1.0
    export_skew: float = 0.0
    export_nan: bool = False  # the exported graph writes NaN into logit 1
    # > 0: a layer `fp16_fragile` computing (x * gain) * (1 / gain) before the head: the
    # identity in fp32; past fp16's range (65504) the converter clips the gain, so only
    # the fp16 variant breaks there (whatever precision the runtime computes in), for
    # mismatch localisation tests
    fp16_fragile: float = 0.0

    def validate(self, key: str) -> None:
        if self.size < 4:
            raise ConfigError(f"{key}.size", self.size, "an integer >= 4")


class AccuracyEvaluator(Evaluator):
    headline = "accuracy"
    # error_rate is the lower-is-better case; logit_mean stays undeclared: gated both ways
    directions = {"accuracy": "higher", "error_rate": "lower"}

    def __init__(self) -> None:
        self.hits: list[bool] = []
        self.logits: list[float] = []

    def add(self, sample_id: str, prediction: Any, target: Any) -> None:
        self.hits.append(int(prediction["label"]) == int(target))
        self.logits.append(float(np.mean(prediction["logits"])))

    def compute(self) -> dict[str, Any]:
        n = len(self.hits)
        # logit_mean: a continuous metric (NaN when a backend's logits are), unlike accuracy
        accuracy = float(np.mean(self.hits)) if n else 0.0
        return {"accuracy": accuracy, "error_rate": 1.0 - accuracy if n else 1.0, "num_samples": n,
                "logit_mean": float(np.mean(self.logits)) if n else 0.0}


def _build_module(settings: ToySettings) -> Any:
    import torch

    class Skew(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if settings.export_skew and torch.jit.is_tracing():
                x = x + torch.tensor([settings.export_skew, 0.0])
            if settings.export_nan and torch.jit.is_tracing():
                x = x + torch.tensor([0.0, float("nan")])
            return x

    class Fragile(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return (x * settings.fp16_fragile) * (1.0 / settings.fp16_fragile)

    torch.manual_seed(settings.seed)
    layers = [
        torch.nn.Conv2d(3, settings.channels, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(settings.channels, 2),
        Skew(),
    ]
    named = [(str(i), m) for i, m in enumerate(layers)]  # parameter names as without the fragile layer
    if settings.fp16_fragile:
        named.insert(4, ("fp16_fragile", Fragile()))
    from collections import OrderedDict

    return torch.nn.Sequential(OrderedDict(named)).eval()


class Project(ProjectAdapter):
    name = "Toy"
    task_type = "classification"
    settings_cls = ToySettings

    def build_model(self) -> Any:
        import torch

        model = _build_module(self.settings)
        if self.cfg.checkpoint_path is not None:
            from awml_harness.checkpoint import load_into, load_state_dict

            load_into(model, load_state_dict(self.cfg.checkpoint_path, allow_pickle=self.cfg.unsafe_load))
        with torch.no_grad():
            model[-2].weight.mul_(self.settings.scale)
        return model

    def has_dynamic_shapes(self) -> bool:
        return True  # the graph always has a dynamic batch axis and a profile

    def graph_names(self) -> tuple[str, ...]:
        return ("model",)

    def graphs(self, model: Any) -> list[Graph]:
        example = self.preprocess(self.dataset()[self.cfg.runtime_io.sample_idx]).inputs["input"]
        c, h, w = example.shape[1:]
        profile = {"input": ShapeRange((1, c, h, w), (2, c, h, w), (4, c, h, w))}
        return [Graph("model", model, {"input": example}, ("input",), ("output",),
                      dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}}, profiles=(profile,))]

    def dataset(self) -> list[dict[str, Any]]:
        rng = np.random.default_rng(self.settings.seed)
        s = self.settings.size
        return [{"id": f"toy{i}", "image": rng.standard_normal((3, s, s)).astype(np.float32), "label": i % 2}
                for i in range(self.settings.num_samples)]

    def target(self, sample: Any) -> Any:
        return sample["label"]

    def preprocess(self, sample: Any) -> Prepared:
        return Prepared(sample["id"], {"input": sample["image"][None]})

    def postprocess(self, outputs: Any, prepared: Prepared) -> Any:
        logits = outputs["output"][0]
        return {"label": int(np.argmax(logits)), "logits": logits.astype(np.float32)}

    def evaluator(self) -> Evaluator:
        return AccuracyEvaluator()
