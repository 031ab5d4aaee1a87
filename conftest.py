"""Root conftest: pytester for the plugin's end-to-end tests, hypothesis profiles."""

from __future__ import annotations

import os

pytest_plugins = ["pytester"]

try:
    from hypothesis import HealthCheck, settings
except ImportError:  # hypothesis is a dev extra
    pass
else:
    # "ci": small and fast for every push; "nightly": AWML_HYPOTHESIS_PROFILE=nightly
    settings.register_profile("ci", max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("nightly", max_examples=2000, deadline=None)
    settings.load_profile(os.environ.get("AWML_HYPOTHESIS_PROFILE", "ci"))
