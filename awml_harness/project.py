"""The contract between the core and a project, and how a project is found.

A project lives in `projects/<Name>/project.py` and defines `Project`, a subclass of
:class:`ProjectAdapter`. The deploy config names it (`project = "MyDetector"`); the
core finds the folder by one rule (:func:`project_search_roots`: upward from the config
file, from the files it inherits, then from the rootdir) and imports it by file path
under a private package name, so adding a project never means editing `awml_harness/`
and a user's own `projects` package (AWML) stays theirs. A name no folder answers is
looked up in the entry-point group :data:`ENTRY_POINT_GROUP`, where any installed
distribution registers its projects (`MyDetector = "my_pkg.project:Project"`).

The pipeline is split so that every backend runs the same Python:

    sample --preprocess--> Prepared(inputs, meta)          once per sample, shared
    Prepared --forward(run_graph)--> raw outputs            only run_graph differs
    raw outputs --postprocess--> prediction (compact)       what the evaluator keeps

`forward` receives a callable that executes one Graph by name on whatever backend is
under test; a multi-graph project does its in-between work (the pillar scatter) there.
"""

from __future__ import annotations

import importlib
import importlib.util
import math
import re
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from awml_harness.config.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.autoware import PackageValue
    from awml_harness.config.schema import DeployConfig
    from awml_harness.graph import Graph
    from awml_harness.matching import Detections

#: run_graph(name, feeds) -> outputs; host numpy arrays in and out.
GraphCaller = Callable[[str, Mapping[str, np.ndarray]], Mapping[str, np.ndarray]]


@dataclass(frozen=True)
class Prepared:
    """A preprocessed sample: graph feeds plus whatever postprocess needs (scale, ids)."""

    sample_id: str
    inputs: Mapping[str, np.ndarray]
    meta: Mapping[str, Any] = field(default_factory=dict)


class StageTimer:
    """Accumulates wall time per named stage (preprocess, each graph, postprocess ...)."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}

    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.times.setdefault(stage, []).append(time.perf_counter() - start)


class NullTimer(StageTimer):
    @contextmanager
    def __call__(self, stage: str) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class ModelSize:
    """What a project's settings will ask of the machine, estimated from the settings
    alone (no torch, nothing built), so a width typed with three zeros too many is a
    config error naming the key instead of a 36 TB allocation or a swapping machine.
    Checked against `limits.max_parameters` and `limits.max_elements` when the config loads."""

    #: settings key (under model_cfg) -> the parameters it sizes; the largest is named first
    parameters: Mapping[str, int]
    #: settings key -> elements of the largest activation tensor (batch 1) it sets; empty
    #: where the shapes are only known once the data is read
    activations: Mapping[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(sum(self.parameters.values()))


def declared_input_shape(cfg: DeployConfig, graph: str, input_name: str) -> tuple[int, ...] | None:
    """The largest shape the config declares for one graph input, without its batch axis:
    `model_io.input_shape`, or the largest `max_shape` of the TensorRT profiles. None when
    the config declares none (the shape then comes from the data)."""
    from awml_harness.graph import profile_input

    shapes = [tuple(p.max_shape[1:]) for mi in cfg.backend_config.model_inputs for k, p in mi.input_shapes.items()
              if profile_input(k, graph, (input_name,))]
    if cfg.model_io.input_shape is not None:
        shapes.append(tuple(cfg.model_io.input_shape))
    return max(shapes, key=lambda shape: math.prod(shape)) if shapes else None


class Evaluator(ABC):
    """Accumulates compact predictions with their targets, then computes metrics once.

    `add` receives compact builtin/numpy data only. Under xdist the core ships those
    predictions to the controller and replays them into a fresh evaluator in sample
    order, so evaluators need no merge logic of their own.
    """

    #: the metric the summary table leads with, e.g. "accuracy" or "mAP".
    headline: ClassVar[str]
    #: which way each scalar metric gets better: "higher", "lower", or "none" for values
    #: that are no quality (counts; reported, never gated). Keys are metric names or
    #: glob patterns (`mAP_*`), exact names first, then patterns in order. `num_*` is
    #: "none" unless declared otherwise; a metric named nowhere is "undeclared" and is
    #: gated (and diffed) both ways (awml_harness/evaluation/gate.py).
    directions: ClassVar[Mapping[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        from awml_harness.directions import check_directions

        check_directions(cls.__dict__.get("directions", {}), f"{cls.__module__}.{cls.__qualname__}")

    @abstractmethod
    def add(self, sample_id: str, prediction: Any, target: Any) -> None: ...

    @abstractmethod
    def compute(self) -> dict[str, Any]:
        """Flat scalars plus optional nested dicts (per-class values). JSON-ready."""


class DeploymentHooks:
    """The optional members of ProjectAdapter about the deployed form: how a config's
    shapes map onto the project, and the Autoware package (see ProjectAdapter)."""

    #: why this project's graphs() fixes which axes are dynamic itself (None: graphs take the
    #: config's model_io / onnx_config dynamic_axes, as single_input_graph does). When set,
    #: dynamic axes a config declares are reported as ignored, with this reason.
    fixed_dynamic_axes: ClassVar[str | None] = None
    #: `"<graph>.<input>"` -> (axis, settings field): the TensorRT profile a config writes for
    #: that input gives the field its (min, opt, max) along that axis, where the settings
    #: leave the field None (the loader, config/load.py settings_from_profiles)
    profile_settings: ClassVar[Mapping[str, tuple[int, str]]] = {}
    #: file of the Autoware package -> the JSON schema (draft-07, a path relative to the
    #: project's folder) it must validate against (test_package[<config>-<file>-schema])
    autoware_schemas: ClassVar[Mapping[str, str]] = {}

    # -- Autoware package (optional) --------------------------------------------------
    def autoware_package(self, onnx_files: Mapping[str, Path]) -> Mapping[str, str] | None:
        """The files Autoware's node for this model reads besides the ONNX files, derived
        from the settings: {file name: text}. `onnx_files`: graph -> its ONNX file, already
        in the package folder under the name the package gives it. The core writes the
        files into that folder with `deploy_metadata.yaml` (the `autoware` export target).
        None: the project ships no package. A model the node cannot run raises
        awml_harness.autoware.PackageError naming the setting."""
        return None

    def autoware_metadata(self) -> Mapping[str, Any]:
        """Keys of `deploy_metadata.yaml` besides the core's (what made the package)."""
        return {}

    def autoware_checks(self) -> Mapping[tuple[str, str], Callable[[Mapping[str, Path]], PackageValue]]:
        """(package file, key) -> a function of the exported ONNX files (graph -> path)
        giving what the model decides for that key (awml_harness.autoware.PackageValue).
        test_package compares each with the package's value; the keys are known without
        building anything (they name the tests)."""
        return {}


