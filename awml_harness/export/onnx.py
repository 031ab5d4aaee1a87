"""Graph -> ONNX file, with the exporter chosen by config.

The TorchScript exporter (`exporter="torchscript"`, default) needs nothing beyond torch
and writes one self-contained file. The dynamo exporter (`exporter="dynamo"`) needs
onnxscript and may write weights to `<file>.data`; the store hashes every file in the
artifact folder, so external data is covered by the artifact key check either way.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from awml_harness.graph import io_signature  # noqa: F401 - re-exported: test_export and users import it here

if TYPE_CHECKING:  # pragma: no cover
    from awml_harness.config.schema import OnnxConfig
    from awml_harness.graph import Graph


class ExportError(RuntimeError):
    pass


def tool_versions() -> dict[str, str]:
    import onnx
    import torch

    return {"torch": torch.__version__, "onnx": onnx.__version__}


def export_graph(graph: Graph, folder: Path, cfg: OnnxConfig, file_name: str | None = None) -> str:
    import torch

    name = file_name or f"{graph.name}.onnx"
    path = folder / name
    args = tuple(torch.from_numpy(graph.example_inputs[n].copy()) for n in graph.input_names)
    dynamic_axes = {k: dict(v) for k, v in graph.dynamic_axes.items()} or None
    module = graph.module
    if hasattr(module, "eval"):
        module.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # exporter chatter (deprecations, tracer warnings)
            kwargs: dict[str, Any] = dict(
                input_names=list(graph.input_names), output_names=list(graph.output_names),
                dynamic_axes=dynamic_axes, opset_version=cfg.opset_version,
                do_constant_folding=cfg.do_constant_folding,
            )
            module = _flat_outputs(module, args, graph)
            if cfg.exporter == "dynamo":
                torch.onnx.export(module, args, str(path), dynamo=True, external_data=True, **kwargs)
            else:
                torch.onnx.export(module, args, str(path), dynamo=False, **kwargs)
    except Exception as exc:
        raise ExportError(f"exporting graph {graph.name!r} to ONNX failed ({cfg.exporter} exporter, "
                          f"opset {cfg.opset_version}): {type(exc).__name__}: {exc}") from exc
    if cfg.simplify:
        _simplify(path)
    check(path)
    return name


def _flat_outputs(module: Any, args: tuple, graph: Graph) -> Any:
    """`module`, or a wrapper returning its outputs as a flat tuple in the graph's
    order when it returns a dict or nested structure. The exporter itself would pair
    a dict's values with `output_names` by insertion order, while the PyTorch backend
    pairs them by key (`flatten_outputs`); the wrapper makes both use that one rule.
    A module that already returns a tensor or a flat tuple is exported untouched, so
    its node names stay as they were."""
    import torch

    from awml_harness.backends.torch import flatten_outputs

    out = module(*args)
    flat = isinstance(out, torch.Tensor) or (
        isinstance(out, (tuple, list)) and len(out) == len(graph.output_names)
        and all(isinstance(o, torch.Tensor) for o in out))
    if flat:
        return module
    flatten_outputs(out, graph.output_names, f"graph {graph.name!r}")  # the message says what to return

    class FlatOutputs(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = module

        def forward(self, *inputs: Any) -> tuple[Any, ...]:
            return flatten_outputs(self.inner(*inputs), graph.output_names, f"graph {graph.name!r}")

    return FlatOutputs()


def _simplify(path: Path) -> None:
    try:
        import onnxslim  # type: ignore[import-not-found]
    except ImportError:
        warnings.warn("onnx_config.simplify=True but onnxslim is not installed; exporting unsimplified", stacklevel=2)
        return
    import onnx

    model = onnxslim.slim(onnx.load(str(path)))
    onnx.save(model, str(path))


def check(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
    except Exception as exc:
        raise ExportError(f"{path} fails onnx.checker: {exc}") from None


def check_loads(path: Path, step: str = "export") -> None:
    """The file opens in ONNX Runtime on CPU (no-op where onnxruntime is not installed).
    `onnx.checker` does not check that a tensor's producer and readers agree on its
    type; a runtime does, and a file it refuses is not a deployable artifact."""
    try:
        import onnxruntime as ort
    except ImportError:
        return
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # loading is the question
    try:
        ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        text = str(exc).strip()
        raise ExportError(f"{step} wrote {path.name}, but ONNX Runtime cannot load it: "
                          f"{type(exc).__name__}: {text[:600]}") from None


