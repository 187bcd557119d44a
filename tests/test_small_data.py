"""Small data: a split too small to trust is replaced by cross-validation, the final model
trains on every photo, and its accuracy, unknown threshold and temperature all come from
photos that the model scoring them never saw."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from safetensors.numpy import load_file

import petal
from conftest import card_edited_copy, colour_photos
from petal.cli import main
from petal.errors import PetalError
from petal.inference import novelty
from petal.run_folder import OUT_OF_FOLD_FILE
from petal.training.calibration import calibrate
from petal.training.orchestrator import chosen_folds
from petal.training.outputs import OutOfFold


def test_the_final_model_trained_on_every_photo(small_cv_run: Path) -> None:
    split = json.loads((small_cv_run / "split.json").read_text())
    assert len(split["train"]) == 24 and split["val"] == []
    card = petal.load(small_cv_run).card
    assert card.metrics["n_train"] == 24 and "val_acc" not in card.metrics
    accuracy = card.accuracy
    assert accuracy["how"] == "cross-validated" and accuracy["n"] == 24
    assert accuracy["folds"] == 5 and len(accuracy["fold_accuracies"]) == 5
    low, high = accuracy["interval"]
    assert low <= accuracy["value"] <= high and accuracy["correct"] == round(24 * accuracy["value"])
    history = (small_cv_run / "history.csv").read_text().splitlines()
    assert len(history) == 4 and history[1].split(",")[2:4] == ["nan", "nan"]  # no validation


def test_threshold_and_temperature_come_from_out_of_fold_predictions(small_cv_run: Path) -> None:
    found = OutOfFold.load(small_cv_run / OUT_OF_FOLD_FILE, 3, 24)
    assert len(found.labels) == 24 and sorted(np.bincount(found.labels)) == [8, 8, 8]
    stored = load_file(str(small_cv_run / "model" / novelty.NOVELTY_FILE))
    np.testing.assert_allclose(stored["val_scores"], found.novelty, rtol=1e-6)
    card = petal.load(small_cv_run).card
    assert card.novelty["n_val"] == 24
    assert card.calibration["fitted_on"] == "out-of-fold" and card.calibration["n"] == 24
    assert card.calibration == calibrate(found.logits, found.labels, "out-of-fold")
    cross = json.loads((small_cv_run / "cross_validation.json").read_text())
    right = (found.logits.argmax(axis=1) == found.labels).sum()
    assert cross["pooled"]["correct"] == right == card.accuracy["correct"]


def test_folds_are_chosen_by_the_size_of_the_validation_part() -> None:
    from petal.data.split import Split, SplitItem

    def split(n_val: int, per_class: int) -> Split:
        items = [SplitItem(f"{c}/{i}.png", c, f"{c}{i}") for c in "ab" for i in range(per_class)]
        return Split(0, 0.1, 0.0, ["a", "b"], items[n_val:], items[:n_val])

    assert chosen_folds(None, split(20, 50)) == 5  # 20 validation photos: cross-validate
    assert chosen_folds(None, split(100, 300)) == 0  # 100 are enough for one split
    assert chosen_folds(None, split(6, 3)) == 3  # no more folds than the smallest class has
    assert chosen_folds(0, split(20, 50)) == 0 and chosen_folds(3, split(100, 300)) == 3


def test_the_plan_is_said_first_and_final_split_keeps_its_validation(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for name, rgb in {"red": (200, 30, 30), "blue": (30, 40, 200)}.items():
        colour_photos(tmp_path / "data", name, rgb, 8)
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "data"), "--recipe", "fast-resnet9",
                 "--set", "width=0.125", "--set", "input_size=32", "--set", "epochs=2",
                 "--folds", "4", "--final", "split", "--out", str(run), "--cache-dir",
                 str(tmp_path / "cache"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    plan = out.splitlines()[1]
    assert "too few to trust" in plan and "cross-validating over 4 folds of 16 photos" in plan
    assert "then the model on the split's 12 training photos" in plan
    card = petal.load(run).card
    assert card.accuracy["how"] == "cross-validated" and card.metrics["n_val"] == 4
    assert card.calibration["fitted_on"] == "out-of-fold" and card.calibration["n"] == 16
    assert card.novelty["n_val"] == 16  # the threshold too: every photo, not 4
    assert main(["train", "--data", str(tmp_path / "data"), "--final", "all", "--folds", "0",
                 "--out", str(tmp_path / "run2")]) == 1
    assert "--final chooses the model trained after cross-validating" in \
        capsys.readouterr().err


def test_a_final_model_resumes_without_validation(small_cv_run: Path, tmp_path: Path) -> None:
    """--resume of a final model on every photo trains on, still without validation."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(small_cv_run, run)
    petal_command = Path(sys.executable).with_name("petal")
    done = subprocess.run([petal_command, "train", "--resume", str(run), "--no-progress"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert petal.load(run).card.accuracy["how"] == "cross-validated"


def _damaged_copy(run: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy


@pytest.mark.parametrize("text", ["not json", "[1, 2, 3]", '{"folds": 5}',
                                  '{"folds": 5, "correct": [9, 9, 9, 9, 9], '
                                  '"n_val": [5, 5, 5, 5, 4], "pooled": {"correct": 45, '
                                  '"n_images": 24}}',
                                  '{"folds": 2, "correct": [1e308, 1], "n_val": [1e308, 1], '
                                  '"pooled": {"correct": 1e308, "n_images": 1e308}}'])
def test_a_damaged_cross_validation_is_refused_on_resume(small_cv_run: Path, tmp_path: Path,
                                                         text: str,
                                                         capsys: pytest.CaptureFixture) -> None:
    run = _damaged_copy(small_cv_run, tmp_path)
    (run / "cross_validation.json").write_text(text)
    assert main(["train", "--resume", str(run), "--no-progress"]) == 1
    assert "is not the cross-validation petal wrote" in capsys.readouterr().err


@pytest.mark.parametrize("damage", ["fewer classes", "label 99", "label -1", "one row",
                                    "novelty 3e38", "novelty -5", "a photo twice", "float labels"])
def test_damaged_out_of_fold_predictions_are_refused(small_cv_run: Path, tmp_path: Path,
                                                     damage: str,
                                                     capsys: pytest.CaptureFixture) -> None:
    from safetensors.numpy import save_file

    run = _damaged_copy(small_cv_run, tmp_path)
    arrays = load_file(str(run / OUT_OF_FOLD_FILE))
    if damage == "fewer classes":
        arrays["logits"] = arrays["logits"][:, :2].copy()
    elif damage.startswith("label"):
        arrays["labels"][0] = int(damage.split()[1])
    elif damage == "one row":
        arrays = {name: values[:1].copy() for name, values in arrays.items()}
    elif damage.startswith("novelty"):
        arrays["novelty"][:] = float(damage.split()[1])
    elif damage == "a photo twice":
        arrays["photos"][1] = arrays["photos"][0]
    else:
        arrays["labels"] = arrays["labels"].astype(np.float32)
    save_file(arrays, str(run / OUT_OF_FOLD_FILE))
    assert main(["train", "--resume", str(run), "--no-progress"]) == 1
    assert "does not hold the out-of-fold predictions petal wrote" in capsys.readouterr().err


@pytest.mark.parametrize("accuracy", [
    {"how": "cross-validated", "value": 0.7, "correct": 0, "n": 0, "interval": [0, 1]},
    {"how": "<b>x</b>", "value": -3, "correct": 5, "n": 2, "interval": [0.9, 0.1]},
    {"how": "validation", "value": 1.0, "correct": 10**300, "n": 10**300, "interval": [0, 1]},
    {"how": "cross-validated", "value": 0.5, "correct": 12, "n": 24, "interval": [0.3, 0.7]},
    "ninety percent", [0.9]])
def test_a_hand_edited_card_accuracy_is_refused(small_cv_run: Path, tmp_path: Path,
                                                accuracy: object) -> None:
    from petal.errors import PetalError

    run = card_edited_copy(small_cv_run, tmp_path / "run",
                           lambda card: card["metrics"].update(accuracy=accuracy))
    with pytest.raises(PetalError, match="metrics.accuracy must be the object petal writes"):
        petal.load(run)


def test_evaluate_of_a_model_trained_on_every_photo_is_out_of_fold(
        small_cv_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    evaluation = petal.evaluate(small_cv_run, out=tmp_path / "eval")
    found = OutOfFold.load(small_cv_run / OUT_OF_FOLD_FILE, 3, 24)
    right = int((found.logits.argmax(axis=1) == found.labels).sum())
    card = petal.load(small_cv_run).card
    assert evaluation.metrics["out_of_fold"] == {"folds": 5}
    assert evaluation.accuracy["correct"] == right == card.accuracy["correct"]
    assert evaluation.metrics["n_images"] == 24 == int(evaluation.confusion_matrix.sum())
    with open(tmp_path / "eval" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    data = small_cv_run.parent / "data"
    assert sorted(Path(r["path"]).relative_to(data.resolve()).as_posix() for r in rows) == sorted(
        p.relative_to(data).as_posix() for p in data.rglob("*.png"))
    assert all(Path(r["path"]).parent.name == r["true"] for r in rows)  # each photo its own row
    for name in ("confusion_matrix.png", "reliability.png", "worst_mistakes.png"):
        assert Image.open(tmp_path / "eval" / name).size[0] > 200
    assert main(["evaluate", str(small_cv_run), "--out", str(tmp_path / "cli")]) == 0
    said = capsys.readouterr().out
    assert "out of fold: the model trained on all of them" in said
    assert f"accuracy {100 * right / 24:.1f} % ({right} of 24 images" in said


def test_evaluate_says_why_when_the_out_of_fold_predictions_are_gone(
        small_cv_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_cv_run, run)
    (run / OUT_OF_FOLD_FILE).unlink()
    with pytest.raises(PetalError, match="holds no out-of-fold predictions.*--data DIR"):
        petal.evaluate(run, out=tmp_path / "eval")


def test_another_runs_out_of_fold_file_is_refused(small_cv_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    shutil.copytree(small_cv_run, run)
    found = OutOfFold.load(run / OUT_OF_FOLD_FILE, 3, 24)
    OutOfFold(found.logits, found.labels, found.novelty * 1.1, found.photos).save(
        run / OUT_OF_FOLD_FILE)
    with pytest.raises(PetalError, match="is not this model's"):
        petal.evaluate(run, out=tmp_path / "eval")


def test_no_shift_check_where_the_held_out_scores_are_other_networks(
        small_cv_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """A final model of a whole-network recipe (fast-resnet9) on every photo: its threshold's
    out-of-fold scores come from the folds' networks, so new photos' scores are not
    comparable with them, and petal says it does not check rather than raise false alarms."""
    classifier = petal.load(small_cv_run)
    assert "cross-validation's networks" in classifier.shift_unavailable
    photos = sorted((small_cv_run.parent / "data").rglob("*.png"))
    assert classifier.shift(classifier.predict(photos)) is None
    assert main(["predict", str(small_cv_run), str(small_cv_run.parent / "data"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "differ from the training photos is not checked" in out and "less like" not in out
    with pytest.raises(PetalError, match="--unknown compares"):
        petal.evaluate(small_cv_run, unknown=small_cv_run.parent / "data", out=tmp_path / "e")
    assert not (tmp_path / "e").exists()  # refused before anything is written
