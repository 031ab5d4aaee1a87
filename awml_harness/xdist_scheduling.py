"""pytest-xdist scheduling by deploy config (issue 16, P7).

Under xdist's default `--dist load`, one config's tests are spread over every worker,
so each worker builds that config's model, loads its artifacts, creates its sessions
and preprocesses its samples again: on a 2-core machine `-n 2` ran 2-4x slower than
serial. Here a config is one unit of work (LoadScopeScheduling with the config as the
scope), so each is set up once; an evaluation chunk (fixtures.eval_chunks, only for
evaluations large enough to pay for a second set-up, then several per worker) is a unit
of its own, handed to whichever worker is free. Tests that are not the harness's keep their own node id as
scope, i.e. are scheduled one by one as under `load`.

Imported only when pytest-xdist is active (the base class is xdist's).
"""

from __future__ import annotations

from typing import Any

from xdist.scheduler import LoadScopeScheduling

from awml_harness.cases import scope_of


def config_scope(nodeid: str, config_ids: tuple[str, ...]) -> str:
    """`suites/test_x.py::test_x[<config id>-...]` -> the config id (`<id>-chunkN` for an
    evaluation chunk, cases.scope_of); any other node id is its own scope."""
    if not nodeid.endswith("]") or "[" not in nodeid:
        return nodeid
    return scope_of(nodeid[nodeid.index("[") + 1:-1], config_ids) or nodeid


class ConfigScopeScheduling(LoadScopeScheduling):
    def __init__(self, config: Any, log: Any = None, config_ids: tuple[str, ...] = ()) -> None:
        super().__init__(config, log)
        self.config_ids = config_ids

    def _split_scope(self, nodeid: str) -> str:
        return config_scope(nodeid, self.config_ids)
