"""What every benchmark shares: where things are, training a recipe, a model's validation
photos, linked slices of the data set, and writing a result file stamped with when, where,
how and from which code it was measured (`record`).

Benchmarks run from the repository root with petal's environment, e.g.
`.venv/bin/python benchmarks/open_set.py`; they import this module as `common`.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from petal.fsutil import atomic_write_json
from petal.inference.model_folder import ModelCard, read_card
from petal.jobs.evaluate import decoded_squares, split_set
from petal.run_folder import find_model_folder
from petal.system import machine

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


def link_into(photo: Path, folder: Path) -> None:
    """A symbolic link to `photo` in `folder` (made if new), unless one is there already."""
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / photo.name).is_symlink():
        (folder / photo.name).symlink_to(photo.resolve())


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


# Where result files live: the index of each folder (its README.md) is generated from the
# stamps of its files by benchmarks/results_index.py.
RESULT_FOLDERS = (ROOT / "benchmarks/results", ROOT / "benchmarks/tuning/results")


def host_name(cpu: dict) -> str:
    """A short name for the CPU of `machine()`: AMD's generation (the hosts sold as "AMD
    EPYC" have been Zen 3, 4 and 5, which train at different speeds), else the model name."""
    family, model = cpu.get("cpu_family"), cpu.get("cpu_model")
    if "AMD" in cpu.get("cpu", "") and family and model:
        zen = {"25": "Zen 4" if int(model) >= 0x10 else "Zen 3", "26": "Zen 5"}.get(family)
        if zen:
            return zen
    name = cpu.get("cpu", "unknown CPU").replace("(R)", "").replace(" Processor", "")
    return f"{name} (AMX)" if cpu.get("amx") else name


def _git(*arguments: str) -> str | None:
    try:
        return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def stamp(about: str) -> dict:
    """When, where, how and from which code a result is measured: the date and time, the
    machine, the command line as typed, the commit and whether code differed from it (a
    change under a results folder does not count: result files are rewritten as they go)."""
    changed = _git("status", "--porcelain", "--untracked-files=no") or ""
    results = tuple(str(folder.relative_to(ROOT)) + "/" for folder in RESULT_FOLDERS)
    dirty = any(not line[3:].startswith(results) for line in changed.splitlines())
    script = os.path.relpath(sys.argv[0], ROOT) if sys.argv[0] else "python"
    host = {**machine(), "load_average_at_start": list(os.getloadavg())}
    return {"about": about, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": host_name(host), "machine": host,
            "command": shlex.join(["python", script, *sys.argv[1:]]),
            "commit": _git("rev-parse", "--short=12", "HEAD"), "code_changed": dirty}


def record(path: Path | str, figures: dict, about: str) -> dict:
    """Write `figures` to the JSON file at `path` (atomically: an interrupted benchmark
    leaves the last good file), stamped under "recorded" (see `stamp`); `about` says in a
    line what the file holds, for the results index. Returns what was written."""
    result = {"recorded": stamp(about), **figures}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, result)
    return result
