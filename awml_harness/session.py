"""Per-run state, kept on `config.stash`: configs, models, artifacts, runners, results.

Everything expensive is built on first use and cached for the session: a model is
built once per config, each Graph exported once, each runner created once, each
verification sample preprocessed once and fed to every backend. Evaluation runs all
available backends in one pass over the samples, so each sample is preprocessed once
and only compact predictions are kept.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from awml_harness.backends.base import BackendUnavailable
from awml_harness.config.schema import Backend, BackendSpec, DeployConfig
from awml_harness.config.typed import to_builtin
from awml_harness.export.store import Artifact, ArtifactStore, file_sha256
from awml_harness.project import NullTimer, Prepared, ProjectAdapter, StageTimer, load_project_class
from awml_harness.threads import apply_torch, resolve

ARTIFACT_FORMAT = 1  # bump when the export code changes what it writes
# harness modules, besides awml_harness/export/*.py, whose code decides an ONNX file's
# bytes (graph contract, checkpoint reading and key remapping); hashed into its key
EXPORT_CODE = ("graph.py", "checkpoint.py", "openmmlab.py", "session.py")


@dataclass(frozen=True)
class RunOptions:
    rebuild_before: float | None = None
    strict: bool = False
    threads: int | None = None  # --awml-threads (None: not given; awml_harness/threads.py)
    ort_spinning: bool = False  # ONNX Runtime thread spinning (off: fair to the other backends)
    save_golden: Path | None = None
    golden: Path | None = None


@dataclass
class RunResult:
    """One backend's pass: raw outputs, compact prediction, stage times."""

    outputs: dict[str, Any]
    prediction: Any
    stages: dict[str, list[float]] = field(default_factory=dict)


