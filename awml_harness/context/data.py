"""Model, graphs and samples of one deploy config, built on first use and cached."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from awml_harness.config.schema import DeployConfig
from awml_harness.project import Prepared, ProjectAdapter, load_project_class
from awml_harness.threads import apply_torch, resolve


@dataclass(frozen=True)
class RunOptions:
    rebuild_before: float | None = None
    strict: bool = False
    threads: int | None = None  # --awml-threads (None: not given; awml_harness/threads.py)
    ort_spinning: bool = False  # ONNX Runtime thread spinning (off: fair to the other backends)
    save_golden: Path | None = None
    golden: Path | None = None
    split: tuple[int, int] | None = None  # --awml-shard I/N as (I - 1, N): this job's slice (awml_harness/split.py)
    localize: bool = False  # --awml-localize: failing verifications name the first diverging nodes
    profile: bool = False  # --awml-profile: per-node profiles of every config (evaluation.profile.enabled)


class ModelData:
    """Lazy, cached model, graphs, dataset and preprocessed verification samples."""

    def __init__(self, cfg: DeployConfig, options: RunOptions, adapter: ProjectAdapter | None = None) -> None:
        self.cfg = cfg
        self.options = options
        if adapter is None:
            adapter = load_project_class(cfg.project_dir or cfg.project, [Path(cfg.source).parent])(cfg)
        self.adapter: ProjectAdapter = adapter
        self._model: Any = None
        self._graphs: dict[str, Any] | None = None
        self._dataset: Any = None
        self._prepared: dict[int, Prepared] = {}
        self.thread_policy = resolve(options.threads, cfg.evaluation.threads)

    @property
    def model(self) -> Any:
        if self._model is None:
            apply_torch(self.thread_policy)  # export and reference runs too, not only TorchRunner
            self._model = self.adapter.build_model()
        return self._model

    @property
    def graphs(self) -> dict[str, Any]:
        if self._graphs is None:
            try:
                graphs = list(self.adapter.graphs(self.model))
            except Exception as exc:  # most projects trace a dataset sample: say so when there is none
                from awml_harness.dataset import DatasetError, empty_dataset_message

                if self._dataset_is_empty():
                    raise DatasetError(empty_dataset_message(self.cfg)) from exc
                raise
            got, declared = [g.name for g in graphs], list(self.adapter.graph_names())
            if got != declared:  # test ids and artifact names go by graph_names(): they must agree
                raise ValueError(f"{type(self.adapter).__module__}: graphs() returned graphs {got} but graph_names() "
                                 f"declares {declared}; they must name the same graphs in the same order")
            self._graphs = {g.name: g for g in graphs}
        return self._graphs

    @property
    def dataset(self) -> Any:
        """The project's samples; DatasetError (naming the file) when there are none."""
        if self._dataset is None:
            from awml_harness.dataset import check_not_empty

            self._dataset = check_not_empty(self.adapter.dataset(), self.cfg)
        return self._dataset

    def _dataset_is_empty(self) -> bool:
        try:
            return len(self.adapter.dataset()) == 0
        except Exception:  # the adapter's own error about its data is the better message
            return False

    def prepared(self, index: int) -> Prepared:
        """Preprocessed sample, cached: every backend is fed the very same arrays."""
        if index not in self._prepared:
            self._prepared[index] = self.adapter.preprocess(self.dataset[index])
        return self._prepared[index]

    def verification_indices(self) -> list[int]:
        n = self.cfg.verification.num_verify_samples
        return list(range(min(n, len(self.dataset))))


class ContextPart:
    """Base of the parts: reads the shared ModelData's fields under their old names, so
    the code moved out of ProjectContext reads as it did there."""

    def __init__(self, data: ModelData) -> None:
        self.data = data

    @property
    def cfg(self) -> DeployConfig:
        return self.data.cfg

    @property
    def options(self) -> RunOptions:
        return self.data.options

    @property
    def adapter(self) -> ProjectAdapter:
        return self.data.adapter

    @property
    def thread_policy(self) -> Any:
        return self.data.thread_policy

    @property
    def graphs(self) -> dict[str, Any]:
        return self.data.graphs

    @property
    def dataset(self) -> Any:
        return self.data.dataset

    def prepared(self, index: int) -> Prepared:
        return self.data.prepared(index)
