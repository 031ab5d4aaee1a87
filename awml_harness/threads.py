"""One CPU thread policy for every backend: PyTorch intra-/inter-op, ONNX Runtime
intra-/inter-op, and the CPU side of the CUDA/TensorRT backends.

Why a default of 1 intra-op thread: on a small shared machine (2 vCPUs, other jobs
running) PyTorch's default of one intra-op thread per core makes a forward pass stall
for hundreds of milliseconds at random, whenever one of its worker threads is not
scheduled; a single thread never waits for a sibling (measured by
`python -m benchmarks.threads`, see benchmarks/README.md). The same holds for ONNX
Runtime's pool, so one policy covers both. Inter-op pools only serve parallel graph
branches (ORT's parallel execution mode, TorchScript `fork`), which the harness never
uses: 1.

Precedence: `--awml-threads N` > the config's `evaluation.threads` > DEFAULT_THREADS.
`0` means "leave each library at its own default" (one thread per core), for
measuring what a tuned deployment would see on a dedicated machine.

Torch's thread counts are process-wide. Intra-op is re-applied before each PyTorch
call when it differs (cheap), so two configs with different policies in one run each
get theirs; inter-op can be set only once per process, before any inter-op work, so it
is set on first use and what the process really has is recorded.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

DEFAULT_THREADS = 1
_interop_note: str | None = None


@dataclass(frozen=True)
class ThreadPolicy:
    intra_op: int  # 0: library default
    inter_op: int  # 0: library default
    source: str  # "--awml-threads", "evaluation.threads" or "default"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def label(self) -> str:
        intra = "library default" if self.intra_op == 0 else str(self.intra_op)
        return f"intra-op {intra}, inter-op {self.inter_op or 'library default'} ({self.source})"


def resolve(cli: int | None, config_value: int | None) -> ThreadPolicy:
    """The policy for one config. `cli` None: option not given."""
    if cli is not None:
        n, source = cli, "--awml-threads"
    elif config_value is not None:
        n, source = config_value, "evaluation.threads"
    else:
        n, source = DEFAULT_THREADS, "default"
    return ThreadPolicy(intra_op=n, inter_op=1 if n else 0, source=source)


def apply_torch(policy: ThreadPolicy) -> None:
    """Put this process's PyTorch pools on `policy` (intra-op now; inter-op once)."""
    import torch

    if policy.intra_op and torch.get_num_threads() != policy.intra_op:
        torch.set_num_threads(policy.intra_op)
    _apply_interop(torch, policy.inter_op)


def _apply_interop(torch: Any, n: int) -> None:
    global _interop_note
    if not n or _interop_note is not None:
        return
    try:
        torch.set_num_interop_threads(n)
        _interop_note = ""
    except RuntimeError:  # already set, or inter-op work has started in this process
        _interop_note = (f"inter-op threads were already fixed at {torch.get_num_interop_threads()} "
                         f"in this process; wanted {n}")


def torch_in_effect() -> dict[str, Any] | None:
    """What this process's PyTorch really uses (None when torch was never imported)."""
    import sys

    torch = sys.modules.get("torch")
    if torch is None:
        return None
    out: dict[str, Any] = {"intra_op": torch.get_num_threads(), "inter_op": torch.get_num_interop_threads()}
    if _interop_note:
        out["note"] = _interop_note
    return out


def thread_record(policy: Any) -> dict[str, Any]:
    """What the reports record: the policy (one config's, or config id -> policy) beside the
    threads this process's torch really has."""
    return {"policy": policy, "torch": torch_in_effect()}
