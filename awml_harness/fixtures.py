"""Public fixtures of the harness and the case generation behind the suites' parameters.

Registered by the plugin once configs are loaded. Fixtures are thin: state lives in
HarnessSession (config.stash), so xdist workers and serial runs build the same things.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from awml_harness.recorder import RECORDS_KEY, junit_properties
from awml_harness.stash_keys import SESSION_KEY

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.protocols import HarnessLike

CASE_FIXTURES = ("awml_export_case", "awml_verify_case", "awml_eval_case", "awml_latency_case", "awml_shape_case",
                 "awml_package_case", "awml_profile_case")


def generate_cases(session: HarnessLike, kind: str) -> list[Any]:
    from awml_harness.cases import (
        AUTOWARE,
        PACKAGE,
        BackendCase,
        ChunkCase,
        ExportCase,
        PackageCase,
        ShapeCase,
        VerifyCase,
        export_targets,
    )
    from awml_harness.context.package import has_package, package_cases

    cases: list[Any] = []
    for cid, cfg in session.configs.items():
        adapter = session.adapter(cid)
        if kind == "awml_export_case":
            cases += [ExportCase(cid, g, target) for target in export_targets(cfg) for g in adapter.graph_names()]
            if cfg.package.enabled and has_package(adapter) and (cfg.export.mode != "none" or cfg.export.onnx_path):
                cases.append(ExportCase(cid, PACKAGE, AUTOWARE))
        elif kind == "awml_package_case":
            cases += [PackageCase(cid, file, key) for file, key in package_cases(adapter)]
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
            if session.options.split is not None:  # --awml-shard: a user-level split across machines
                from awml_harness.cases import SplitCase

                cases.append(SplitCase(cid, *session.options.split))
                continue
            chunks = eval_chunks(session, cid)
            if chunks > 1:
                cases += [ChunkCase(cid, k, chunks) for k in range(chunks)]
            else:
                cases += [BackendCase(cid, name, spec) for name, spec in cfg.evaluation.specs().items()]
        elif kind == "awml_latency_case" and cfg.evaluation.latency:
            cases += [BackendCase(cid, name, spec) for name, spec in cfg.evaluation.specs().items()]
        elif kind == "awml_profile_case" and (session.options.profile or cfg.evaluation.profile.enabled):
            cases += [BackendCase(cid, name, spec) for name, spec in cfg.evaluation.specs().items()]
    return cases


def eval_chunks(session: HarnessLike, config_id: str) -> int:
    """How many chunks of samples a config's evaluation is split into: as many as keep
    evaluation.chunk_min_samples samples each, at most evaluation.max_chunks.

    The same number with and without pytest-xdist, so a test id (`<config>-chunk1of2`, or
    one test per backend when the evaluation is small) does not depend on `-n` and CI
    test history lines up. Under xdist each chunk is a unit of work of its own
    (xdist_scheduling.py), so large evaluations still spread over workers; a serial run
    runs the chunks one after the other in one process (the model is set up once) and
    the controller merges them as it does under xdist. The dataset is read only when the
    config could be chunked at all (an evaluation capped below two chunks needs no count)."""
    ev = session.configs[config_id].evaluation
    if ev.max_chunks <= 1 or 0 < ev.num_samples < 2 * ev.chunk_min_samples:
        return 1
    try:
        n = session.context(config_id).num_eval_samples()
    except Exception:  # an unreadable or empty dataset: the evaluation test itself names it
        return 1
    return max(1, min(ev.max_chunks, n // ev.chunk_min_samples))


@pytest.fixture(scope="session")
def awml(pytestconfig: pytest.Config) -> Any:
    """The run's HarnessSession: configs and their lazily built contexts."""
    session = pytestconfig.stash.get(SESSION_KEY, None)
    if session is None:
        pytest.skip("no deploy config loaded")
    return session


@pytest.fixture
def awml_record(request: pytest.FixtureRequest) -> Any:
    """`awml_record(dict)` attaches a result to this test's report (travels across xdist
    as the report attribute `awml_records`); its small scalars also become junit properties."""
    from awml_harness.report.document import jsonable

    def record(data: dict[str, Any]) -> None:
        data = jsonable(data)
        request.node.stash.setdefault(RECORDS_KEY, []).append(data)
        request.node.user_properties.extend(junit_properties(data))

    return record


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: Any) -> Any:
    """Every report of a test carries the records attached so far (as user_properties did)."""
    report = yield
    records = item.stash.get(RECORDS_KEY, None)
    if records:
        report.awml_records = list(records)
    return report


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

    from awml_harness.autoware import PackageError
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
        except (CheckpointError, DataError, ExportError, ArtifactError, PackageError) as exc:
            message = f"{type(exc).__name__}: {exc}"
        if message is not None:  # without the context: no "during handling ..." chain in the log
            raise pytest.fail.Exception(message, pytrace=False) from None

    yield guard
