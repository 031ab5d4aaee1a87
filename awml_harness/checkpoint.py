"""Checkpoint loading shared by every project: safe by default, OpenMMLab layout aware.

`torch.load(weights_only=True)` refuses arbitrary pickles; a checkpoint that needs
them is refused with the name of the opt-in (`--awml-unsafe-load` / config key
`unsafe_load=True`), never silently unpickled.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any


class CheckpointError(RuntimeError):
    pass


def load_state_dict(path: Path | str, *, allow_pickle: bool = False) -> dict[str, Any]:
    """Tensor mapping from a plain state_dict or an OpenMMLab checkpoint
    (`{"state_dict": ..., "meta": ...}`; `meta` is ignored)."""
    import torch

    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not allow_pickle)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as exc:
        text = str(exc)
        unsafe = [] if allow_pickle else unsafe_globals(path, text)
        if unsafe:
            shown = ", ".join(unsafe[:5]) + (f" and {len(unsafe) - 5} more" if len(unsafe) > 5 else "")
            raise CheckpointError(
                f"checkpoint {path} needs full unpickling, which can run arbitrary code (it references {shown}); "
                "if you trust it, pass --awml-unsafe-load (or set unsafe_load=True in the deploy config)"
            ) from None
        detail = text.splitlines()[-1].strip() if text else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} could not be read ({type(exc).__name__}: {detail[:300]}); "
                              "is it a torch.save'd state_dict or OpenMMLab checkpoint?") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"checkpoint {path} holds {type(obj).__name__}, expected a state_dict mapping")
    return dict(obj)


def unsafe_globals(path: Path, message: str) -> list[str]:
    """What a weights-only load refused, read from the file itself (torch lists the
    globals a checkpoint references that its weights-only unpickler does not allow,
    without running them), so the opt-in is named whatever torch's wording of the
    refusal. Torch builds without that helper fall back to the message's words."""
    import torch.serialization as serialization

    lister = getattr(serialization, "get_unsafe_globals_in_checkpoint", None)
    if lister is not None:
        try:
            return [str(g) for g in lister(str(path))]
        except Exception:  # a corrupt or non-torch file: not an unpickling question
            return []
    lowered = message.lower()
    if "weights only load failed" in lowered or "unsupported global" in lowered:
        return ["a global the weights-only unpickler refuses"]
    return []


def load_into(model: Any, state: Mapping[str, Any], *, strict: bool = True, source: str = "checkpoint") -> None:
    """load_state_dict with an error that lists missing and unexpected keys in full."""
    result = model.load_state_dict(state, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if strict and (missing or unexpected):
        lines = [f"{source} does not fit the model:"]
        if missing:
            lines.append(f"  missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            lines.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        lines.append("  (set strict_load=False in model_cfg to load anyway)")
        raise CheckpointError("\n".join(lines))
