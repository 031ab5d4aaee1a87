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

from awml_harness.backends.base import BackendUnavailable

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


def convert_to_fp16(src: Path, folder: Path) -> str:
    import onnx

    name = src.name.replace(".onnx", "_fp16.onnx")
    model = onnx.load(str(src))
    converted = None
    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision  # type: ignore[import-not-found]

        converted = convert_to_mixed_precision(onnx_path=str(src), low_precision_type="fp16", keep_io_types=True)
    except ImportError:
        pass
    if converted is None:
        try:
            from onnxconverter_common import float16  # type: ignore[import-not-found]
        except ImportError:
            raise BackendUnavailable(
                "fp16 ONNX needs nvidia-modelopt or onnxconverter-common (pip install onnxconverter-common)") from None
        converted = float16.convert_float_to_float16(model, keep_io_types=True, op_block_list=FP32_OPS)
    onnx.save(converted, str(folder / name))
    onnx.checker.check_model(str(folder / name))
    return name
