"""Shared by the benchmarks: a ProjectContext from a config, an ONNX Runtime session
with the harness's own options, and the feeds of one model call captured per graph
from the PyTorch pipeline (for multi-graph projects, the in-between work - CenterPoint's
voxelization and scatter - is done once here, not in the timed loop)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np


def load_context(config_path: str | Path, root: Path, overrides: tuple[str, ...] = ()) -> Any:
    from awml_harness.config.load import load_deploy_config
    from awml_harness.session import ProjectContext, RunOptions

    cfg = load_deploy_config(config_path, base_dir=root, overrides=list(overrides))
    return ProjectContext(cfg, RunOptions())


def ort_session(path: Path, threads: int = 0, spinning: bool = False, inter_op: int = 0) -> Any:
    """The session options the harness uses (backends/onnxruntime.py), nothing else."""
    import onnxruntime as ort

    from awml_harness.backends.onnxruntime import ARENA_MAX_INPUT_BYTES, session_options, static_input_bytes

    arena = 0 <= static_input_bytes(path) < ARENA_MAX_INPUT_BYTES
    return ort.InferenceSession(str(path), sess_options=session_options(threads, spinning, inter_op, arena),
                                providers=["CPUExecutionProvider"])


def capture_feeds(ctx: Any, prepared: Any) -> list[tuple[str, dict[str, np.ndarray]]]:
    """[(graph, feeds)] of one model call, from the PyTorch pipeline."""
    from awml_harness.config.schema import Backend, BackendSpec
    from awml_harness.project import NullTimer

    runners = ctx.runners(BackendSpec(Backend.PYTORCH, "cpu"))
    calls: list[tuple[str, dict[str, np.ndarray]]] = []

    def run_graph(name: str, feeds: Mapping[str, np.ndarray]) -> Mapping[str, np.ndarray]:
        calls.append((name, {k: np.asarray(v) for k, v in feeds.items()}))
        return runners[name].infer(feeds)

    ctx.adapter.forward(prepared, run_graph, NullTimer())
    return calls
