"""The machine a benchmark ran on, recorded next to its figures."""

from __future__ import annotations

import os
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def machine() -> dict:
    """CPU model, usable cores, memory, OS, Python and torch / ONNX Runtime versions."""
    proc_cpuinfo = Path("/proc/cpuinfo")
    cpuinfo = proc_cpuinfo.read_text().splitlines() if proc_cpuinfo.exists() else []
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo
                  if line.startswith("model name")), platform.processor())
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": len(os.sched_getaffinity(0)),
            "memory_gib": round(memory_gib, 1), "platform": platform.platform(),
            "python": platform.python_version(), "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime"), "load_average_at_start": os.getloadavg()}
