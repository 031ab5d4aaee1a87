"""Artifacts of one deploy config: ONNX files (exported, external or fp16) and engines,
each under a key of everything that decides its bytes, in the run's ArtifactStore."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from awml_harness.backends.base import BackendUnavailable
from awml_harness.config.schema import BackendSpec
from awml_harness.config.validation import to_builtin
from awml_harness.context.data import ContextPart, ModelData
from awml_harness.context.quantized import Quantized
from awml_harness.export.store import Artifact, ArtifactStore, file_sha256

ARTIFACT_FORMAT = 1  # bump when the export code changes what it writes
# harness modules, besides awml_harness/export/*.py, whose code decides an ONNX file's
# bytes (graph contract, checkpoint reading and key remapping, building the model); hashed into its key
EXPORT_CODE = ("graph.py", "checkpoint.py", "openmmlab.py", "session.py", "context/data.py", "context/artifacts.py")


class Artifacts(ContextPart):
    """Exports and caches the artifacts of one config, per precision or engine variant."""

    def __init__(self, data: ModelData) -> None:
        super().__init__(data)
        self._artifacts: dict[str, dict[str, Artifact]] = {}
        self.auto_mixed: dict[str, Any] | None = None  # the auto_mixed search summary, once built
        self.store = ArtifactStore(Path(data.cfg.export.work_dir) / "artifacts")
        self.quantized = Quantized(data, self)  # int8 / auto_int8 (context/quantized.py)

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
        core = Path(__file__).resolve().parent.parent  # awml_harness/
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
        """fp32 ONNX per graph (exported, or taken from export.onnx_path); fp16 and int8 derived
        from it (a Q/DQ export.onnx_path is the int8 one itself, and there is no fp32 one)."""
        if precision in self._artifacts:
            return self._artifacts[precision]
        mode = self.cfg.export.mode
        policy = self.cfg.backend_config.common_config.precision_policy
        handed = self.cfg.handed_precision
        from awml_harness.progress import step

        if handed == "int8" and precision in ("fp32", "int8"):
            if precision == "fp32":
                raise BackendUnavailable(f"export.onnx_path={self.cfg.export.onnx_path} is an int8 (Q/DQ) graph: it "
                                         "runs as onnx-int8, and there is no fp32 ONNX to run or convert")
            arts = self._external_onnx()
        elif precision == "int8":
            arts = self.quantized.auto_int8_artifacts() if policy == "auto_int8" else self.quantized.int8_artifacts()
        elif precision == "fp32":
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
                        step(f"export {self.cfg.id} {name} onnx fp32",
                             lambda tmp, g=graph, f=file_name: export_graph(g, tmp, self.cfg.onnx_config, f)),
                        rebuild_before=self.options.rebuild_before,
                    )
        elif policy == "auto_mixed":
            arts = self._auto_mixed_artifacts()
        else:
            from awml_harness.export.fp16 import convert_to_fp16, fp16_tool_versions

            base = self.onnx_artifacts("fp32")
            arts = {}
            for name, art in base.items():
                key = {"kind": "onnx-fp16", "format": ARTIFACT_FORMAT, "source": art.key, "tools": fp16_tool_versions()}
                arts[name] = self.store.get_or_build(
                    f"{name}-fp16", key,
                    step(f"export {self.cfg.id} {name} onnx fp16", lambda tmp, a=art: convert_to_fp16(a.path, tmp)),
                    rebuild_before=self.options.rebuild_before,
                )
        self._artifacts[precision] = arts
        return arts

    def _auto_mixed_artifacts(self) -> dict[str, Artifact]:
        """precision_policy="auto_mixed": one artifact holding every graph's mixed fp16 file
        and the search summary, keyed by the fp32 sources, the tolerances and the
        verification samples, so a warm run reuses the choice without searching again.
        The search runs the reference backend, so it is handed the whole context (the
        facade, `self.data`: prepared samples, reference results, adapter)."""
        import dataclasses

        from awml_harness.export import auto_mixed
        from awml_harness.export.fp16 import fp16_tool_versions

        base = self.onnx_artifacts("fp32")
        ctx = self.data
        scenario = auto_mixed.fp16_scenario(self.cfg)
        indices = ctx.verification_indices()
        key = {"kind": "onnx-fp16-auto-mixed", "format": ARTIFACT_FORMAT,
               "sources": {n: a.key for n, a in base.items()}, "tools": fp16_tool_versions(),
               "reference": scenario.ref.label, "tolerances": auto_mixed.tolerance_key(self.cfg, scenario),
               "samples": auto_mixed.samples_digest(ctx, indices), "search": auto_mixed.code_version()}
        judge = ctx.runner_pool.verification_judge(scenario, indices)  # type: ignore[attr-defined]
        whole = self.store.get_or_build(
            "auto-mixed-fp16", key, lambda tmp: auto_mixed.build_auto_mixed(
                base, tmp, judge, scenario=scenario.label, indices=indices, tolerances=key["tolerances"],
                threads=ctx.thread_policy.intra_op),
            rebuild_before=self.options.rebuild_before,
        )
        summary = auto_mixed.read_summary(whole.folder)
        self.auto_mixed = {**summary, "reused": whole.reused, "key": whole.key}
        return {name: dataclasses.replace(whole, name=f"{name}-fp16", main=summary["files"][name],
                                          files={f: whole.files[f] for f in (summary["files"][name], auto_mixed.SUMMARY_FILE)})
                for name in base}

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
                entry = {**art.as_dict(), "variant": precision}
                if precision == "fp16" and self.auto_mixed is not None:
                    entry["auto_mixed"] = self.auto_mixed  # the metrics JSON's project "auto_mixed" section
                if precision == "int8" and (found := self.quantized.record(arts)) is not None:
                    entry["int8"] = found  # the metrics JSON's project "int8" section
                out.append(entry)
        return out

    def calibration_note(self, spec: BackendSpec) -> str | None:
        """For an int8 backend: what its graphs were calibrated on (a failing gate names it)."""
        if spec.precision != "int8":
            return None
        return self.quantized.note()
