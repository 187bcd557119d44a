"""What the machine offers, asked portably: petal is tested on Linux, and these are the calls
that differ elsewhere."""

from __future__ import annotations

import multiprocessing
import os
import platform
import sys
from importlib.metadata import PackageNotFoundError, version
from multiprocessing.context import BaseContext
from pathlib import Path


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def worker_context() -> BaseContext:
    """How worker processes start: fork where the OS has it (the workers inherit what is
    already imported, nothing re-imports), else spawn."""
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _cpuinfo_field(cpuinfo: list[str], name: str) -> str | None:
    """The first `name : value` of /proc/cpuinfo's lines, or None."""
    return next((line.split(":", 1)[1].strip() for line in cpuinfo
                 if line.split(":", 1)[0].strip() == name), None)


def _gpu() -> str | None:
    """The first CUDA GPU's name, asked only of a torch already imported (importing torch
    costs seconds, and a process that has not imported it has used no GPU)."""
    torch = sys.modules.get("torch")
    if torch is None or not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_name(0)


def machine() -> dict:
    """What this process runs on, for a run's report and a benchmark's result file: CPU
    model, usable cores, memory, GPU, OS, and Python, torch and ONNX Runtime versions.

    The CPU's family and model numbers, AVX-512 and bfloat16 support (AMX, AVX-512 BF16)
    are recorded too: hosts sold under one name ("AMD EPYC", "Intel Xeon") have been Zen 3,
    4 and 5 and an Intel Xeon with AMX, and train at different speeds.
    """
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:  # not Linux
        cpuinfo = []
    flags = (_cpuinfo_field(cpuinfo, "flags") or "").split()
    try:
        memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):  # Windows has no sysconf
        memory_gib = 0.0
    return {"cpu": _cpuinfo_field(cpuinfo, "model name") or platform.processor()
            or platform.machine(),
            "cpu_family": _cpuinfo_field(cpuinfo, "cpu family"),
            "cpu_model": _cpuinfo_field(cpuinfo, "model"), "avx512": "avx512f" in flags,
            "amx": "amx_tile" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "cores": usable_cores(), "memory_gib": round(memory_gib, 1), "gpu": _gpu(),
            "platform": platform.platform(), "python": platform.python_version(),
            "torch": _version("torch"), "onnxruntime": _version("onnxruntime")}
