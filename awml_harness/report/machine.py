"""What the numbers were measured on. Cheap: versions come from package metadata, and
torch / onnxruntime are only asked about devices when the run already imported them."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from typing import Any


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _nvidia_smi() -> dict[str, str]:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip().splitlines()
    except (OSError, subprocess.SubprocessError):
        return {}
    if not out:
        return {}
    name, _, driver = out[0].partition(",")
    return {"gpu": name.strip(), "driver": driver.strip()}


def machine_info() -> dict[str, Any]:
    info: dict[str, Any] = {
        "hostname": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "torch": _version("torch"),
        "onnx": _version("onnx"),
        "onnxruntime": _version("onnxruntime") or _version("onnxruntime-gpu"),
        "tensorrt": _version("tensorrt") or _version("tensorrt-cu12") or _version("tensorrt-cu13"),
        "pytest": _version("pytest"),
        "awml_harness": _version("awml-harness"),
        "gpu": None, "driver": None, "cuda": None, "cudnn": None, "onnxruntime_providers": None,
    }
    info.update(_nvidia_smi())
    torch = sys.modules.get("torch")
    if torch is not None:
        info["cuda"] = torch.version.cuda
        try:
            if torch.cuda.is_available():
                info["gpu"] = info["gpu"] or torch.cuda.get_device_name(0)
                info["cudnn"] = torch.backends.cudnn.version()
        except Exception:  # a broken driver must not cost us the report
            pass
    ort = sys.modules.get("onnxruntime")
    if ort is not None:
        info["onnxruntime_providers"] = list(ort.get_available_providers())
    trt = sys.modules.get("tensorrt")
    if trt is not None:
        info["tensorrt"] = trt.__version__
    return info
