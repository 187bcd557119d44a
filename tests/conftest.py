"""Shared fixtures: tiny images made in the test, and the real flowers data when present."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

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
