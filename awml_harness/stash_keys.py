"""Keys of the harness's objects on `pytest.Config.stash`, below both the plugin that
stores them and the fixtures that read them (so neither imports the other for them)."""

from __future__ import annotations

from typing import Any

import pytest

SESSION_KEY = pytest.StashKey[Any]()  # session.HarnessSession
RECORDER_KEY = pytest.StashKey[Any]()  # recorder.RunRecorder (what the tests reported)
END_KEY = pytest.StashKey[Any]()  # plugin._End (what the end of the run produced)
