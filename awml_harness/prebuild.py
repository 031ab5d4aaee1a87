"""Exports belong to the export step: test order and the prebuild.

Artifacts are built lazily by whichever test needs one first. Without care that is an
evaluation test (pytest collects `suites/test_evaluation.py` before `test_export.py`),
which then carries the export's ~50 s and its warnings. Two rules fix it:

- Export tests run first: `pytest_collection_modifyitems` moves them up to the first
  harness test, everything else keeps its order (under pytest-xdist the workers'
  collection order is what the config-scope scheduler hands out, so it holds there too).
- When the export tests that would build an artifact are deselected (`-k evaluation`),
  the artifact is *prebuilt*: just before the first test of that
  config, inside `pytest_runtest_protocol` but outside the test's setup/call/teardown,
  so its time is no test's duration and its output is not a test's captured output. The
  prebuild announces itself and each build has its own progress line (progress.py).
  A build that fails there is reported in one line and left to the test that needs it,
  which fails with the usual message.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from awml_harness.cases import artifact_variants, onnx_target
from awml_harness.fixtures import CASE_FIXTURES
from awml_harness.progress import emit

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.protocols import HarnessLike


def _case(item: pytest.Item) -> tuple[str, Any] | None:
    params = getattr(getattr(item, "callspec", None), "params", {})
    for name in CASE_FIXTURES:
        if params.get(name) is not None:
            return name, params[name]
    return None


def is_export_test(item: pytest.Item) -> bool:
    found = _case(item)
    return found is not None and found[0] == "awml_export_case"


def plan(harness: HarnessLike, items: list[pytest.Item]) -> dict[str, list[tuple[str, Any]]]:
    """config id -> artifacts the selected tests need and no selected export test builds."""
    needs: dict[str, dict[tuple[str, Any], None]] = {}
    covered: dict[str, set[str]] = {}
    for item in items:
        found = _case(item)
        if found is None:
            continue
        kind, case = found
        cid = case.config_id
        if cid not in harness.configs:
            continue
        cfg = harness.configs[cid]
        specs: list[Any] = []
        if kind == "awml_export_case":
            covered.setdefault(cid, set()).add(case.target)
        elif kind in ("awml_verify_case", "awml_shape_case"):
            sc = case.scenario
            specs = [sc.test] if getattr(case, "golden", False) else [sc.ref, sc.test]
        elif kind == "awml_eval_case":
            specs = list(cfg.evaluation.specs().values())  # one pass runs every backend
        elif kind == "awml_package_case":  # compared with the exported fp32 ONNX
            if cfg.export.mode != "none" or cfg.export.onnx_path is not None:
                needs.setdefault(cid, {})[("onnx", "fp32")] = None
            continue
        else:
            specs = [case.spec]
        for spec in specs:
            for v in artifact_variants(spec, cfg.handed_precision):
                needs.setdefault(cid, {})[v] = None
    out = {}
    for cid, wanted in needs.items():
        done = covered.get(cid, set())
        rest = [v for v in wanted if (onnx_target(v[1]) if v[0] == "onnx" else v[0]) not in done]
        if rest:
            out[cid] = rest
    return out


class Prebuild:
    """pytest plugin: export tests first; a prebuild for the artifacts of deselected export tests."""

    def __init__(self, harness: HarnessLike) -> None:
        self.harness = harness
        self.plan: dict[str, list[tuple[str, Any]]] | None = None
        self.done: set[str] = set()

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Export tests move up to where the first harness test stands; every other test
        keeps its place and order (the harness's own unit tests are left alone)."""
        first = next((i for i, item in enumerate(items) if _case(item) is not None), None)
        if first is None:
            return
        exports = [item for item in items if is_export_test(item)]
        rest = [item for item in items if not is_export_test(item)]
        items[:] = rest[:first] + exports + rest[first:]

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item: pytest.Item, nextitem: Any) -> None:
        found = _case(item)
        if found is None:
            return
        if self.plan is None:
            self.plan = plan(self.harness, list(getattr(item.session, "items", [])))
        cid = found[1].config_id
        if cid in self.done:
            return
        self.done.add(cid)
        if cid in self.plan:
            self.run(cid, self.plan[cid])

    def run(self, cid: str, variants: list[tuple[str, Any]]) -> None:

        def label(v: tuple[str, Any]) -> str:
            return f"onnx {v[1]}" if v[0] == "onnx" else f"tensorrt {v[1].label}"

        emit(f"awml prebuild {cid}: {', '.join(label(v) for v in variants)} "
             "(no selected export test builds them; built here, outside any test)")
        from awml_harness.progress import gathered_warnings, outside_tests

        # the prebuild's own warnings (building the model, reading the checkpoint) are its
        # lines too, not pinned on the test that happens to come next
        with outside_tests(), gathered_warnings(f"prebuild {cid}"):
            self._build(cid, variants, label)

    def _build(self, cid: str, variants: list[tuple[str, Any]], label: Any) -> None:
        from awml_harness.backends.base import BackendUnavailable

        ctx = self.harness.context(cid)
        for v in variants:
            try:
                if v[0] == "onnx":
                    ctx.onnx_artifacts(v[1])
                else:
                    ctx.engine_artifacts(v[1])
            except BackendUnavailable as exc:
                emit(f"awml prebuild {cid}: {label(v)} unavailable ({exc})")
            except Exception as exc:  # the test that needs it fails with the full message
                emit(f"awml prebuild {cid}: {label(v)} failed ({type(exc).__name__}); "
                     "the tests that need it report why")
