"""Evaluation passes of one deploy config: every available backend over the samples in
one pass, so each sample is preprocessed once and only compact predictions are kept.

A serial run evaluates every sample here and judges the result once
(`evaluation.results.judge_backends`); a large evaluation runs in chunks of samples
(one test each, a unit of work of its own under pytest-xdist), each sending its
predictions to the controller, which merges them (`evaluation.merge`) and judges there.
`--awml-shard I/N` writes one job's slice to a shard file for `awml merge` (split.py)."""

from __future__ import annotations

import dataclasses
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from awml_harness.backends.base import BackendUnavailable, Runner
from awml_harness.config.schema import BackendSpec
from awml_harness.config.validation import to_builtin
from awml_harness.context.data import ContextPart, ModelData
from awml_harness.context.runners import RunnerPool, RunResult
from awml_harness.evaluation.results import OK, BackendResult, judge_backends
from awml_harness.project import Prepared

#: sink(backend name, sample index, sample id, prediction, target): where a pass hands each prediction
Sink = Callable[[str, int, str, Any, Any], None]


@dataclass
class MetricJudge:
    """`metric_judge`'s criterion; `last` keeps the metrics of the latest call."""

    verdict: Callable[[Mapping[str, Runner]], tuple[bool, str, dict[str, Any]]]
    reference: dict[str, Any]
    last: dict[str, Any] = field(default_factory=dict)

    def __call__(self, runners: Mapping[str, Runner]) -> tuple[bool, str]:
        ok, detail, self.last = self.verdict(runners)
        return ok, detail


