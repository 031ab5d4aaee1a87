"""Shared fixtures of the harness's own tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a dev extra
    pass
else:
    # "ci": small and fast for every push; "nightly": AWML_HYPOTHESIS_PROFILE=nightly
    settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("nightly", max_examples=2000, deadline=None)
    settings.load_profile(os.environ.get("AWML_HYPOTHESIS_PROFILE", "ci"))

HERE = Path(__file__).parent
REPO = HERE.parent


@pytest.fixture
def toy_repo(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    """A throwaway repo holding the Toy project, its YAML config and the generic suites."""
    # when this suite itself runs under xdist, the inner runs must not think they are workers
    for var in ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID"):
        monkeypatch.delenv(var, raising=False)
    # nor write into this CI job's step summary or annotate it with their deliberate failures
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY"):
        monkeypatch.delenv(var, raising=False)
    shutil.copytree(HERE / "toy" / "projects", pytester.path / "projects")
    shutil.copytree(REPO / "suites", pytester.path / "suites", ignore=shutil.ignore_patterns("__pycache__"))
    pytester.makeini("[pytest]\nawml_deploy_configs = projects/Toy/configs/deploy.yaml\n")
    return pytester
