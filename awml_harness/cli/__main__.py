"""`python -m awml_harness.cli ...`: the `awml` script without an installed entry point."""

from __future__ import annotations

import sys

from awml_harness.cli import main

sys.exit(main())
