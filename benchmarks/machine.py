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


def _cpuinfo_field(cpuinfo: list[str], name: str) -> str | None:
    """The first `name : value` of /proc/cpuinfo's lines, or None."""
    return next((line.split(":", 1)[1].strip() for line in cpuinfo
                 if line.split(":", 1)[0].strip() == name), None)


def machine() -> dict:
    """CPU model, usable cores, memory, OS, Python and torch / ONNX Runtime versions.

    The CPU's family and model numbers and AVX-512 are recorded too: hosts sold under one
    name ("AMD EPYC") have been Zen 3, 4 and 5 here, and train at different speeds.
    """
    proc_cpuinfo = Path("/proc/cpuinfo")
    cpuinfo = proc_cpuinfo.read_text().splitlines() if proc_cpuinfo.exists() else []
    model = _cpuinfo_field(cpuinfo, "model name") or platform.processor()
    flags = (_cpuinfo_field(cpuinfo, "flags") or "").split()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cpu_family": _cpuinfo_field(cpuinfo, "cpu family"),
            "cpu_model": _cpuinfo_field(cpuinfo, "model"), "avx512": "avx512f" in flags,
            "cores": len(os.sched_getaffinity(0)),
            "memory_gib": round(memory_gib, 1), "platform": platform.platform(),
            "python": platform.python_version(), "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime"), "load_average_at_start": os.getloadavg()}