class ProjectAdapter(DeploymentHooks, ABC):
    """Base of every project: the whole contract between a project and the core.

    Required (checked when a config naming the project loads, `check_project`):
      name, task_type                class attributes: the project's name and task
      graph_names()                  the graphs' names, without building the model
      build_model()                  the PyTorch model, checkpoint loaded
      graphs(model)                  one Graph per ONNX file, named as graph_names()
      dataset(), target(sample)      the samples and their ground truth
      preprocess(sample)             -> Prepared (once per sample, shared by the backends)
      postprocess(outputs, prepared) -> a compact prediction
      evaluator()                    -> Evaluator (metrics; `headline`, `directions`)
      forward(prepared, run_graph, timer)
                                     required only with several graphs (the default runs one)
      settings_cls                   required when a config sets model_cfg (a frozen dataclass,
                                     validated like the core schema)

    Optional (the default in brackets):
      codebase [None]                the OpenMMLab codebase a config without `project` maps to
      model_io_aliases, model_io_pipeline_tensors [{}]   how the seed's model_io maps onto graphs
      load_settings, translate_openmmlab [model_cfg as written; an `openmmlab.py` beside project.py]
      check_config(cfg) [nothing]    project-specific config checks (ConfigError)
      model_size(cfg) [None]         the model's estimated size, bounded by `limits`
      detections(prediction) [None]  boxes, so verification matches them (matching.Detections)
      match_settings() [{}]          box matching defaults
      has_dynamic_shapes() [from the config's dynamic axes]  whether the shape sweep runs
      single_input_graph(...)        a helper for one-input, one-output projects
      fixed_dynamic_axes [None]      why graphs() decides its own dynamic axes (the config's
                                     model_io/onnx_config dynamic_axes are then reported as ignored)
      profile_settings [{}]          "<graph>.<input>" -> (axis, settings field): a TensorRT
                                     profile the config writes gives that field (min, opt, max)
      autoware_package(onnx_files) [None]  the parameter files Autoware's node for the model
                                     reads, {file name: text}, written beside the ONNX files
      autoware_metadata() [{}]       project keys of the package's deploy_metadata.yaml
      autoware_schemas [{}]          package file -> its JSON schema (relative to the project folder)
      autoware_checks() [{}]         (file, key) -> what the model decides for it (test_package)
    """

    name: ClassVar[str]
    #: the project's task, any name the project chooses:
    #: the core keeps no list; a deploy config's `task_type` must equal it (config error)
    task_type: ClassVar[str]
    #: the OpenMMLab codebase its models come from (`codebase_config.type` of an AWML deploy
    #: config: "mmdet", "mmdet3d", "mmpretrain"); lets a config without `project` find it
    codebase: ClassVar[str | None] = None
    settings_cls: ClassVar[type | None] = None
    #: How the seed's `model_io` names map onto this project's graphs. The seed writes
    #: model_io for the PyTorch model as a whole; a project whose exported graphs see other
    #: tensors (a numpy stage before or between them, a head output renamed) declares it
    #: here, and the loader rewrites model_io before test_export checks it
    #: (`awml_harness.config.seed.model_io_onto_graphs`). Defaults: nothing is mapped, so
    #: every model_io name must be an input/output of an exported graph.
    #: - model-level name -> the graph tensor it is (checked under that name)
    model_io_aliases: ClassVar[Mapping[str, str]] = {}
    #: - model-level name -> why it is no graph tensor (the project's pipeline makes or
    #:   consumes it outside every graph); such a name is reported as ignored, not checked
    model_io_pipeline_tensors: ClassVar[Mapping[str, str]] = {}
    #: deploy configs, relative to the folder of the module defining the class, that a run of
    #: the installed suites takes when it names none (`pytest --pyargs awml_harness.suites`
    #: with no --deploy-cfg and no ini key awml_deploy_configs), for a project registered in
    #: the entry-point group ENTRY_POINT_GROUP; e.g. ("configs/deploy_config.py",)
    default_configs: ClassVar[tuple[str, ...]] = ()

    def __init__(self, cfg: DeployConfig) -> None:
        self.cfg = cfg
        self.settings = cfg.model_settings  # instance of settings_cls (or None)

    # -- config (class level: runs at session start, must not import torch) ------------
    @classmethod
    def load_settings(cls, model_cfg: Any, config_dir: Path) -> Any:
        """`model_cfg` as given in the deploy config -> `settings_cls` instance.
        A string is a path (relative to the deploy config) to a .py/.yaml file."""
        from awml_harness.config.read import read_file
        from awml_harness.config.validation import from_mapping

        assert cls.settings_cls is not None
        translated = cls.translate_openmmlab(model_cfg, config_dir)
        if translated is not None:
            return translated
        if isinstance(model_cfg, (str, Path)):
            path = Path(model_cfg)
            data = read_file(path if path.is_absolute() else config_dir / path)
            data = {k: v for k, v in data.items() if not str(k).startswith("_")}
            return from_mapping(cls.settings_cls, data, "model_cfg")
        return from_mapping(cls.settings_cls, model_cfg or {}, "model_cfg")

    @classmethod
    def translate_openmmlab(cls, model_cfg: Any, config_dir: Path) -> Any | None:
        """Extension point for OpenMMLab model configs: a project that accepts them puts
        `load(model_cfg, config_dir) -> settings | None` in `openmmlab.py` beside its
        `project.py`; None (or no such module) means "not an OpenMMLab config"."""
        package = cls.__module__.rpartition(".")[0]
        if not package:
            return None
        try:
            module = importlib.import_module(f"{package}.openmmlab")
        except ModuleNotFoundError as exc:
            if exc.name == f"{package}.openmmlab":
                return None
            raise
        return module.load(model_cfg, config_dir)

    @classmethod  # noqa: B027 - an optional hook: a no-op unless a project overrides it
    def check_config(cls, cfg: DeployConfig) -> None:
        """Project-specific checks across sections; raise ConfigError with the key."""

    @classmethod
    def model_size(cls, cfg: DeployConfig) -> ModelSize | None:
        """Optional: the parameters and the largest activation `cfg.model_settings` ask
        for, estimated without building anything (see ModelSize). None: no bound."""
        return None

    # -- model ------------------------------------------------------------------------
    @abstractmethod
    def build_model(self) -> Any:
        """The PyTorch model on CPU in eval mode with the checkpoint loaded."""

    @abstractmethod
    def graphs(self, model: Any) -> Sequence[Graph]:
        """The exportable pieces of `model`, in execution order."""

    def single_input_graph(self, name: str, model: Any, example: np.ndarray, in_name: str, out_name: str) -> Graph:
        """For `graphs()` of a one-input, one-output model: the graph as the deploy config
        declares it. `example` is repeated to `model_io.batch_size`; dynamic axes come from
        `model_io` and then `onnx_config` (the later wins per axis), with axis 0 of both
        named "batch" when the batch is dynamic; TensorRT profiles are the
        `backend_config.model_inputs` entries for `in_name`."""
        from awml_harness.graph import Graph, ShapeRange, profile_input

        cfg = self.cfg
        batch = cfg.model_io.batch_size
        if batch is not None and batch > 1:
            example = np.repeat(example, batch, axis=0)
        axes: dict[str, dict[int, str]] = {}
        for source in (cfg.model_io.dynamic_axes, cfg.onnx_config.dynamic_axes):
            for axis_owner, mapping in source.items():
                axes.setdefault(axis_owner, {}).update({int(k): str(v) for k, v in mapping.items()})
        if batch is None:
            axes.setdefault(in_name, {}).setdefault(0, "batch")
            axes.setdefault(out_name, {}).setdefault(0, "batch")
        profiles = []
        for mi in cfg.backend_config.model_inputs:
            mine = [p for k, p in mi.input_shapes.items() if profile_input(k, name, (in_name,))]
            if mine:  # both key forms in one entry: the one written last
                p = mine[-1]
                profiles.append({in_name: ShapeRange(tuple(p.min_shape), tuple(p.opt_shape), tuple(p.max_shape))})
        return Graph(name=name, module=model, example_inputs={in_name: example}, input_names=(in_name,),
                     output_names=(out_name,), dynamic_axes=axes, profiles=tuple(profiles))

    # -- data -------------------------------------------------------------------------
    @abstractmethod
    def dataset(self) -> Sequence[Any]:
        """Evaluation samples (indexable, sized). Deterministic: same order every run."""

    @abstractmethod
    def target(self, sample: Any) -> Any:
        """Ground truth of `sample` in the compact form the evaluator takes."""

    # -- pipeline ---------------------------------------------------------------------
    @abstractmethod
    def preprocess(self, sample: Any) -> Prepared: ...

    def forward(self, prepared: Prepared, run_graph: GraphCaller, timer: StageTimer) -> dict[str, Any]:
        """Default: the single graph on the prepared inputs. Returns the raw outputs
        that verification compares (nested dicts/lists of arrays are fine)."""
        graph_names = self.graph_names()
        if len(graph_names) != 1:
            raise NotImplementedError(f"{self.name}: a project with {len(graph_names)} graphs must override forward()")
        with timer(graph_names[0]):
            return dict(run_graph(graph_names[0], prepared.inputs))

    @abstractmethod
    def postprocess(self, outputs: Mapping[str, Any], prepared: Prepared) -> Any:
        """Compact prediction (builtin types / small numpy arrays)."""

    @abstractmethod
    def graph_names(self) -> tuple[str, ...]:
        """Names of the graphs, without building the model (used for test ids)."""

    @abstractmethod
    def evaluator(self) -> Evaluator: ...

    # -- optional ---------------------------------------------------------------------
    def detections(self, prediction: Any) -> Detections | None:
        """Detection projects return their prediction as core Detections so
        verification can match boxes instead of comparing list positions."""
        return None

    def has_dynamic_shapes(self) -> bool:
        """Whether the shape sweep applies (decided without building the model). Default:
        the config declares dynamic axes or a dynamic batch."""
        cfg = self.cfg
        return bool(cfg.onnx_config.dynamic_axes or cfg.model_io.dynamic_axes or cfg.model_io.batch_size is None)

    def match_settings(self) -> Mapping[str, Any]:
        """Keyword arguments for :func:`awml_harness.matching.match_detections`."""
        return {}


