"""The portable stand-ins for Linux-only calls (petal/system.py), on their fallback paths too."""

from __future__ import annotations

import os

import pytest

from petal.system import usable_cores, worker_context


def test_usable_cores_follow_the_affinity_and_fall_back_to_the_count(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert usable_cores() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity")  # as on macOS and Windows
    assert usable_cores() == os.cpu_count()


def test_workers_fork_where_they_can_else_spawn(monkeypatch: pytest.MonkeyPatch) -> None:
    assert worker_context().get_start_method() == "fork"
    monkeypatch.setattr("multiprocessing.get_all_start_methods", lambda: ["spawn"])
    assert worker_context().get_start_method() == "spawn"
