"""The int8 artifacts of one deploy config: calibration samples from the project's own
dataset, each graph's calibration inputs recorded from the project's own pipeline, the
Q/DQ graphs (export/int8_artifact.py) and precision_policy="auto_int8"'s choice
(export/auto_int8.py), each cached under a key of everything that decides it.

Keys: the int8 artifact holds the fp32 artifacts' keys, the calibration sample ids and a
digest of their preprocessed inputs, the quantization settings, the quantizer's version
and the int8 code; the auto_int8 artifact holds the int8 artifact's key, the tolerances
and metric tolerances of its criterion, the search samples' digest and the search code.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from awml_harness.config.validation import to_builtin
from awml_harness.context.data import ContextPart, ModelData
from awml_harness.export.calibration import CalibrationPlan, choose_samples
from awml_harness.export.store import Artifact, file_sha256
from awml_harness.project import Prepared

INT8_FORMAT = 1  # bump when the int8 code changes what it writes


class Quantized(ContextPart):
    """Builds (or reuses) the int8 and auto_int8 artifacts; keeps their summaries."""

    def __init__(self, data: ModelData, artifacts: Any) -> None:
        super().__init__(data)
        self.artifacts = artifacts
        self.summary: dict[str, Any] | None = None  # the int8 artifact's int8.json, once built
        self.auto: dict[str, Any] | None = None  # the auto_int8 artifact's summary, once built
        self._plan: tuple[CalibrationPlan, str] | None = None
        self._int8: tuple[Artifact, dict[str, Artifact]] | None = None
        self._handed: dict[str, Any] | None = None

    # -- samples ---------------------------------------------------------------------------
    def source(self) -> tuple[Any, Any]:
        """(adapter, dataset) the calibration samples come from: another split when
        quantization.info_file names one, else the evaluated dataset."""
        q = self.cfg.quantization
        if q.info_file is None:
            return self.adapter, self.dataset
        from awml_harness.dataset import check_not_empty

        io = dataclasses.replace(self.cfg.runtime_io, info_file=q.info_file, data_root=q.data_root or self.cfg.runtime_io.data_root)
        cfg = dataclasses.replace(self.cfg, runtime_io=io)
        adapter = type(self.adapter)(cfg)
        return adapter, check_not_empty(adapter.dataset(), cfg)

    def plan(self) -> tuple[CalibrationPlan, str]:
        """The calibration samples and the digest of their preprocessed inputs."""
        if self._plan is None:
            from awml_harness.export.calibration import inputs_digest

            q, ev = self.cfg.quantization, self.cfg.evaluation
            adapter, dataset = self.source()
            same = q.info_file is None
            evaluated = set(range(len(dataset) if ev.num_samples == -1 else min(ev.num_samples, len(dataset)))) \
                if same and ev.enabled else set()
            verified = set(self.data.verification_indices()) if same else set()
            indices, _ = choose_samples(len(dataset), q.num_samples, q.seed, evaluated | verified)
            ids: list[str] = []

            def prepared() -> Iterator[Prepared]:
                for i in indices:
                    p = adapter.preprocess(dataset[i])
                    ids.append(p.sample_id)
                    yield p

            digest = inputs_digest(prepared())
            plan = CalibrationPlan(
                source="evaluation dataset" if same else str(q.info_file), indices=tuple(indices), ids=tuple(ids),
                requested=q.num_samples, available=len(dataset),
                overlap_evaluation=tuple(ids[k] for k, i in enumerate(indices) if i in evaluated),
                overlap_verification=tuple(ids[k] for k, i in enumerate(indices) if i in verified), inputs=q.inputs)
            self._plan = (plan, digest)
        return self._plan

    def samples(self) -> Iterator[tuple[Prepared, Any]]:
        """(prepared, target) of every calibration sample, preprocessed on demand."""
        adapter, dataset = self.source()
        for i in self.plan()[0].indices:
            yield adapter.preprocess(dataset[i]), adapter.target(dataset[i])

    def record_feeds(self, sources: dict[str, Artifact]) -> dict[str, list[dict[str, Any]]]:
        """Every graph's inputs on the calibration samples, through the project's pipeline
        with the fp32 ONNX graphs (a downstream graph sees what its upstream one made)."""
        from awml_harness.backends.onnxruntime import OnnxRuntimeRunner
        from awml_harness.export.calibration import FeedRecorder, blank

        tp = self.thread_policy
        recorders = {g: FeedRecorder(OnnxRuntimeRunner(a.path, "cpu", tp.intra_op, inter_op=tp.inter_op))
                     for g, a in sources.items()}
        pool = self.data.runner_pool  # type: ignore[attr-defined]
        try:
            for r in recorders.values():
                r.activate()
            for prepared, _ in self.samples():
                pool.run_with(recorders, prepared)
        finally:
            for r in recorders.values():
                r.deactivate()
        feeds = {g: r.feeds for g, r in recorders.items()}
        return {g: blank(f) for g, f in feeds.items()} if self.cfg.quantization.inputs == "zeros" else feeds

    # -- artifacts -------------------------------------------------------------------------
    def int8_artifacts(self) -> dict[str, Artifact]:
        """The plain int8 graphs (precision_policy "int8", or any policy's onnx-int8 backend)."""
        if self._int8 is None:
            from awml_harness.export import int8
            from awml_harness.export.int8_artifact import SUMMARY_FILE, build_int8, read_summary
            from awml_harness.progress import step

            base = self.artifacts.onnx_artifacts("fp32")
            plan, digest = self.plan()
            q = self.cfg.quantization
            settings = {k: v for k, v in to_builtin(q).items() if k != "search_metric"}
            key = {"kind": "onnx-int8", "format": INT8_FORMAT, "sources": {n: a.key for n, a in base.items()},
                   "calibration": {"ids": list(plan.ids), "source": plan.source, "inputs": digest},
                   "settings": settings, "quantizer": int8.quantizer_versions(q.quantizer), "code": _code(),
                   "cache": file_sha256(q.calibration_cache) if q.calibration_cache else None}
            whole = self.artifacts.store.get_or_build(
                "int8", key, step(f"export {self.cfg.id} onnx int8 ({q.method}, {len(plan.indices)} samples)",
                                  lambda tmp: build_int8(base, tmp, self.record_feeds(base), q, plan.as_dict())),
                rebuild_before=self.options.rebuild_before)
            self.summary = {**read_summary(whole.folder), "reused": whole.reused, "key": whole.key,
                            "build_seconds": round(whole.build_seconds, 3)}
            self._int8 = (whole, _views(whole, self.summary["files"], SUMMARY_FILE))
        return self._int8[1]

    def auto_int8_artifacts(self) -> dict[str, Artifact]:
        """precision_policy="auto_int8": the search's graphs, one artifact for every graph."""
        from awml_harness.export import auto_int8
        from awml_harness.export.auto_mixed import tolerance_key

        self.int8_artifacts()
        assert self._int8 is not None and self.summary is not None
        whole_int8 = self._int8[0]
        ctx, ev = self.data, self.cfg.evaluation
        scenario = int8_scenario(self.cfg)
        indices = ctx.verification_indices()
        name = next((n for n, s in ev.specs().items() if s.backend.value == "onnx" and s.precision == "int8"), "onnx-int8")
        searched = [(ctx.prepared(i), self.adapter.target(self.dataset[i])) for i in indices]
        searched += list(self.samples())
        samples = {"verification": indices, "calibration": list(self.plan()[0].ids), "count": len(searched)}
        metric_rules = {k: to_builtin(v) for k, v in ev.tolerance_for(name).items()}
        key = {"kind": "onnx-auto-int8", "format": INT8_FORMAT, "int8": whole_int8.key, "reference": scenario.ref.label,
               "tolerances": tolerance_key(self.cfg, scenario), "metric": metric_rules if self.cfg.quantization.search_metric
               else None, "samples": _digest(searched), "search": auto_int8.code_version()}
        pool = ctx.runner_pool  # type: ignore[attr-defined]
        verify = pool.verification_judge(scenario, indices)
        passes = ctx.passes  # type: ignore[attr-defined]  # evaluation/passes.py: the metric gate
        metrics = passes.metric_judge(name, searched) if self.cfg.quantization.search_metric else None

        def judge(runners: Any) -> tuple[bool, str]:
            ok, detail = verify(runners)
            if ok and metrics is not None:
                ok, detail = metrics(runners)
            return ok, detail

        whole = self.artifacts.store.get_or_build("auto-int8", key, lambda tmp: auto_int8.build_auto_int8(
            self.artifacts.onnx_artifacts("fp32"), whole_int8.folder, tmp, judge, metrics=metrics,
            settings=self.cfg.quantization, criterion=scenario.label + (f" + metric gate of {name}" if metrics else ""),
            samples=samples, tolerances={**key["tolerances"], "metric": key["metric"]},
            threads=self.thread_policy.intra_op), rebuild_before=self.options.rebuild_before)
        summary = auto_int8.read_summary(whole.folder)
        self.auto = {**summary, "reused": whole.reused, "key": whole.key}
        return _views(whole, summary["files"], auto_int8.SUMMARY_FILE)

    def record(self, arts: dict[str, Artifact]) -> dict[str, Any] | None:
        """The metrics JSON's project "int8" section (report/document.py int8_entry reads it)."""
        if self.cfg.handed_precision == "int8":
            if self._handed is None:
                import onnx

                from awml_harness.io.onnx_file import qdq_count

                self._handed = {"handed_over": str(self.cfg.export.onnx_path), "qdq_nodes": sum(
                    qdq_count(onnx.load(str(a.path), load_external_data=False)) for a in arts.values())}
            return self._handed
        return None if self.summary is None else {**self.summary, "auto_int8": self.auto}

    def note(self) -> str | None:
        """What the int8 graphs were calibrated on, for a failing gate's message."""
        if self.cfg.handed_precision == "int8":
            return (f"int8 graph handed over as export.onnx_path={self.cfg.export.onnx_path} "
                    "(calibrated elsewhere; its calibration is not known here)")
        if self.summary is None:
            return None
        s = self.summary
        text = (f"int8 calibration: {s['method']} ({s['quantizer']['quantizer']}), {s['samples']['description']}; "
                f"ranges sha256 {str(s.get('ranges_digest'))[:12]}")
        if self.auto is not None:
            text += f"; auto_int8 left {self.auto['unquantized_node_count']} node(s) unquantized"
        return text


def int8_scenario(cfg: Any) -> Any:
    """The scenario whose tolerances auto_int8 must meet: the configured one testing onnx
    int8 (first for this export mode), else pytorch:cpu vs onnx-int8:cpu."""
    from awml_harness.config.schema import Backend, Scenario

    for sc in [*cfg.scenarios(), *(s for scs in cfg.verification.scenarios.values() for s in scs)]:
        if sc.test_backend is Backend.ONNX and sc.test_precision == "int8":
            return sc
    return Scenario(Backend.PYTORCH, Backend.ONNX, test_precision="int8")


def _views(whole: Artifact, files: dict[str, str], summary_file: str) -> dict[str, Artifact]:
    """One Artifact per graph over the shared folder: its graph, ranges, cache and the summary."""
    out = {}
    for graph, main in files.items():
        stem = main.removesuffix(".onnx")
        own = {f: meta for f, meta in whole.files.items() if f == summary_file or f.startswith(stem)}
        out[graph] = dataclasses.replace(whole, name=f"{graph}-int8", main=main, files=own)
    return out


def _digest(samples: list[tuple[Prepared, Any]]) -> str:
    from awml_harness.export.calibration import inputs_digest

    return inputs_digest(p for p, _ in samples)


def _code() -> str:
    here = Path(__file__).resolve().parent.parent / "export"
    h = hashlib.sha256()
    for name in ("int8.py", "int8_artifact.py", "int8_modelopt.py", "calibration.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]
