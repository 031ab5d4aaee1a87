"""What the core's collaborators look like, so a function that takes "the context of a
config" or "the run's session" says which members it uses instead of `Any`.

Structural types (typing.Protocol) on the lowest floor: a module low in the layers can
name the session or a config's context without importing them (which would climb a
floor), and a test can hand in a small stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import BackendSpec, DeployConfig, Scenario


class EvaluatorLike(Protocol):
    """An evaluator (project.Evaluator): compact predictions in, metrics out."""

    headline: ClassVar[str]
    directions: ClassVar[Mapping[str, str]]

    def add(self, sample_id: str, prediction: Any, target: Any) -> None: ...

    def compute(self) -> dict[str, Any]: ...


class AdapterLike(Protocol):
    """The members of a project adapter (project.ProjectAdapter) the core calls from
    below the project API: its evaluator, detections, matching defaults and pipeline."""

    cfg: DeployConfig

    def evaluator(self) -> EvaluatorLike: ...

    def detections(self, prediction: Any) -> Any: ...

    def match_settings(self) -> Mapping[str, Any]: ...

    def graph_names(self) -> tuple[str, ...]: ...

    def preprocess(self, sample: Any) -> Any: ...

    def forward(self, prepared: Any, run_graph: Any, timer: Any) -> dict[str, Any]: ...

    def postprocess(self, outputs: Mapping[str, Any], prepared: Any) -> Any: ...


class ContextLike(Protocol):
    """One deploy config's run state (session.ProjectContext)."""

    cfg: DeployConfig
    adapter: AdapterLike  # (a project.ProjectAdapter: the whole adapter API)
    thread_policy: Any  # threads.ThreadPolicy

    @property
    def graphs(self) -> Mapping[str, Any]: ...

    @property
    def checkpoint_digest(self) -> str: ...

    @property
    def code_digests(self) -> dict[str, str]: ...

    def prepared(self, index: int) -> Any: ...

    def onnx_artifacts(self, precision: str = "fp32") -> Mapping[str, Any]: ...

    def runners(self, spec: BackendSpec) -> Mapping[str, Any]: ...

    def reference_result(self, spec: BackendSpec, index: int) -> Any: ...

    def verification_indices(self) -> list[int]: ...

    def verification_judge(self, scenario: Scenario, indices: Sequence[int]) -> Any: ...

    def num_eval_samples(self) -> int: ...


class HarnessLike(Protocol):
    """The run's session (session.HarnessSession)."""

    configs: dict[str, DeployConfig]
    options: Any  # context.data.RunOptions

    def adapter(self, config_id: str) -> Any: ...

    def context(self, config_id: str) -> ContextLike: ...

    def thread_policies(self) -> dict[str, dict[str, Any]]: ...
