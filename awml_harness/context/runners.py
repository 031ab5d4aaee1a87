"""Runners of one deploy config: one per graph and backend spec, created on first use;
a backend that cannot run is remembered with its reason."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable, Runner
from awml_harness.config.schema import Backend, BackendSpec, Scenario
from awml_harness.context.artifacts import Artifacts
from awml_harness.context.data import ContextPart, ModelData
from awml_harness.project import NullTimer, Prepared, StageTimer


@dataclass
class RunResult:
    """One backend's pass: raw outputs, compact prediction, stage times."""

    outputs: dict[str, Any]
    prediction: Any
    stages: dict[str, list[float]] = field(default_factory=dict)


class RunnerPool(ContextPart):
    """Creates, caches and runs the backends' runners of one config."""

    def __init__(self, data: ModelData, artifacts: Artifacts) -> None:
        super().__init__(data)
        self.artifacts = artifacts
        self._runners: dict[BackendSpec, dict[str, Any]] = {}
        self._unavailable: dict[BackendSpec, str] = {}
        self._ref_results: dict[tuple[BackendSpec, int], RunResult] = {}

    def runners(self, spec: BackendSpec) -> dict[str, Any]:
        """One runner per graph for `spec`; raises BackendUnavailable (cached) when it cannot run."""
        if spec in self._unavailable:
            raise BackendUnavailable(self._unavailable[spec])
        if spec not in self._runners:
            try:
                made = self._make_runners(spec)
                for runner in made.values():
                    runner.activate()
            except BackendUnavailable as exc:
                self._unavailable[spec] = str(exc)
                raise
            self._runners[spec] = made
        return self._runners[spec]

    def close(self) -> None:
        """Deactivate every runner this pool opened (sessions, engines, device memory)."""
        runners, self._runners = self._runners, {}
        for made in runners.values():
            for runner in made.values():
                runner.deactivate()

    def _make_runners(self, spec: BackendSpec) -> dict[str, Any]:
        if spec.backend is Backend.PYTORCH:
            from awml_harness.backends.torch import TorchRunner

            if spec.precision != "fp32":
                raise BackendUnavailable(f"pytorch runs fp32 only here; {spec.label} is not supported")
            out = {}
            for name, g in self.graphs.items():
                module = g.module if spec.device == "cpu" else copy.deepcopy(g.module)
                out[name] = TorchRunner(module, g.input_names, g.output_names, spec.device,
                                        threads=self.thread_policy)
            return out
        if spec.backend is Backend.ONNX:
            from awml_harness.backends.onnxruntime import OnnxRuntimeRunner

            arts = self.artifacts.onnx_artifacts(spec.precision)
            tp = self.thread_policy
            return {name: OnnxRuntimeRunner(a.path, spec.device, tp.intra_op, spinning=self.options.ort_spinning,
                                            inter_op=tp.inter_op) for name, a in arts.items()}
        if spec.backend is Backend.TENSORRT:
            from awml_harness.backends.tensorrt import TensorRTRunner, require_tensorrt

            require_tensorrt(spec.device)
            arts = self.artifacts.engine_artifacts(spec)
            graph = self.cfg.backend_config.common_config.cuda_graph
            return {name: TensorRTRunner(a.path, spec.device, cuda_graph=graph) for name, a in arts.items()}
        raise BackendUnavailable(f"unknown backend {spec.backend}")  # pragma: no cover

    def run(self, spec: BackendSpec, prepared: Prepared, timer: StageTimer | None = None) -> RunResult:
        return self.run_with(self.runners(spec), prepared, timer)

    def run_with(self, runners: Mapping[str, Runner], prepared: Prepared, timer: StageTimer | None = None) -> RunResult:
        """The project's pipeline on `prepared` with these runners, one per graph."""
        timer = timer or NullTimer()

        def run_graph(name: str, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
            return runners[name].infer(feeds)

        outputs = self.adapter.forward(prepared, run_graph, timer)
        with timer("postprocess"):
            prediction = self.adapter.postprocess(outputs, prepared)
        return RunResult(outputs=outputs, prediction=prediction, stages=dict(timer.times))

    def verification_judge(self, scenario: Scenario, indices: Sequence[int]) -> Callable[[Mapping[str, Runner]], tuple[bool, str]]:
        """Runners per graph -> (passed, what failed first): the scenario's verification
        (verification.judge) with these runners as its test side, on every sample of
        `indices`, against the scenario's reference. What the automatic precision
        searches are handed as their criterion."""
        from awml_harness.verification.judge import judge

        adapter, ver = self.adapter, self.cfg.verification

        def verdict(runners: Mapping[str, Runner]) -> tuple[bool, str]:
            for i in indices:
                ref = self.reference_result(scenario.ref, i)
                test = self.run_with(runners, self.prepared(i))
                found = judge(ver, scenario, ref.outputs, test.outputs, adapter.detections(ref.prediction),
                              adapter.detections(test.prediction), adapter.match_settings())
                if not found.passed:
                    return False, "\n".join(found.messages(f"sample {i}", hint=False))
            return True, ""

        return verdict

    def reference_result(self, spec: BackendSpec, index: int) -> RunResult:
        """Reference outputs are shared by every scenario that uses the same reference."""
        key = (spec, index)
        if key not in self._ref_results:
            self._ref_results[key] = self.run(spec, self.prepared(index))
        return self._ref_results[key]

    def timed_run(self, spec: BackendSpec, sample: Any) -> RunResult:
        timer = StageTimer()
        with timer("preprocess"):
            prepared = self.adapter.preprocess(sample)
        return self.run(spec, prepared, timer)
