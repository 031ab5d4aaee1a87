"""What an ONNX file holds, read without running it: is it a Q/DQ (int8) graph?

Basic on purpose: the config loader asks it of a handed-over `export.onnx_path` (a Q/DQ
file is the int8 deployment, whatever backend name the config gives it), and the int8
exporter counts the same nodes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def qdq_count(model: Any) -> int:
    """QuantizeLinear + DequantizeLinear nodes of a model (any domain)."""
    return sum(1 for n in model.graph.node if n.op_type in QDQ_OPS)


def file_precision(path: Path) -> str:
    """"int8" when an ONNX file (or any .onnx file of a folder) holds Q/DQ nodes, else "fp32"."""
    import onnx

    files = sorted(Path(path).glob("*.onnx")) if Path(path).is_dir() else [Path(path)]
    for f in files:
        if qdq_count(onnx.load(str(f), load_external_data=False)):
            return "int8"
    return "fp32"
