"""Root conftest: pytester for the plugin's end-to-end tests.

It loads for `pytest suites/` too, so it imports nothing else: the harness's own test
tooling (hypothesis and its profiles) lives in tests/conftest.py (issue 16, P1).
"""

from __future__ import annotations

pytest_plugins = ["pytester"]
