"""The Autoware package of one deploy config: written (an artifact beside the ONNX files)
and checked (test_package), for a project whose adapter has `autoware_package`."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from awml_harness.autoware import IO_KEY, SCHEMA_KEY, PackageVerdict
from awml_harness.backends.base import BackendUnavailable
from awml_harness.context.artifacts import ARTIFACT_FORMAT, Artifacts
from awml_harness.context.data import ContextPart, ModelData
from awml_harness.export.store import Artifact

VARIANT = "autoware"


def has_package(adapter: Any) -> bool:
    """Whether the project ships an Autoware package (overrides the hook)."""
    from awml_harness.project import ProjectAdapter

    return type(adapter).autoware_package is not ProjectAdapter.autoware_package


def package_cases(adapter: Any) -> list[tuple[str, str]]:
    """(file, key) of every test_package case of a config, known without building
    anything: each file with a schema, each ONNX file (its I/O), each key the project checks."""
    from awml_harness.export.package import onnx_names

    cfg = adapter.cfg
    if not has_package(adapter) or not (cfg.package.enabled or cfg.package.check_dir is not None):
        return []
    cases = [(file, SCHEMA_KEY) for file in adapter.autoware_schemas]
    cases += [(name, IO_KEY) for name in onnx_names(cfg, adapter.graph_names()).values()]
    cases += [key for key in adapter.autoware_checks() if key not in cases]
    return cases


class Package(ContextPart):
    def __init__(self, data: ModelData, artifacts: Artifacts) -> None:
        super().__init__(data)
        self.artifacts = artifacts

    # -- writing ------------------------------------------------------------------------------
    def artifact(self) -> Artifact:
        """The package folder, built from the fp32 ONNX artifacts (exported, or export.onnx_path)."""
        cached = self.artifacts._artifacts.get(VARIANT)  # noqa: SLF001 - the parts share one record
        if cached is not None:
            return cached["package"]
        if not has_package(self.adapter):
            raise BackendUnavailable(f"project {self.cfg.project} ships no Autoware package (autoware_package)")
        from awml_harness.config.validation import to_builtin
        from awml_harness.export import package as writer
        from awml_harness.export.store import code_digest
        from awml_harness.progress import step

        onnx = self.artifacts.onnx_artifacts("fp32")
        here = Path(__file__).resolve().parent.parent
        meta = self._metadata()
        key = {"kind": "autoware-package", "format": ARTIFACT_FORMAT, "package_format": writer.PACKAGE_FORMAT,
               "onnx": {g: a.key for g, a in onnx.items()}, "settings": to_builtin(self.cfg.model_settings),
               "params": to_builtin(self.cfg.package.params), "onnx_config": to_builtin(self.cfg.onnx_config),
               "project_code": self.artifacts.code_digests["project"], "metadata": meta,
               "code": code_digest([here / "export" / "package.py", here / "autoware.py"], here)}
        from awml_harness.autoware import PackageError

        try:
            art = self.artifacts.store.get_or_build(
                "autoware-package", key,
                step(f"write {self.cfg.id} autoware package",
                     lambda tmp: writer.build(self.adapter, onnx, tmp, meta)),
                rebuild_before=self.options.rebuild_before)
        except PackageError as exc:  # a model Autoware's node cannot run: no package (a failure under --awml-strict)
            raise BackendUnavailable(f"no Autoware package for {self.cfg.id}: {exc}") from None
        self.artifacts._artifacts[VARIANT] = {"package": art}  # noqa: SLF001 - listed with the others
        return art

    def _metadata(self) -> dict[str, Any]:
        from importlib.metadata import PackageNotFoundError, version

        try:
            harness = version("awml-harness")
        except PackageNotFoundError:  # a source checkout on the path
            harness = "unknown"
        s = self.cfg.model_settings
        return {"project": self.cfg.project, "task_type": self.cfg.task_type,
                "checkpoint_sha256": self.artifacts.checkpoint_digest,
                "model_config": getattr(s, "openmmlab_config", None), "deploy_config": self.cfg.source,
                "made_by": f"awml-harness {harness}"}

    # -- checking -----------------------------------------------------------------------------
    @functools.cached_property
    def folder(self) -> Path:
        """The package test_package checks: package.check_dir, else the one written here."""
        given = self.cfg.package.check_dir
        return Path(given) if given is not None else self.artifact().folder

    def check(self, file: str, key: str) -> PackageVerdict:
        from awml_harness import autoware

        found_file = autoware.find_file(self.folder, file)
        where = f"{self.folder}/{file}"
        if found_file is None:
            return PackageVerdict(file, key, False, None, file, "the package's files", f"{where}: no such file "
                                  f"(the node reads it; the folder has {sorted(p.name for p in self.folder.iterdir())})")
        where = str(found_file)
        if key == SCHEMA_KEY:
            return self._schema(file, found_file)
        onnx = {g: a.path for g, a in self.artifacts.onnx_artifacts("fp32").items()}
        if key == IO_KEY:
            graph = next(g for g, name in self._onnx_names().items() if name == file)
            expected = autoware.PackageValue(autoware.read_value(onnx[graph], IO_KEY),
                                             f"the exported {graph} ({onnx[graph].name})")
        else:
            check = self.adapter.autoware_checks().get((file, key))
            if check is None:
                raise KeyError((file, key))
            expected = check(onnx)
        try:
            found = autoware.read_value(found_file, key)
        except autoware.PackageError as exc:
            return PackageVerdict(file, key, False, None, expected.value, expected.source, str(exc))
        return autoware.judge(file, key, found, expected, where)

    def _onnx_names(self) -> dict[str, str]:
        from awml_harness.export.package import onnx_names

        return onnx_names(self.cfg, self.adapter.graph_names())

    def _schema(self, file: str, path: Path) -> PackageVerdict:
        import inspect

        from awml_harness import autoware

        schema = Path(inspect.getfile(type(self.adapter))).resolve().parent / self.adapter.autoware_schemas[file]
        try:
            import jsonschema  # noqa: F401
        except ImportError:
            raise BackendUnavailable("validating Autoware parameter files needs jsonschema: "
                                     "pip install 'awml-harness[autoware]'") from None
        errors = autoware.schema_errors(autoware.document(path), schema)
        message = (f"{path}: valid against {schema.name}" if not errors else
                   f"{path}: {len(errors)} violation(s) of {schema}: " + "; ".join(errors[:8]))
        return PackageVerdict(file, SCHEMA_KEY, not errors, errors, [], str(schema), message)