#: where project adapters live on sys.modules: `<PRIVATE_PACKAGE>.<Name>.project`. Never
#: `projects.<Name>`: a user's AWML checkout owns the name `projects` (its
#: `projects.CenterPoint.models` is what `custom_imports` and the registry path import).
PRIVATE_PACKAGE = "awml_harness._projects"


def project_search_roots(config_path: Path | str, rootdir: Path | str | None = None) -> list[Path]:
    """The one lookup rule for `project = "<Name>"`, wherever the config lives.

    Folders searched, in this order, each walked upward to the filesystem root for
    `projects/<Name>/project.py`:

    1. the deploy config's own folder;
    2. the folders of the files it inherits through `_base_` (depth first, in the order
       written), so a config outside the tree that inherits a shipped one finds the
       shipped project;
    3. the pytest rootdir (or the current directory).

    `_base_` is read without running the file (a literal assignment)."""
    path = Path(config_path).resolve()
    roots: list[Path] = [path.parent]
    for base in _base_files(path, set()):
        if base.parent not in roots:
            roots.append(base.parent)
    root = Path(rootdir).resolve() if rootdir is not None else Path.cwd().resolve()
    if root not in roots:
        roots.append(root)
    return roots


def _base_files(path: Path, seen: set[Path]) -> list[Path]:
    from awml_harness.config.bases import YAML_SUFFIXES, declared_bases

    if path in seen or path.suffix not in (".py", *YAML_SUFFIXES) or not path.is_file():
        return []
    seen.add(path)
    out: list[Path] = []
    for base in declared_bases(path):
        if "::" in base:  # a package's config (`mmdet::...`): no project lives beside it
            continue
        target = (path.parent / base).resolve()
        out.append(target)
        out.extend(_base_files(target, seen))
    return out


