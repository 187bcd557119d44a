"""The LR range test: a smoothed curve without the start-up artefact, suggestion rules, and the
real range test on a small problem whose good learning rates the test measures itself."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from pathlib import Path

import lightning as L
import numpy as np
import pytest

from conftest import colour_photos
from petal.cli import main
from petal.training.lr_range import RULES, LRFinding, smoothed, suggest


def lightning_curve(losses: list[float], beta: float = 0.98) -> list[float]:
    """Lightning's smoothing, as its tuner computes it (the step count one too high)."""
    average, curve = 0.0, []
    for step, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        curve.append(average / (1 - beta ** (step + 1)))
    return curve


def test_a_flat_loss_gives_a_flat_curve() -> None:
    losses = [1.6] * 60
    assert smoothed(losses) == pytest.approx(losses)  # the first value is the first loss
    artefact = lightning_curve(losses)
    assert artefact[0] == pytest.approx(1.6 / 1.98)  # about half ...
    assert artefact[30] < 1.6 * 0.99  # ... and still climbing 30 steps later


def test_smoothing_skips_a_diverged_step() -> None:
    curve = smoothed([1.0, 1.0, math.nan, 1.0])
    assert curve[2] == pytest.approx(1.0) and curve[3] == pytest.approx(1.0)
    assert math.isnan(smoothed([math.nan, 1.0])[0])


def synthetic_curve(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """100 log-spaced LRs from 1e-6 to 1: the loss is flat below 1e-4, falls until 1e-2,
    and blows up above 0.1; noisy, as a real mini-batch loss is."""
    lrs = np.logspace(-6, 0, 100)
    x = np.log10(lrs)
    loss = 1.6 - 1.2 * np.clip((x + 4) / 2, 0, 1) + np.where(x > -1, 30 * (x + 1) ** 2, 0)
    return lrs, loss + np.random.default_rng(seed).normal(0, 0.05, len(lrs))


@pytest.mark.parametrize("seed", range(5))
def test_every_rule_lands_in_the_falling_stretch(seed: int) -> None:
    lrs, losses = synthetic_curve(seed)
    for rule in RULES:
        assert 1e-4 <= suggest(lrs, losses, rule) <= 2e-2, rule


def test_no_suggestion_without_a_curve() -> None:
    assert suggest([1e-3, 1e-2], [1.0, 0.9]) is None
    test = LRFinding.from_steps([1e-3, 1e-2, 1e-1], [1.0, math.inf, math.nan])
    assert test.to_json()["losses"] == [1.0, None, None]  # plain JSON


@pytest.fixture(scope="module")
def colours(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three noisy colours, 16 photos each: a problem with a clear range of good LRs."""
    root = tmp_path_factory.mktemp("lr") / "data"
    for name, rgb in {"red": (210, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 210)}.items():
        colour_photos(root, name, rgb, 16, noise=60)
    return root


def test_the_suggestion_trains_well(colours: Path, tmp_path: Path) -> None:
    """fast-transfer's head on three colours: the test trains it at LRs a third of a decade
    apart and calls good those whose final training loss gets at least 3/4 of the way from
    where the smallest LR leaves it (1e-5: hardly trained) to the best; the range test's
    suggestion must lie within the good ones."""
    from petal.training.batches import train_loader
    from petal.training.fit import TrainRequest, find_lr, prepare
    from petal.training.recipes import get_recipe

    request = TrainRequest(data=colours, recipe=get_recipe("fast-transfer"), out=tmp_path,
                           cache_dir=str(tmp_path / "cache"))
    prepared = prepare(request, progress=False)
    untouched = copy.deepcopy(prepared.network.state_dict())
    grid = np.logspace(-5, 0, 16)
    final = []
    for lr in grid:
        prepared.network.load_state_dict(untouched)  # every training starts from the same
        L.seed_everything(0, verbose=False)
        trainer = L.Trainer(accelerator="cpu", devices=1, max_epochs=prepared.recipe.epochs,
                            logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, limit_val_batches=0)
        trainer.fit(prepared.module(dataclasses.replace(prepared.recipe, lr=float(lr))),
                    train_loader(prepared.train_set, prepared.recipe.batch_size, 0))
        final.append(float(trainer.callback_metrics["train_loss"]))
    best, untrained = min(final), final[0]
    good = grid[np.array(final) <= best + (untrained - best) / 4]
    prepared.network.load_state_dict(untouched)
    test = find_lr(request, prepared, tmp_path / "lr_find.png", progress=False)
    assert good.min() <= test.suggestion <= good.max(), (test.suggestion, final)


def test_lr_find_json_and_the_plotted_curve(colours: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    assert main(["lr-find", "--data", str(colours), "--json", "--out", str(tmp_path),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    found = json.loads(captured.out)  # standard output is the JSON alone
    assert f"Wrote {tmp_path / 'lr_find.png'}" in captured.err  # and where the figure went
    assert {"suggestion", "lrs", "losses", "smoothed"} <= found.keys()
    assert len(found["lrs"]) == len(found["losses"]) == len(found["smoothed"]) >= 25
    assert found["lrs"] == sorted(found["lrs"]) and found["lrs"][0] < found["suggestion"]
    assert found["smoothed"][0] == pytest.approx(found["losses"][0])  # no start below it
    assert (tmp_path / "lr_find.png").is_file()