class EvaluationPasses(ContextPart):
    """Metrics of every backend (serial runs) or one chunk's predictions."""

    def __init__(self, data: ModelData, runner_pool: RunnerPool) -> None:
        super().__init__(data)
        self.runner_pool = runner_pool
        self._evaluation: dict[str, BackendResult] | None = None

    def num_eval_samples(self) -> int:
        n = self.cfg.evaluation.num_samples
        return len(self.dataset) if n == -1 else min(n, len(self.dataset))

    def _evaluation_pass(self, indices: Iterable[int], sink: Sink, label: str = "") -> dict[str, Any]:
        """Preprocess each sample once, run every available backend on it, hand the
        compact prediction to `sink(name, index, sample_id, prediction, target)`.
        Returns per backend: spec, seconds, memory (peak RSS of its set-up and inference,
        CUDA peak: awml_harness/memory.py) and "unavailable"/"error" when it could not run."""
        from awml_harness.memory import PeakMemory

        memory = PeakMemory()
        status: dict[str, Any] = {}
        active: dict[str, BackendSpec] = {}
        for name, spec in self.cfg.evaluation.specs().items():
            status[name] = {"spec": spec, "seconds": 0.0}
            try:
                with memory.measure(name, spec.device):
                    self.runner_pool.runners(spec)
                active[name] = spec
                status[name]["calibration"] = self.runner_pool.artifacts.calibration_note(spec)
            except BackendUnavailable as exc:
                status[name]["unavailable"] = str(exc)
            except Exception as exc:  # a failed build (fp16 conversion, engine) fails this backend only
                status[name]["error"] = f"setting up {spec.label}: {type(exc).__name__}: {exc}"
        from awml_harness.progress import Ticker

        indices = list(indices)
        ticker = Ticker(f"evaluate {self.cfg.id} [{', '.join(active)}]{label}", len(indices))
        for done, i in enumerate(indices, 1):
            sample = self.dataset[i]
            prepared = self.adapter.preprocess(sample)
            target = self.adapter.target(sample)
            for name, spec in active.items():
                if "error" in status[name]:
                    continue
                start = time.perf_counter()
                try:
                    with memory.measure(name, spec.device):
                        res = self.runner_pool.run(spec, prepared)
                except Exception as exc:  # recorded for that backend's test, the others go on
                    status[name]["error"] = f"sample {i} ({prepared.sample_id}): {type(exc).__name__}: {exc}"
                    continue
                status[name]["seconds"] += time.perf_counter() - start
                det = self.adapter.detections(res.prediction)
                if det is not None and len(det) == 0:
                    status[name]["empty"] = status[name].get("empty", 0) + 1
                sink(name, i, prepared.sample_id, res.prediction, target)
            ticker.update(done)
        ticker.finish()
        for name in active:
            status[name]["memory"] = memory.record(name)
        return status

    def evaluate_all(self) -> dict[str, BackendResult]:
        """Every enabled backend from one pass over the samples (serial runs), judged
        against the reference. Only the evaluators' compact state is kept, never raw outputs."""
        if self._evaluation is not None:
            return self._evaluation
        evaluators = {name: self.adapter.evaluator() for name in self.cfg.evaluation.specs()}

        def sink(name: str, index: int, sample_id: str, prediction: Any, target: Any) -> None:
            evaluators[name].add(sample_id, prediction, target)

        n = self.num_eval_samples()
        status = self._evaluation_pass(range(n), sink)
        results = {}
        for name, entry in status.items():
            spec = entry["spec"]
            base = BackendResult.of_pass(name, spec.device, spec.precision, entry, type(evaluators[name]))
            if base.status != OK:
                results[name] = base
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                metrics = to_builtin(evaluators[name].compute())
            results[name] = dataclasses.replace(base, metrics=metrics, num_samples=n)
        ev = self.cfg.evaluation
        self._evaluation = judge_backends(results, ev.reference, ev.tolerance_for)
        return self._evaluation

    def metric_judge(self, backend: str, samples: Sequence[tuple[Prepared, Any]]) -> MetricJudge:
        """Runners per graph -> (passed, what failed): the metric gate of evaluation backend
        `backend` (its metric tolerances) against the reference backend, both evaluated on
        `samples` ((prepared, target) pairs). The auto_int8 search's second criterion."""
        from awml_harness.evaluation.gate import judge_metrics

        ev, adapter = self.cfg.evaluation, self.adapter

        def metrics(run: Callable[[Prepared], RunResult]) -> dict[str, Any]:
            evaluator = adapter.evaluator()
            for k, (prepared, target) in enumerate(samples):
                evaluator.add(f"{k}:{prepared.sample_id}", run(prepared).prediction, target)
            return dict(evaluator.compute())

        reference: dict[str, Any] = {}  # computed on the first call: a warm run that reuses the choice never asks
        directions = type(adapter.evaluator()).directions

        def verdict(runners: Mapping[str, Runner]) -> tuple[bool, str, dict[str, Any]]:
            if not reference:
                reference.update(metrics(lambda p: self.runner_pool.run(ev.specs()[ev.reference], p)))
            found = metrics(lambda p: self.runner_pool.run_with(runners, p))
            gate = judge_metrics(found, reference, ev.tolerance_for(backend), directions)
            detail = "" if gate.passed else (f"metric gate on {len(samples)} search samples (vs {ev.reference}):\n"
                                             + "\n".join(gate.failures))
            return gate.passed, detail, found

        return MetricJudge(verdict, reference)

    def evaluate_chunk(self, chunk: int, of: int, label: str = "chunk") -> dict[str, Any]:
        """Predictions (wire-encoded) of samples i % of == chunk, for a merge elsewhere (the
        xdist controller, or `awml merge` of --awml-shard files)."""
        from awml_harness.evaluation.wire import encode

        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in self.cfg.evaluation.specs()}

        def sink(name: str, index: int, sample_id: str, prediction: Any, target: Any) -> None:
            rows[name].append({"index": index, "sample_id": sample_id,
                               "prediction": encode(prediction), "target": encode(target)})

        status = self._evaluation_pass(range(chunk, self.num_eval_samples(), of), sink,
                                       label=f" {label} {chunk + 1}/{of}")
        out = {}
        for name, entry in status.items():
            spec = entry["spec"]
            out[name] = {"device": spec.device, "precision": spec.precision, "seconds": entry["seconds"],
                         "memory": entry.get("memory"), "samples": rows[name], "empty": entry.get("empty", 0),
                         **{k: entry[k] for k in ("unavailable", "error", "calibration") if entry.get(k)}}
        return out