def find_project_dir(name: str, search_from: Sequence[Path]) -> Path | None:
    """`projects/<name>/project.py` by the lookup rule; the exact name first, then a
    folder whose name differs only in case (`centerpoint`, as AWML's new deployment CLI
    writes its projects, finds `projects/CenterPoint/`) when exactly one such folder
    lies at the first level that has any."""
    for start in search_from:
        for folder in (start, *start.parents):
            candidate = folder / "projects" / name / "project.py"
            if candidate.is_file():
                return candidate.parent.resolve()
    if not name or "/" in name or name != name.strip():
        return None
    for start in search_from:
        for folder in (start, *start.parents):
            base = folder / "projects"
            if not base.is_dir():
                continue
            try:
                matches = [p for p in base.iterdir() if p.name.lower() == name.lower() and (p / "project.py").is_file()]
            except OSError:
                continue
            if len(matches) == 1:
                return matches[0].resolve()
    return None


def _private_package(folder: Path) -> str:
    """Import `folder` (a project: project.py and its sibling modules) as a package under
    PRIVATE_PACKAGE and return its module name. Siblings import each other relatively
    (`from .settings import ...`). Two folders with one name get distinct packages."""
    import hashlib
    import types

    if PRIVATE_PACKAGE not in sys.modules:
        parent = types.ModuleType(PRIVATE_PACKAGE, "Project adapters loaded by file path (see project.py).")
        parent.__path__ = []  # type: ignore[attr-defined]
        sys.modules[PRIVATE_PACKAGE] = parent
    name = f"{PRIVATE_PACKAGE}.{folder.name}"
    existing = sys.modules.get(name)
    if existing is not None and list(getattr(existing, "__path__", [])) != [str(folder)]:
        name = f"{name}_{hashlib.sha256(str(folder).encode()).hexdigest()[:8]}"
        existing = sys.modules.get(name)
    if existing is not None:
        return name
    init = folder / "__init__.py"
    if init.is_file():
        spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(folder)])
        if spec is None or spec.loader is None:  # pragma: no cover - defensive
            raise ImportError(init)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    else:
        module = types.ModuleType(name)
        module.__path__ = [str(folder)]  # type: ignore[attr-defined]
        module.__file__ = None
        module.__package__ = name
        sys.modules[name] = module
    return name