class ProjectContext:
    """Lazy, cached access to everything one deploy config needs during a run."""

    def __init__(self, cfg: DeployConfig, options: RunOptions, adapter: ProjectAdapter | None = None) -> None:
        self.cfg = cfg
        self.options = options
        if adapter is None:
            adapter = load_project_class(cfg.project_dir or cfg.project, [Path(cfg.source).parent])(cfg)
        self.adapter: ProjectAdapter = adapter
        self._model: Any = None
        self._graphs: dict[str, Any] | None = None
        self._dataset: Any = None
        self._artifacts: dict[str, dict[str, Artifact]] = {}
        self._runners: dict[BackendSpec, dict[str, Any]] = {}
        self._unavailable: dict[BackendSpec, str] = {}
        self._prepared: dict[int, Prepared] = {}
        self._ref_results: dict[tuple[BackendSpec, int], RunResult] = {}
        self._evaluation: dict[str, Any] | None = None
        self.store = ArtifactStore(Path(cfg.export.work_dir) / "artifacts")
        self.thread_policy = resolve(options.threads, cfg.evaluation.threads)

    # -- model and data -------------------------------------------------------------------
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

    # -- artifacts ------------------------------------------------------------------------
    @functools.cached_property
    def checkpoint_digest(self) -> str:
        """Hashed once per run: every graph's artifact key includes it."""
        path = self.cfg.checkpoint_path
        return file_sha256(path) if path is not None else "random-init"

    @functools.cached_property
    def code_digests(self) -> dict[str, str]:
        """The code that produced an ONNX file, hashed once per run: the project's own
        sources (every .py under the adapter module's folder; its `configs/` enter the key
        as parsed settings instead) and the harness modules that build the model or write
        the file. Editing either rebuilds the artifact."""
        import inspect

        from awml_harness.export.store import code_digest, source_files

        folder = Path(inspect.getfile(type(self.adapter))).resolve().parent
        # a projects/<Name>/ folder the loader resolved is the project, subfolders included
        # (project folders need no __init__.py); other adapters decide by their package
        resolved = bool(self.cfg.project_dir) and Path(self.cfg.project_dir).resolve() == folder
        project = source_files(folder, whole_tree=True if resolved else None)
        core = Path(__file__).resolve().parent
        harness = [*(core / "export").glob("*.py"), *(core / n for n in EXPORT_CODE)]
        return {"project": code_digest(project, folder), "harness": code_digest(harness, core)}

    def _onnx_key(self, graph: Any) -> dict[str, Any]:
        from awml_harness.export.onnx import tool_versions

        return {
            "kind": "onnx", "format": ARTIFACT_FORMAT, "project": self.cfg.project,
            "checkpoint": self.checkpoint_digest, "model_settings": to_builtin(self.cfg.model_settings),
            "onnx_config": to_builtin(self.cfg.onnx_config), "graph": graph.spec(), "tools": tool_versions(),
            "code": self.code_digests,
        }

    def onnx_artifacts(self, precision: str = "fp32") -> dict[str, Artifact]:
        """fp32 ONNX per graph (exported, or taken from export.onnx_path); fp16 derived from it."""
        if precision in self._artifacts:
            return self._artifacts[precision]
        mode = self.cfg.export.mode
        if precision == "fp32":
            if self.cfg.export.onnx_path is not None:
                arts = self._external_onnx()
            elif mode == "none":
                raise BackendUnavailable("export.mode='none' and no export.onnx_path: there is no ONNX model to run")
            else:
                arts = {}
                single = len(self.graphs) == 1
                for name, graph in self.graphs.items():
                    from awml_harness.export.onnx import export_graph

                    file_name = self.cfg.onnx_config.save_file if single else None
                    arts[name] = self.store.get_or_build(
                        name, self._onnx_key(graph),
                        lambda tmp, g=graph, f=file_name: export_graph(g, tmp, self.cfg.onnx_config, f),
                        rebuild_before=self.options.rebuild_before,
                    )
        else:
            from awml_harness.export.fp16 import convert_to_fp16, fp16_tool_versions

            base = self.onnx_artifacts("fp32")
            arts = {}
            for name, art in base.items():
                key = {"kind": "onnx-fp16", "format": ARTIFACT_FORMAT, "source": art.key, "tools": fp16_tool_versions()}
                arts[name] = self.store.get_or_build(
                    f"{name}-fp16", key, lambda tmp, a=art: convert_to_fp16(a.path, tmp),
                    rebuild_before=self.options.rebuild_before,
                )
        self._artifacts[precision] = arts
        return arts

    def _external_onnx(self) -> dict[str, Artifact]:
        path = Path(self.cfg.export.onnx_path)  # type: ignore[arg-type]
        names = self.adapter.graph_names()
        out = {}
        for name in names:
            if path.is_dir():
                f = path / f"{name}.onnx"
                if not f.is_file() and len(names) == 1:
                    f = path / self.cfg.onnx_config.save_file
            else:
                f = path
            if not f.is_file():
                raise BackendUnavailable(f"export.onnx_path={path} has no ONNX file for graph {name!r} (looked for {f})")
            out[name] = Artifact(name=name, key="external:" + file_sha256(f), folder=f.parent,
                                 files={f.name: {"sha256": file_sha256(f), "size": f.stat().st_size}},
                                 build_seconds=0.0, reused=True, main=f.name)
        return out

    def engine_artifacts(self, spec: BackendSpec) -> dict[str, Artifact]:
        key = f"trt-{spec.device}-{spec.precision}"
        if key not in self._artifacts:
            from awml_harness.export.tensorrt import build_engines

            self._artifacts[key] = build_engines(self, spec)
        return self._artifacts[key]

    def all_artifacts(self) -> list[dict[str, Any]]:
        out = []
        for precision, arts in self._artifacts.items():
            for art in arts.values():
                out.append({**art.as_dict(), "variant": precision})
        return out

    # -- runners --------------------------------------------------------------------------
    def runners(self, spec: BackendSpec) -> dict[str, Any]:
        """One runner per graph for `spec`; raises BackendUnavailable (cached) when it cannot run."""
        if spec in self._unavailable:
            raise BackendUnavailable(self._unavailable[spec])
        if spec not in self._runners:
            try:
                self._runners[spec] = self._make_runners(spec)
            except BackendUnavailable as exc:
                self._unavailable[spec] = str(exc)
                raise
        return self._runners[spec]

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

            arts = self.onnx_artifacts(spec.precision)
            tp = self.thread_policy
            return {name: OnnxRuntimeRunner(a.path, spec.device, tp.intra_op, spinning=self.options.ort_spinning,
                                            inter_op=tp.inter_op) for name, a in arts.items()}
        if spec.backend is Backend.TENSORRT:
            from awml_harness.backends.tensorrt import TensorRTRunner, require_tensorrt

            require_tensorrt(spec.device)
            arts = self.engine_artifacts(spec)
            graph = self.cfg.backend_config.common_config.cuda_graph
            return {name: TensorRTRunner(a.path, spec.device, cuda_graph=graph) for name, a in arts.items()}
        raise BackendUnavailable(f"unknown backend {spec.backend}")  # pragma: no cover

    # -- running --------------------------------------------------------------------------
    def run(self, spec: BackendSpec, prepared: Prepared, timer: StageTimer | None = None) -> RunResult:
        runners = self.runners(spec)
        timer = timer or NullTimer()

        def run_graph(name: str, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
            return runners[name].infer(feeds)

        outputs = self.adapter.forward(prepared, run_graph, timer)
        with timer("postprocess"):
            prediction = self.adapter.postprocess(outputs, prepared)
        return RunResult(outputs=outputs, prediction=prediction, stages=dict(timer.times))

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

    # -- evaluation -----------------------------------------------------------------------
    def num_eval_samples(self) -> int:
        n = self.cfg.evaluation.num_samples
        return len(self.dataset) if n == -1 else min(n, len(self.dataset))

    def _evaluation_pass(self, indices: Any, sink: Any) -> dict[str, Any]:
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
                    self.runners(spec)
                active[name] = spec
            except BackendUnavailable as exc:
                status[name]["unavailable"] = str(exc)
            except Exception as exc:  # a failed build (fp16 conversion, engine) fails this backend only
                status[name]["error"] = f"setting up {spec.label}: {type(exc).__name__}: {exc}"
        for i in indices:
            sample = self.dataset[i]
            prepared = self.adapter.preprocess(sample)
            target = self.adapter.target(sample)
            for name, spec in active.items():
                if "error" in status[name]:
                    continue
                start = time.perf_counter()
                try:
                    with memory.measure(name, spec.device):
                        res = self.run(spec, prepared)
                except Exception as exc:  # recorded for that backend's test, the others go on
                    status[name]["error"] = f"sample {i} ({prepared.sample_id}): {type(exc).__name__}: {exc}"
                    continue
                status[name]["seconds"] += time.perf_counter() - start
                det = self.adapter.detections(res.prediction)
                if det is not None and len(det) == 0:
                    status[name]["empty"] = status[name].get("empty", 0) + 1
                sink(name, i, prepared.sample_id, res.prediction, target)
        for name in active:
            status[name]["memory"] = memory.record(name)
        return status

    def evaluate_all(self) -> dict[str, Any]:
        """Metrics of every enabled backend from one pass over the samples (serial runs).
        Only the evaluators' compact state is kept, never raw outputs."""
        if self._evaluation is not None:
            return self._evaluation
        evaluators = {name: self.adapter.evaluator() for name in self.cfg.evaluation.specs()}

        def sink(name: str, index: int, sample_id: str, prediction: Any, target: Any) -> None:
            evaluators[name].add(sample_id, prediction, target)

        n = self.num_eval_samples()
        status = self._evaluation_pass(range(n), sink)
        for name, entry in status.items():
            if "unavailable" in entry or "error" in entry:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                entry["metrics"] = to_builtin(evaluators[name].compute())
            entry["num_samples"] = n
        self._evaluation = status
        return status

    def evaluate_shard(self, shard: int, of: int) -> dict[str, Any]:
        """Predictions (wire-encoded) of samples i % of == shard, for the controller to merge."""
        from awml_harness.evaluation import encode

        rows: dict[str, list[dict[str, Any]]] = {name: [] for name in self.cfg.evaluation.specs()}

        def sink(name: str, index: int, sample_id: str, prediction: Any, target: Any) -> None:
            rows[name].append({"index": index, "sample_id": sample_id,
                               "prediction": encode(prediction), "target": encode(target)})

        status = self._evaluation_pass(range(shard, self.num_eval_samples(), of), sink)
        out = {}
        for name, entry in status.items():
            spec = entry["spec"]
            out[name] = {"device": spec.device, "precision": spec.precision, "seconds": entry["seconds"],
                         "memory": entry.get("memory"), "samples": rows[name],
                         **{k: entry[k] for k in ("unavailable", "error") if k in entry}}
        return out


class HarnessSession:
    """All deploy configs of the run and their contexts. One per pytest process."""

    def __init__(self, configs: list[DeployConfig], options: RunOptions, shards: int = 1) -> None:
        self.configs = {c.id: c for c in configs}
        self.options = options
        self.shards = shards  # evaluation shards: the xdist worker count, 1 in serial runs
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
