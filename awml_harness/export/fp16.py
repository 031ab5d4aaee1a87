"""fp32 ONNX -> mixed-precision fp16 ONNX, keeping fp32 inputs and outputs.

This is the conversion TensorRT 11 needs before a strongly typed build (its weak-typing
fp16 flag is gone), and it is exposed as the `onnx-fp16` backend so the fp16 graph can
be verified and evaluated on CPU with ONNX Runtime. NVIDIA ModelOpt's AutoCast is used
when installed (it keeps numerically sensitive nodes in fp32); otherwise
onnxconverter-common's float16 converter with `keep_io_types=True`.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from awml_harness.backends.base import BackendUnavailable
from awml_harness.export.onnx import ExportError, check_loads

# ops whose fp16 versions lose too much (exp/log/reductions over large ranges) or are
# unsupported in ORT's CPU fp16 kernels; they stay fp32 with casts around them
FP32_OPS = ["Exp", "Log", "Softmax", "ReduceMean", "ReduceSum", "Pow", "Sqrt", "TopK", "NonMaxSuppression",
            "Resize", "Range", "ScatterND", "ScatterElements"]


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def fp16_tool_versions() -> dict[str, str | None]:
    return {"modelopt": _version("nvidia-modelopt"), "onnxconverter_common": _version("onnxconverter-common"),
            "onnx": _version("onnx"), "fp32_ops": ",".join(FP32_OPS)}


def isolate_outputs(model: Any) -> int:
    """Give every graph output that another node also reads (or that is listed twice)
    its own Identity node, in place; returns how many were isolated.

    The fp16 converters cast each output back to fp32 by renaming its producer's
    tensor and adding a Cast under the output's name; a consumer of the old name then
    reads the fp32 Cast while typed for fp16, which `onnx.checker` accepts and ONNX
    Runtime refuses to load. After this pass an output name is read by nobody, so the
    rename is safe. The Identity costs nothing at run time (runtimes fold it)."""
    graph = model.graph
    readers: dict[str, int] = {}

    def count(g: Any) -> None:
        for node in g.node:
            for name in node.input:
                readers[name] = readers.get(name, 0) + 1
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    count(sub)

    count(graph)
    produced = {o for node in graph.node for o in node.output}
    seen: set[str] = set()
    shared = []
    for out in graph.output:
        if out.name in produced and (readers.get(out.name, 0) > 0 or out.name in seen):
            shared.append(out.name)
        seen.add(out.name)
    if not shared:
        return 0

    def rename(g: Any, old: str, new: str) -> None:
        for node in g.node:
            node.input[:] = [new if n == old else n for n in node.input]
            node.output[:] = [new if n == old else n for n in node.output]
            for attr in node.attribute:
                for sub in ([attr.g] if attr.HasField("g") else []) + list(attr.graphs):
                    rename(sub, old, new)
        for vi in g.value_info:
            if vi.name == old:
                vi.name = new

    from onnx import helper

    taken = produced | {i.name for i in graph.input} | {i.name for i in graph.initializer}
    for name in dict.fromkeys(shared):
        inner = f"{name}__awml_fp16_src"
        while inner in taken:
            inner += "_"
        taken.add(inner)
        rename(graph, name, inner)
        graph.node.append(helper.make_node("Identity", [inner], [name], name=f"{name}__awml_fp16_out"))
    return len(shared)


def _short(exc: BaseException) -> str:
    text = str(exc).strip()
    return text if len(text) <= 600 else text[:600] + " ..."


def convert_to_fp16(src: Path, folder: Path) -> str:
    """Convert, check (onnx.checker, then ONNX Runtime), return the file name written.
    Any failure is an ExportError that names the fp16 step and the source file."""
    import onnx

    name = src.name.replace(".onnx", "_fp16.onnx")
    converted = None
    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision  # type: ignore[import-not-found]
    except ImportError:
        convert_to_mixed_precision = None
    try:
        model = onnx.load(str(src))
        isolated = isolate_outputs(model)
        if convert_to_mixed_precision is not None:
            prepared = src
            if isolated:
                prepared = folder / f".{src.stem}_isolated.onnx"
                onnx.save(model, str(prepared))
            converted = convert_to_mixed_precision(onnx_path=str(prepared), low_precision_type="fp16",
                                                   keep_io_types=True)
            if prepared != src:
                prepared.unlink()
        else:
            try:
                from onnxconverter_common import float16  # type: ignore[import-not-found]
            except ImportError:
                raise BackendUnavailable("fp16 ONNX needs nvidia-modelopt or onnxconverter-common "
                                         "(pip install onnxconverter-common)") from None
            converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=FP32_OPS)
        onnx.save(converted, str(folder / name))
        onnx.checker.check_model(str(folder / name))
    except BackendUnavailable:
        raise
    except Exception as exc:
        tool = "modelopt AutoCast" if convert_to_mixed_precision is not None else "onnxconverter-common"
        raise ExportError(f"fp16 conversion (export/fp16.py, {tool}) of {src.name} failed: "
                          f"{type(exc).__name__}: {_short(exc)}") from None
    check_loads(folder / name, "fp16 conversion (export/fp16.py)")
    return name
