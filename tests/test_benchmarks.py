"""The benchmarks record themselves: every script imports, `common.record` stamps what it
writes, and the results indexes are the ones generated from the stamps (no benchmark is run:
their figures are the benchmarks' own job, docs/RESULTS.md)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = ROOT / "benchmarks"
# run in a separate environment of its own, with fastai (benchmarks/vs_fastai.py makes it)
NEEDS_OTHER_ENVIRONMENT = {"fastai_worker.py"}
SCRIPTS = sorted(p for p in [*BENCHMARKS.glob("*.py"), *BENCHMARKS.glob("tuning/*.py")]
                 if p.name not in NEEDS_OTHER_ENVIRONMENT)


@pytest.fixture(scope="module")
def common():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import common
        yield common
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_every_benchmark_imports(script: Path, common, monkeypatch) -> None:
    """A moved module or a renamed function breaks a benchmark at its first line, not after
    an hour of training."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # dataclasses look their module up
    spec.loader.exec_module(module)
    assert module.__doc__, f"{script.name} says in its docstring what it measures"


def test_record_stamps_what_it_writes(common, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(sys, "argv", [str(BENCHMARKS / "open_set.py"), "--json", "x.json"])
    path = tmp_path / "deeper" / "result.json"
    written = common.record(path, {"figure": 1.5}, about="a figure")
    assert json.loads(path.read_text()) == written
    stamp = written["recorded"]
    assert written["figure"] == 1.5 and stamp["about"] == "a figure"
    assert stamp["command"] == "python benchmarks/open_set.py --json x.json"
    head = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True).stdout.strip()
    assert stamp["commit"] == (head or None)
    assert isinstance(stamp["code_changed"], bool)
    assert stamp["machine"]["cores"] >= 1 and stamp["host"]
    assert stamp["date"][:4].isdigit() and "T" in stamp["date"]


def test_host_names(common) -> None:
    amd = {"cpu": "AMD EPYC", "cpu_family": "25"}
    assert common.host_name({**amd, "cpu_model": "1"}) == "Zen 3"
    assert common.host_name({**amd, "cpu_model": "17"}) == "Zen 4"
    assert common.host_name({"cpu": "AMD EPYC", "cpu_family": "26", "cpu_model": "2"}) == "Zen 5"
    assert common.host_name({"cpu": "Intel(R) Xeon(R) Processor", "amx": True}) == \
        "Intel Xeon (AMX)"


def test_results_indexes_are_generated_from_the_stamps() -> None:
    """Every result file carries a stamp, and each index is what results_index.py makes of
    them: a file added or re-measured without regenerating the index fails here."""
    spec = importlib.util.spec_from_file_location("results_index",
                                                  BENCHMARKS / "results_index.py")
    results_index = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(results_index)
    for folder in results_index.HEADERS:
        assert (ROOT / folder / "README.md").read_text() == results_index.index(folder), (
            f"{folder}/README.md is stale: run .venv/bin/python benchmarks/results_index.py")
    stray = [p.name for p in (BENCHMARKS / "results").iterdir()
             if p.suffix != ".json" and p.name != "README.md"]
    assert not stray, f"result files that cannot carry a stamp: {stray}"


def test_label_noise_flips_the_share_it_says(common, image_folder: Path, tmp_path: Path) -> None:
    """The benchmark's own data step (its photos are links; no review is run here)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import label_noise
    finally:
        sys.path.remove(str(BENCHMARKS))
    flipped = label_noise.flipped_copy(image_folder, 0.5, tmp_path / "noisy")
    links = sorted(p for p in (tmp_path / "noisy").rglob("*") if p.is_symlink())
    assert len(flipped) == round(0.5 * len(links)) and len(links) > 2
    for link in links:
        filed, given = link.parent.name, link.name.split("-", 1)[0]
        assert (filed != given) == (link.relative_to(tmp_path / "noisy").as_posix() in flipped)
