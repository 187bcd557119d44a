"""What every benchmark shares: where things are, training a recipe, a model's validation
photos, linked slices of the data set, and the machine a figure was measured on.

Benchmarks run from the repository root with petal's environment, e.g.
`.venv/bin/python benchmarks/open_set.py`; they import this module as `common`.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import numpy as np

from petal.inference.model_folder import ModelCard, read_card
from petal.jobs.evaluate import decoded_squares, split_set
from petal.run_folder import find_model_folder

ROOT = Path(__file__).resolve().parents[1]  # the repository
FLOWERS = ROOT.parent / "shared/data/flowers"  # the data set, beside the repository
PETAL = str(Path(sys.executable).with_name("petal"))  # the command, from the same environment


def train(data: Path, out: Path, recipe: str = "fast-transfer", *options: str,
          cache_dir: Path | None = None) -> float:
    """`petal train` of `recipe` into `out`, in a process of its own, with more command-line
    `options` (e.g. "--set", "epochs=3", "--split", FILE); the wall-clock seconds it took."""
    command = [PETAL, "train", "--data", str(data), "--recipe", recipe, "--out", str(out),
               "--no-progress", *(["--cache-dir", str(cache_dir)] if cache_dir else []),
               *options]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def split_file(data: Path, out: Path, split_seed: int) -> Path | None:
    """The split file of `split_seed` (`petal data split --seed`, made once in `out`), None
    for the default split (seed 0)."""
    if split_seed == 0:
        return None
    path = out / f"split-seed{split_seed}.json"
    if not path.is_file():
        subprocess.run([PETAL, "data", "split", str(data), "--seed", str(split_seed),
                        "--out", str(path)], check=True, stdout=subprocess.DEVNULL)
    return path


def linked(data: Path, dest: Path, per_class: int | None = None,
           classes: Collection[str] | None = None) -> Path:
    """`data`'s class folders (or only `classes`) under `dest`, each with its first
    `per_class` photos by name (or all), as symbolic links: the data set is never written."""
    for folder in sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if classes is not None and folder.name not in classes:
            continue
        (dest / folder.name).mkdir(parents=True, exist_ok=True)
        for photo in sorted(p for p in folder.iterdir() if p.is_file())[:per_class]:
            link = dest / folder.name / photo.name
            if not link.is_symlink():
                link.symlink_to(photo.resolve())
    return dest


@dataclass
class ValidationPhotos:
    """A model's own validation photos, decoded as its cache stores them."""

    folder: Path  # the model folder
    card: ModelCard
    squares: np.ndarray  # (N, resize_size, resize_size, 3) uint8
    targets: np.ndarray  # (N,) class indices into card.classes


def validation_photos(model: Path) -> ValidationPhotos:
    """The validation part of the split the model at `model` (a run or model folder) was
    trained on, decoded at its input spec's resize size."""
    folder = find_model_folder(model)
    card = read_card(folder)
    chosen = split_set((folder / card.split).resolve(), Path(card.data), "val", card.classes,
                       {}, progress=False)
    squares = decoded_squares(chosen, card.input.resize_size, progress=False)
    targets = np.array([card.classes.index(label) for _, label, _ in chosen.items])
    return ValidationPhotos(folder, card, squares, targets)


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

    The CPU's family and model numbers, AVX-512 and bfloat16 support (AMX, AVX-512 BF16)
    are recorded too: hosts sold under one name ("AMD EPYC", "Intel Xeon") have been Zen 3,
    4 and 5 and an Intel Xeon with AMX here, and train at different speeds.
    """
    proc_cpuinfo = Path("/proc/cpuinfo")
    cpuinfo = proc_cpuinfo.read_text().splitlines() if proc_cpuinfo.exists() else []
    model = _cpuinfo_field(cpuinfo, "model name") or platform.processor()
    flags = (_cpuinfo_field(cpuinfo, "flags") or "").split()
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cpu_family": _cpuinfo_field(cpuinfo, "cpu family"),
            "cpu_model": _cpuinfo_field(cpuinfo, "model"), "avx512": "avx512f" in flags,
            "amx": "amx_tile" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "cores": len(os.sched_getaffinity(0)),
            "memory_gib": round(memory_gib, 1), "platform": platform.platform(),
            "python": platform.python_version(), "torch": _version("torch"),
            "onnxruntime": _version("onnxruntime"), "load_average_at_start": os.getloadavg()}
