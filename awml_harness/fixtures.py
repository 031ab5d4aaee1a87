"""Public fixtures of the harness and the case generation behind the suites' parameters.

Registered by the plugin once configs are loaded. Fixtures are thin: state lives in
HarnessSession (config.stash), so xdist workers and serial runs build the same things.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from awml_harness.report.sink import RECORD_TAG
from awml_harness.stash_keys import SESSION_KEY

CASE_FIXTURES = ("awml_export_case", "awml_verify_case", "awml_eval_case", "awml_latency_case", "awml_shape_case")


def generate_cases(session: Any, kind: str) -> list[Any]:
    from awml_harness.cases import BackendCase, EvalShardCase, ExportCase, ShapeCase, VerifyCase

    cases: list[Any] = []
    for cid, cfg in session.configs.items():
        adapter = session.adapter(cid)
        if kind == "awml_export_case":
            if cfg.export.mode in ("onnx", "both"):
                cases += [ExportCase(cid, g, "onnx") for g in adapter.graph_names()]
            fp16 = any(s.precision == "fp16" and s.backend.value == "onnx" for s in cfg.evaluation.specs().values())
            if fp16 and cfg.export.mode != "none":
                cases += [ExportCase(cid, g, "onnx-fp16") for g in adapter.graph_names()]
            if cfg.export.mode in ("trt", "both"):
                cases += [ExportCase(cid, g, "tensorrt") for g in adapter.graph_names()]
        elif kind == "awml_verify_case":
            n = cfg.verification.num_verify_samples
            cases += [VerifyCase(cid, sc, i) for sc in cfg.scenarios() for i in range(n)]
            if session.options.golden is not None:
                cases += [VerifyCase(cid, sc, i, golden=True) for sc in cfg.scenarios() for i in range(n)]
        elif kind == "awml_shape_case":
            scenarios = cfg.scenarios()
            if scenarios and adapter.has_dynamic_shapes():
                cases += [ShapeCase(cid, scenarios[0], w) for w in ("min", "opt", "max", "batch")]
        elif kind == "awml_eval_case":
            if not cfg.evaluation.enabled:
                continue
            shards = eval_shards(session, cid)
            if shards > 1:
                cases += [EvalShardCase(cid, k, shards) for k in range(shards)]
            else:
                cases += [BackendCase(cid, name, spec) for name, spec in cfg.evaluation.specs().items()]
        elif kind == "awml_latency_case" and cfg.evaluation.latency:
            cases += [BackendCase(cid, name, spec) for name, spec in cfg.evaluation.specs().items()]
    return cases


SHARDS_PER_WORKER = 8


def eval_shards(session: Any, config_id: str) -> int:
    """How many xdist shards a config's evaluation is split into.

    Sharding starts only when at least two workers would each get
    evaluation.shard_min_samples samples: the first shard a worker runs costs it the
    model set-up. Further shards on the same worker reuse that set-up (the context is
    per process), so the samples are then cut into SHARDS_PER_WORKER shards per worker
    (each at least one sample): xdist hands the next shard to whichever worker is free,
    so a worker slowed by another job on a shared 2-core box no longer holds the run up,
    as it did with exactly one shard per worker (issue 16, P7). The count is a multiple
    of the worker count, so evenly fast workers still get even halves."""
    if session.shards <= 1:
        return 1
    ev = session.configs[config_id].evaluation
    n = session.context(config_id).num_eval_samples()
    workers = min(session.shards, n // ev.shard_min_samples)
    if workers <= 1:
        return 1
    return workers * min(SHARDS_PER_WORKER, n // workers)


@pytest.fixture(scope="session")
def awml(pytestconfig: pytest.Config) -> Any:
    """The run's HarnessSession: configs and their lazily built contexts."""
    session = pytestconfig.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip("no deploy config loaded")
    return session


@pytest.fixture
def awml_record(request: pytest.FixtureRequest) -> Any:
    """`awml_record(dict)` attaches a result to this test's report (travels across xdist)."""
    from awml_harness.report.metrics import jsonable

    def record(data: dict[str, Any]) -> None:
        request.node.user_properties.append((RECORD_TAG, jsonable(data)))

    return record


@pytest.fixture
def awml_unavailable(pytestconfig: pytest.Config) -> Any:
    """`awml_unavailable(reason)`: skip, or fail under --awml-strict."""

    def handle(reason: str) -> None:
        __tracebackhide__ = True
        if pytestconfig.option.awml_strict:
            pytest.fail(f"--awml-strict: {reason}", pytrace=False)
        pytest.skip(reason)

    return handle


@pytest.fixture
def deploy_config(awml: Any, request: pytest.FixtureRequest) -> Any:
    """The DeployConfig of the current case (for user-written tests next to the suites)."""
    for name in CASE_FIXTURES:
        if name in request.fixturenames:
            return awml.configs[request.getfixturevalue(name).config_id]
    if len(awml.configs) == 1:
        return next(iter(awml.configs.values()))
    raise pytest.UsageError("deploy_config is ambiguous: several deploy configs and no awml case parameter")


@pytest.fixture
def project(awml: Any, deploy_config: Any) -> Any:
    """The ProjectContext (adapter, model, artifacts, runners) of the current case."""
    return awml.context(deploy_config.id)


@pytest.fixture
def guard_backend(awml_unavailable: Any) -> Iterator[Any]:
    """Context manager: BackendUnavailable -> skip (or strict failure); the harness's own
    user-facing errors (bad checkpoint, empty dataset or unreadable data file, failed export,
    unwritable work dir) -> a one-block failure message instead of a traceback through the harness."""
    from contextlib import contextmanager

    from awml_harness.backends.base import BackendUnavailable
    from awml_harness.checkpoint import CheckpointError
    from awml_harness.export.onnx import ExportError
    from awml_harness.export.store import ArtifactError
    from awml_harness.io import DataError

    @contextmanager
    def guard() -> Iterator[None]:
        __tracebackhide__ = True
        message = None
        try:
            yield
        except BackendUnavailable as exc:
            awml_unavailable(str(exc))
        except (CheckpointError, DataError, ExportError, ArtifactError) as exc:
            message = f"{type(exc).__name__}: {exc}"
        if message is not None:  # without the context: no "during handling ..." chain in the log
            raise pytest.fail.Exception(message, pytrace=False) from None

    yield guard
