"""Shared fixtures: tiny images made in the test, and the real flowers data when present."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from petal.cli.terminal import show_on_terminal

if os.environ.get("PYTEST_XDIST_WORKER"):  # one of two workers on two cores: a thread each
    os.environ.setdefault("OMP_NUM_THREADS", "1")

show_on_terminal()  # petal's lines where a test reads them (capsys), as the CLI shows them

INTEGRATION = Path(__file__).parent / "integration"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/integration/ is marked `integration` (make test-fast leaves it
    out): whole programs in processes of their own, the main job, a browser, the notebook."""
    for item in items:
        if INTEGRATION in Path(item.fspath).parents:
            item.add_marker(pytest.mark.integration)


FLOWERS = Path(os.environ.get("PETAL_FLOWERS",
                              Path(__file__).resolve().parents[2] / "shared/data/flowers"))


def pattern(seed: int, size: tuple[int, int] = (48, 40)) -> Image.Image:
    """A smooth random RGB picture: distinct seeds give perceptually different images."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    return Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)


def write_image(path: Path, seed: int = 0, size: tuple[int, int] = (48, 40),
                fmt: str | None = None, **save_args) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pattern(seed, size).save(path, format=fmt, **save_args)
    return path


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Three classes of four distinct tiny JPEGs each."""
    root = tmp_path / "data"
    for c, label in enumerate(["cat", "dog", "fox"]):
        for i in range(4):
            write_image(root / label / f"{label}{i}.jpg", seed=100 * c + i)
    return root


@pytest.fixture
def flowers() -> Path:
    if not FLOWERS.is_dir():
        pytest.skip(f"the flowers data set is not at {FLOWERS} (set PETAL_FLOWERS)")
    return FLOWERS


def trained(factory: pytest.TempPathFactory, name: str, make: Callable[[Path], Path]) -> Path:
    """The trained run `name`, made once for the whole session by `make(root)` (which returns
    the run folder under `root`), however many workers (pytest-xdist) ask for it: they share
    one folder above their own, and a file lock lets the first make it while the others
    wait. Tests that change a run work on a copy."""
    from filelock import FileLock

    base = factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root, made = shared / "trained" / name, shared / "trained" / f"{name}.made"
    root.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(shared / "trained" / f"{name}.lock")):
        if not made.exists():
            shutil.rmtree(root, ignore_errors=True)  # a worker killed while making it
            root.mkdir()
            made.write_text(str(make(root).relative_to(root)))
    return root / made.read_text()


def _fit(data: Path, out: Path, overrides: list[str]) -> Path:
    import petal

    petal.train(data, out=out, recipe="original-resnet9", overrides=overrides,
                cache_dir=out.parent / "cache", folds=0, progress=False)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder: ResNet9 at 1/8 width on 32 px, trained 2 epochs on 3 classes x 8 images."""
    def make(root: Path) -> Path:
        for c, label in enumerate(["cat", "dog", "fox"]):
            for i in range(8):
                write_image(root / "data" / label / f"{label}{i}.jpg", seed=100 * c + i)
        return _fit(root / "data", root / "run", ["width=0.125", "input_size=32",
                                                  "batch_size=4", "epochs=2"])

    return trained(tmp_path_factory, "tiny", make)


def flowers_slice(dest: Path, per_class: int) -> Path:
    """The first `per_class` photos of each flowers class, linked (never copied into the set)."""
    for folder in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        (dest / folder.name).mkdir(parents=True)
        for photo in sorted(folder.iterdir())[:per_class]:
            (dest / folder.name / photo.name).symlink_to(photo)
    return dest


@pytest.fixture(scope="session")
def flowers_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder: a small ResNet9 trained on 40 real photos per flower class."""
    if not FLOWERS.is_dir():
        pytest.skip(f"the flowers data set is not at {FLOWERS} (set PETAL_FLOWERS)")

    def make(root: Path) -> Path:
        return _fit(flowers_slice(root / "data", 40), root / "run",
                    ["width=0.25", "input_size=48", "batch_size=16", "epochs=8",
                     "schedule=onecycle", "lr=0.003", "step_epochs="])

    return trained(tmp_path_factory, "flowers", make)


COLOURS = {"red": (200, 30, 30), "blue": (30, 40, 200)}


def colour_photos(root: Path, name: str, rgb: tuple[int, int, int], count: int,
                  noise: float = 25, side: int = 40) -> None:
    """`count` noisy squares of one colour as root/name/I.png (seeded by the colour)."""
    rng = np.random.default_rng(sum(rgb))
    for i in range(count):
        pixels = np.clip(np.array(rgb) + rng.normal(0, noise, (side, side, 3)), 0, 255)
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8)).save(root / name / f"{i}.png")


@pytest.fixture(scope="session")
def colour_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """fast-resnet9, tiny, trained on noisy red and blue squares; other/green/ holds six
    green ones, a colour it never saw."""
    import petal

    def make(root: Path) -> Path:
        for name, rgb in COLOURS.items():
            colour_photos(root / "data", name, rgb, 20)
        colour_photos(root / "other", "green", (30, 190, 40), 6)
        return petal.train(root / "data", out=root / "run", recipe="fast-resnet9",
                           overrides=["width=0.125", "input_size=32", "batch_size=8",
                                      "epochs=4"],
                           cache_dir=root / "cache", folds=0, progress=False).folder

    return trained(tmp_path_factory, "colours", make)


@pytest.fixture(scope="session")
def small_cv_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`petal train` with its defaults on a small set (three colours, 8 photos each, 6 of
    them validation): cross-validated over 5 folds, then a final model on all 24 photos."""
    from petal.cli import main

    def make(root: Path) -> Path:
        for name, rgb in {**COLOURS, "green": (30, 190, 40)}.items():
            colour_photos(root / "data", name, rgb, 8)
        assert main(["train", "--data", str(root / "data"), "--recipe", "fast-resnet9",
                     "--set", "width=0.125", "--set", "input_size=32", "--set", "epochs=3",
                     "--out", str(root / "run"), "--cache-dir", str(root / "cache"),
                     "--no-progress"]) == 0
        return root / "run"

    return trained(tmp_path_factory, "small", make)


def card_edited_copy(run: Path, dest: Path, edit: Callable[[dict], object]) -> Path:
    """A copy of run folder `run` at `dest` whose model.json `edit` changed (in place)."""
    shutil.copytree(run, dest)
    card_path = dest / "model" / "model.json"
    card = json.loads(card_path.read_text())
    edit(card)
    card_path.write_text(json.dumps(card))
    return dest