#: where installed distributions register projects: `Name = "module:Class"`, e.g. in a
#: pyproject.toml `[project.entry-points."awml_harness.projects"]`
ENTRY_POINT_GROUP = "awml_harness.projects"


def registered_projects() -> dict[str, list[Any]]:
    """The entry points of ENTRY_POINT_GROUP by name; nothing is imported."""
    from importlib.metadata import entry_points

    found: dict[str, list[Any]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, []).append(ep)
    return found


def registered_project(name: str) -> str | None:
    """`module:Class` that ENTRY_POINT_GROUP registers under `name`, None when none does;
    ConfigError when two distributions register the name with different classes."""
    eps = registered_projects().get(name, [])
    values = sorted({ep.value for ep in eps})
    if len(values) > 1:
        owners = ", ".join(f"{getattr(ep.dist, 'name', '?')} ({ep.value})" for ep in eps)
        raise ConfigError("project", name, f"a name one installed distribution registers in the entry-point group "
                                           f"{ENTRY_POINT_GROUP}; {len(eps)} register it: {owners}")
    return values[0] if values else None


def registered_default_configs() -> list[Path]:
    """The `default_configs` of every project in ENTRY_POINT_GROUP, in name order: what a run
    of the installed suites takes when it names no deploy config (plugin.py). Imports each
    registered project's module, which imports no torch (adapters import it lazily)."""
    import inspect

    paths: list[Path] = []
    for name in sorted(registered_projects()):
        ref = registered_project(name)
        assert ref is not None  # a name registered_projects() listed
        cls = load_project_class(ref)
        folder = Path(inspect.getfile(cls)).resolve().parent
        for entry in cls.default_configs:
            path = folder / entry
            if not path.is_file():
                raise ConfigError(f"{cls.__module__}.{cls.__qualname__}.default_configs", entry,
                                  f"a deploy config file relative to {folder} (project {name!r} of the entry-point "
                                  f"group {ENTRY_POINT_GROUP})")
            paths.append(path)
    return paths


