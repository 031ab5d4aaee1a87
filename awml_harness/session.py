"""Per-run state, kept on `config.stash`: the configs of a run and their contexts.

Everything expensive is built on first use and cached for the session: a model is
built once per config, each Graph exported once, each runner created once, each
verification sample preprocessed once and fed to every backend. Evaluation runs all
available backends in one pass over the samples, so each sample is preprocessed once
and only compact predictions are kept. `finish` is everything after the last test
(awml_harness/finish.py); `close` gives back every runner the run opened.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from awml_harness.config.schema import BackendSpec, DeployConfig, Scenario
from awml_harness.context.artifacts import ARTIFACT_FORMAT, EXPORT_CODE, Artifacts
from awml_harness.context.data import ModelData, RunOptions
from awml_harness.context.package import Package
from awml_harness.context.runners import RunnerPool, RunResult
from awml_harness.evaluation.passes import EvaluationPasses
from awml_harness.evaluation.results import BackendResult
from awml_harness.export.store import Artifact
from awml_harness.finish import EndOptions, Outcome, finish
from awml_harness.project import Prepared, ProjectAdapter, StageTimer, load_project_class
from awml_harness.recorder import RunRecord
from awml_harness.threads import resolve

__all__ = ["ARTIFACT_FORMAT", "EXPORT_CODE", "HarnessSession", "ProjectContext", "RunOptions", "RunResult",
           "with_unique_ids"]


class ProjectContext(ModelData):
    """Lazy, cached access to everything one deploy config needs during a run.

    A facade: the model and data are its own (`ModelData`); artifacts, runners and
    evaluation passes are parts (`context/`, `evaluation/passes.py`), reached under the
    names callers use."""

    def __init__(self, cfg: DeployConfig, options: RunOptions, adapter: ProjectAdapter | None = None) -> None:
        super().__init__(cfg, options, adapter)
        self.artifacts = Artifacts(self)
        self.store = self.artifacts.store
        self.runner_pool = RunnerPool(self, self.artifacts)
        self.passes = EvaluationPasses(self, self.runner_pool)
        self.package = Package(self, self.artifacts)

    # -- artifacts (context/artifacts.py) -------------------------------------------------
    @property
    def checkpoint_digest(self) -> str:
        return self.artifacts.checkpoint_digest

    @property
    def code_digests(self) -> dict[str, str]:
        return self.artifacts.code_digests

    def onnx_artifacts(self, precision: str = "fp32") -> dict[str, Artifact]:
        return self.artifacts.onnx_artifacts(precision)

    @property
    def auto_mixed(self) -> dict[str, Any] | None:
        """precision_policy="auto_mixed": the search's summary once the fp16 graphs exist."""
        return self.artifacts.auto_mixed

    def engine_artifacts(self, spec: BackendSpec) -> dict[str, Artifact]:
        return self.artifacts.engine_artifacts(spec)

    def all_artifacts(self) -> list[dict[str, Any]]:
        return self.artifacts.all_artifacts()

    # -- the Autoware package (context/package.py) ----------------------------------------
    def package_artifact(self) -> Artifact:
        return self.package.artifact()

    def check_package(self, file: str, key: str) -> Any:
        return self.package.check(file, key)

    # -- runners (context/runners.py) -----------------------------------------------------
    def runners(self, spec: BackendSpec) -> dict[str, Any]:
        return self.runner_pool.runners(spec)

    def run(self, spec: BackendSpec, prepared: Prepared, timer: StageTimer | None = None) -> RunResult:
        return self.runner_pool.run(spec, prepared, timer)

    def reference_result(self, spec: BackendSpec, index: int) -> RunResult:
        return self.runner_pool.reference_result(spec, index)

    def timed_run(self, spec: BackendSpec, sample: Any) -> RunResult:
        return self.runner_pool.timed_run(spec, sample)

    def verification_judge(self, scenario: Scenario, indices: list[int]) -> Any:
        return self.runner_pool.verification_judge(scenario, indices)

    def close(self) -> None:
        self.runner_pool.close()

    # -- evaluation (evaluation/passes.py) ------------------------------------------------
    def num_eval_samples(self) -> int:
        return self.passes.num_eval_samples()

    def evaluate_all(self) -> dict[str, BackendResult]:
        return self.passes.evaluate_all()

    def evaluate_chunk(self, chunk: int, of: int, label: str = "chunk") -> dict[str, Any]:
        return self.passes.evaluate_chunk(chunk, of, label)


class HarnessSession:
    """All deploy configs of the run and their contexts. One per pytest process."""

    def __init__(self, configs: list[DeployConfig], options: RunOptions, shards: int = 1) -> None:
        self.configs = {c.id: c for c in configs}
        self.options = options
        self.workers = shards  # the xdist worker count, 1 in serial runs
        self._contexts: dict[str, ProjectContext] = {}
        self._adapters: dict[str, ProjectAdapter] = {}

    def adapter(self, config_id: str) -> ProjectAdapter:
        """A cheap adapter (no model built) for collection-time questions."""
        if config_id not in self._adapters:
            cfg = self.configs[config_id]
            cls = load_project_class(cfg.project_dir or cfg.project, [Path(cfg.source).parent])
            self._adapters[config_id] = cls(cfg)
        return self._adapters[config_id]

    def thread_policies(self) -> dict[str, dict[str, Any]]:
        """config id -> its thread policy (awml_harness/threads.py), for the reports."""
        return {cid: resolve(self.options.threads, cfg.evaluation.threads).as_dict()
                for cid, cfg in self.configs.items()}

    def context(self, config_id: str) -> ProjectContext:
        if config_id not in self._contexts:
            self._contexts[config_id] = ProjectContext(self.configs[config_id], self.options, self.adapter(config_id))
        return self._contexts[config_id]

    def finish(self, run: RunRecord, exitstatus: int, opts: EndOptions) -> Outcome | None:
        """Everything after the last test, on the process that writes the metrics JSON."""
        return finish(self, run, exitstatus, opts)

    def close(self) -> None:
        """Deactivate every runner any context opened (every process, workers included)."""
        for ctx in self._contexts.values():
            ctx.close()


def with_unique_ids(configs: list[DeployConfig]) -> list[DeployConfig]:
    """Two configs of one project get ids `<Project>-<config stem>` so test ids stay unique."""
    counts: dict[str, int] = {}
    for c in configs:
        counts[c.id] = counts.get(c.id, 0) + 1
    out = []
    for c in configs:
        if counts[c.id] > 1 and not c.name:
            c = dataclasses.replace(c, name=f"{c.project}-{Path(c.source).stem}")
        out.append(c)
    return out
