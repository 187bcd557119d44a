"""Photos of none of the classes (DATA/_none/): the unknown threshold checked and set with
them (petal.inference.none_threshold), and training's use of them."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image
from petal.data.check import check_folder
from petal.data.scan import NONE_FOLDER
from petal.errors import PetalWarning
from petal.inference.none_threshold import (
    MIN_KEEP,
    MIN_TO_SET,
    check_none,
    choose_threshold,
    keep_of_rank,
)
from petal.inference.novelty import threshold_for


@pytest.mark.parametrize("n", [25, 97, 400])
def test_a_keep_of_rank_gives_that_score_as_the_threshold(n: int) -> None:
    scores = np.random.default_rng(n).random(n)
    ordered = np.sort(scores)
    for rank in range(1, n):
        assert threshold_for(scores, keep_of_rank(rank, n)) == ordered[rank]


def test_far_away_photos_move_the_threshold_up_and_are_adopted() -> None:
    rng = np.random.default_rng(0)
    known, none = rng.normal(0.5, 0.05, 300), rng.normal(1.2, 0.05, 40)
    check = check_none(known, none, keep=0.95)
    assert check.at_keep.none_rejected == 40 and check.at_keep.known_kept == 286
    assert check.chosen_keep > 0.95 and check.adopted and check.final_keep == check.chosen_keep
    assert check.chosen_cross_fitted.known_kept > check.keep_cross_fitted.known_kept
    assert check.chosen_cross_fitted.none_rejected == 40  # each judged by the other folds
    saved = json.loads(json.dumps(check.to_json()))
    assert saved["adopted"] and saved["at_keep"]["none_rejected_interval"][1] == 1.0


def test_photos_among_the_known_ones_cannot_take_more_than_a_tenth_of_them() -> None:
    rng = np.random.default_rng(1)
    known = rng.normal(0.5, 0.05, 300)
    none = np.concatenate([rng.normal(0.5, 0.05, 30), rng.normal(0.9, 0.05, 10)])
    threshold, rank = choose_threshold(known, none)
    assert (known <= threshold).mean() >= MIN_KEEP
    assert threshold_for(known, keep_of_rank(rank, len(known))) == threshold


def test_photos_like_the_known_ones_leave_the_threshold_as_it_was() -> None:
    rng = np.random.default_rng(2)
    known, none = rng.normal(0.5, 0.05, 300), rng.normal(0.5, 0.05, 60)
    check = check_none(known, none, keep=0.95)
    assert not check.adopted and check.final_keep == 0.95


def test_few_photos_only_check() -> None:
    rng = np.random.default_rng(3)
    check = check_none(rng.normal(0.5, 0.05, 300), rng.normal(1.0, 0.05, MIN_TO_SET - 1), 0.95)
    assert check.chosen_keep is None and not check.adopted
    assert "chosen_keep" not in check.to_json()


def test_training_checks_its_threshold_with_the_none_photos(tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture
                                                            ) -> None:
    import petal

    data = tmp_path / "data"
    for c, label in enumerate(["cat", "dog"]):
        for i in range(8):
            write_image(data / label / f"{label}{i}.jpg", seed=100 * c + i)
    for i in range(5):
        write_image(data / NONE_FOLDER / f"odd{i}.png", seed=900 + i, size=(40, 40))
    (data / NONE_FOLDER / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    report = check_folder(data, progress=False)
    assert report.index.classes == ["cat", "dog"] and report.n_none == 6
    assert "_none/: 6 file(s) of none of the classes" in report.summary()
    caplog.set_level(logging.INFO, logger="petal")
    with pytest.warns(PetalWarning, match="1 photo.*_none/ cannot be read.*broken.jpg"):
        petal.train(data, out=tmp_path / "run", recipe="original-resnet9",
                    overrides=["width=0.125", "input_size=32", "batch_size=4", "epochs=1"],
                    cache_dir=tmp_path / "cache", folds=0, progress=False)
    card = json.loads((tmp_path / "run/model/model.json").read_text())
    found = card["novelty"]["none_photos"]
    assert found["at_keep"]["n_none"] == 5 and not found["adopted"]
    assert card["novelty"]["keep"] == 0.95
    assert "Photos of none of the classes" in caplog.text
    said = petal.load(tmp_path / "run", engine="torch").predict(
        sorted((data / NONE_FOLDER).glob("*.png")))
    assert sum(p.unknown for p in said) == found["at_keep"]["none_rejected"]
