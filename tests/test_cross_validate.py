"""`petal train --folds K`: fold splits validate every image once; the figures it reports."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from conftest import colour_photos
from petal.cli import main
from petal.data.scan import scan_folder
from petal.data.split import fold_splits, make_split
from petal.errors import PetalError


def test_each_image_validates_once_classes_evenly_copies_together(tmp_path: Path) -> None:
    from conftest import write_image

    root = tmp_path / "data"
    for c, label in enumerate(["cat", "dog", "fox"]):
        for i in range(7 + 3 * c):
            write_image(root / label / f"{label}{i}.jpg", seed=100 * c + i)
    shutil.copy(root / "dog/dog0.jpg", root / "dog/dog0_copy.jpg")
    index = scan_folder(root, progress=False)
    split = make_split(index, test_fraction=0.2)
    folds = fold_splits(split, index, 3)
    pooled = sorted(i.path for fold in folds for i in fold.val)
    assert pooled == sorted(i.path for i in split.train + split.val)  # each exactly once
    for fold in folds:
        assert not {i.path for i in fold.val} & {i.path for i in fold.train}
        assert fold.test == split.test
        copies = {"dog/dog0.jpg", "dog/dog0_copy.jpg"} & {i.path for i in fold.val}
        assert len(copies) in (0, 2)
    for label in ("cat", "dog", "fox"):
        counts = [Counter(i.label for i in fold.val)[label] for fold in folds]
        assert max(counts) - min(counts) <= 2  # 2: the copies travel together
    with pytest.raises(PetalError, match="no more than the images of the smallest class"):
        fold_splits(split, index, 20)


@pytest.fixture
def colours(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for name, rgb in {"red": (210, 30, 30), "green": (30, 180, 40)}.items():
        colour_photos(root, name, rgb, 8, noise=20, side=48)
    return root


def test_train_with_folds_reports_mean_spread_and_pooled_interval(
        colours: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    run = tmp_path / "run"
    assert main(["train", "--data", str(colours), "--recipe", "fast-transfer", "--set",
                 "epochs=2", "--folds", "4", "--out", str(run), "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    figures = json.loads((run / "cross_validation.json").read_text())
    assert figures["folds"] == 4 and sum(figures["n_val"]) == 16 == figures["pooled"]["n_images"]
    assert figures["correct"] == [round(a * n) for a, n in zip(figures["accuracies"],
                                                               figures["n_val"])]
    assert figures["mean"] == pytest.approx(np.mean(figures["accuracies"]), abs=1e-6)
    low, high = figures["pooled"]["interval"]
    assert low <= figures["pooled"]["correct"] / 16 <= high
    assert "Cross-validated over 4 folds: mean" in printed
    assert "each image validated once, by the fold's model" in printed
    assert "95 % interval" in printed
    assert printed.count("Fold ") == 4
    assert "for the other 3, at the pace so far" in printed  # measured, not guessed
    assert "few seconds" not in printed and "Fold 4 of 4" in printed


def test_folds_are_checked_before_training(colours: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--data", str(colours), "--folds", "1", "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 1
    assert "--folds 1: at least 2" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_too_many_folds_are_refused_before_training(colours: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    """--folds past the smallest class is an error before any training or run folder (it
    came after the whole training, with model/ written)."""
    assert main(["train", "--data", str(colours), "--folds", "10000", "--out",
                 str(tmp_path / "run"), "--cache-dir", str(tmp_path / "cache"),
                 "--no-progress"]) == 1
    assert "--folds 10000: use at least 2, and no more than the images of the smallest class " \
        "(green: 8)" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / "cache").exists()
