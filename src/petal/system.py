"""What the machine offers, asked portably: petal is tested on Linux, and these are the calls
that differ elsewhere."""

from __future__ import annotations

import multiprocessing
import os
from multiprocessing.context import BaseContext


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