def resolve_project(name: str, search_from: Sequence[Path]) -> str:
    """`pkg.module:Class` unchanged, or the absolute folder of `projects/<Name>` found by
    :func:`project_search_roots`' rule, or else the `module:Class` the entry-point group
    ENTRY_POINT_GROUP registers as `<Name>`; ConfigError when there is none."""
    if ":" in name or Path(name).is_absolute():
        return name
    folder = find_project_dir(name, search_from)
    if folder is not None:
        return str(folder)
    registered = registered_project(name)
    if registered is not None:
        return registered
    searched = ", ".join(str(p) for p in search_from)
    names = ", ".join(sorted(registered_projects())) or "none"
    raise ConfigError(
        "project", name,
        f"a folder projects/{name}/project.py above the deploy config, above a file it inherits "
        f"through _base_, or above the rootdir (searched upward from: {searched}); a project registered "
        f"in the entry-point group {ENTRY_POINT_GROUP} (registered: {names}); or 'package.module:Class'",
    )


_GRAPH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


def check_project(cls: type[ProjectAdapter], cfg: DeployConfig) -> None:
    """The contract of ProjectAdapter, checked once a config naming `cls` has loaded, so a
    project's omission is one config error naming the project (exit 4), not a traceback
    deep inside the first test that needs the missing piece."""
    where = f"{cls.__module__}.{cls.__qualname__}"
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise ConfigError("project", cfg.project, f"a project class implementing every required member; {where} "
                                                  f"lacks {', '.join(missing)} (see awml_harness.project.ProjectAdapter)")
    if not isinstance(getattr(cls, "name", None), str) or not cls.name:
        raise ConfigError("project", cfg.project, f"a project class with a `name`; {where} declares none")
    names = cls(cfg).graph_names()
    if not isinstance(names, tuple) or not names or len(set(names)) != len(names) or not all(
            isinstance(n, str) and _GRAPH_NAME.fullmatch(n) for n in names):
        raise ConfigError("project", cfg.project, f"graph_names() returning a tuple of distinct graph names "
                                                  f"(letters, digits, _ . -); {where} returns {names!r}")
    if len(names) > 1 and cls.forward is ProjectAdapter.forward:
        raise ConfigError("project", cfg.project, f"a forward() override: {where} exports {len(names)} graphs "
                                                  f"{list(names)} and the default forward runs a single one")


def load_project_class(name: str, search_from: Sequence[Path] = ()) -> type[ProjectAdapter]:
    """`name`: a folder under some `projects/` (see :func:`project_search_roots`), the
    absolute folder :func:`resolve_project` returned, or `pkg.module:Class`. Every mistake
    is a ConfigError on `project` (exit 4), never a traceback."""
    ref = resolve_project(name, search_from)
    if ":" in ref and not Path(ref).is_absolute():
        module_name, _, cls_name = ref.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError("project", name, f"an importable module before ':' ({type(exc).__name__}: {exc})") from None
        except Exception as exc:
            raise ConfigError("project", name, f"a module that imports cleanly; importing {module_name!r} raised "
                                               f"{type(exc).__name__}: {exc}") from None
        cls = getattr(module, cls_name, None)
    else:
        folder = Path(ref)
        package = _private_package(folder)
        module = importlib.import_module(f"{package}.project")
        cls = getattr(module, "Project", None)
    if not (isinstance(cls, type) and issubclass(cls, ProjectAdapter)):
        raise ConfigError("project", name, "a module defining `Project` (or the class named after ':'), "
                                           "a subclass of awml_harness.project.ProjectAdapter")
    return cls
