"""The check that new photos are less like the training photos than the held-out photos
behind the card's figures (petal.inference.shift): its error rate on alike batches, that it
fires on shifted ones, the count it needs, and where petal answers a batch."""

from __future__ import annotations

import shutil
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image, ImageFilter

import petal
from petal.cli import main
from petal.errors import PetalWarning
from petal.inference.novelty import threshold_for
from petal.inference.shift import ALPHA, MIN_PHOTOS, ShiftWatch, check_shift
from petal.report.evaluation_text import format_summary
from petal.serve.app import ServeOptions, create_app
from petal.serve.label_app import LabelQueue
from petal.serve.served import load_models
from petal.serve.server import BackgroundServer

RNG = np.random.default_rng(0)
REFERENCE = RNG.gamma(4.0, 0.1, size=400)  # held-out novelty scores
THRESHOLD = threshold_for(REFERENCE, 0.95)


def _alike_alarm(rng: np.random.Generator, size: int) -> bool:
    """One draw of held-out photos and of a batch of new ones from the same population."""
    reference = rng.gamma(4.0, 0.1, size=200)
    check = check_shift(rng.gamma(4.0, 0.1, size=size), reference,
                        threshold_for(reference, 0.95))
    return check.shifted


@pytest.mark.parametrize("size", [20, 100])
def test_alike_batches_raise_few_false_alarms(size: int) -> None:
    rng = np.random.default_rng(size)
    alarms = sum(_alike_alarm(rng, size) for _ in range(500))
    assert alarms <= 2 * ALPHA * 500  # at most ALPHA, with room for 500 draws' spread


@pytest.mark.parametrize("size", [30, 100])
def test_a_shifted_batch_is_noticed_and_said_plainly(size: int) -> None:
    later = np.random.default_rng(2).gamma(4.0, 0.1, size=size) * 1.6
    check = check_shift(later, REFERENCE, THRESHOLD)
    assert check.shifted and check.p_share < 0.01 and check.share > 3 * check.expected_share
    message = check.message()
    assert f"these {size} photos are less like the training photos" in message
    assert "expect lower accuracy" in message and "petal label" in message


def test_too_few_photos_say_so_and_never_fire() -> None:
    check = check_shift(np.full(MIN_PHOTOS - 1, 9.0), REFERENCE, THRESHOLD)
    assert not check.shifted and check.unknown == MIN_PHOTOS - 1
    assert "too few to tell" in check.message()


def test_needs_is_the_fewest_unknown_photos_that_fire() -> None:
    check = check_shift(np.zeros(40), REFERENCE, THRESHOLD)
    assert not check.shifted and check.needs is not None
    at = np.r_[np.full(check.needs, 9.0), np.zeros(40 - check.needs)]
    below = np.r_[np.full(check.needs - 1, 9.0), np.zeros(41 - check.needs)]
    assert check_shift(at, REFERENCE, THRESHOLD).p_share < ALPHA / 2
    assert check_shift(below, REFERENCE, THRESHOLD).p_share >= ALPHA / 2
    assert f"fires at {check.needs} called unknown" in check.message()


def test_scores_that_are_not_numbers_are_left_out() -> None:
    check = check_shift(np.r_[np.full(20, np.nan), RNG.gamma(4.0, 0.1, 20)], REFERENCE,
                        THRESHOLD)
    assert check.n == 20
    empty = check_shift(np.zeros(0), REFERENCE, THRESHOLD)
    assert empty.n == 0 and not empty.shifted and "too few" in empty.message()


def test_the_watch_checks_whole_windows_only() -> None:
    watch = ShiftWatch(REFERENCE, THRESHOLD, window=20)
    results = [watch.add(9.0) for _ in range(45)]
    checks = [r for r in results if r is not None]
    assert len(checks) == 2 and all(c.n == 20 and c.shifted for c in checks)
    assert watch.last is checks[-1] and watch.pending == 5
    with pytest.raises(ValueError):
        ShiftWatch(REFERENCE, THRESHOLD, window=MIN_PHOTOS - 1)


def _dimmed(source: Path, dest: Path) -> Path:
    """`source`'s photos blurred and darkened: photos taken another way."""
    for path in sorted(source.rglob("*.jpg")):
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        image = Image.open(path).convert("RGB").filter(ImageFilter.GaussianBlur(4))
        Image.eval(image, lambda v: 255 - v // 3).save(target)
    return dest


def test_predict_says_when_the_photos_differ(tiny_run: Path, tmp_path: Path,
                                             capsys: pytest.CaptureFixture) -> None:
    data = tiny_run.parent / "data"
    classifier = petal.load(tiny_run, engine="torch")
    photos = sorted(data.rglob("*.jpg"))
    alike = classifier.predict(photos)
    assert classifier.shift(alike).n == len(photos)
    later = sorted(_dimmed(data, tmp_path / "later").rglob("*.jpg"))
    with pytest.warns(PetalWarning, match="less like the training photos"):
        answers = classifier.predict(later)
    assert classifier.shift(answers).shifted
    assert classifier.keeping(None).shift(answers) is None  # nothing rejected: no check

    assert main(["predict", str(tiny_run), str(tmp_path / "later"), "--engine", "torch",
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"these {len(later)} photos are less like the training photos" in err


def test_predict_is_quiet_on_the_training_kind_of_photo(tiny_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    held_out = tmp_path / "alike"
    shutil.copytree(tiny_run.parent / "data", held_out)
    with warnings.catch_warnings():
        warnings.simplefilter("error", PetalWarning)
        assert main(["predict", str(tiny_run), str(held_out), "--engine", "torch",
                     "--no-progress"]) == 0
    out = capsys.readouterr()
    assert "less like" not in out.err and "photos differ" in out.out


def test_the_server_checks_each_window_of_answers(tiny_run: Path, tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    later = sorted(_dimmed(tiny_run.parent / "data", tmp_path / "later").rglob("*.jpg"))
    models = load_models([f"tiny={tiny_run}"], engine="torch")
    with (BackgroundServer(create_app(models, ServeOptions(shift_window=MIN_PHOTOS))) as url,
          httpx.Client(base_url=url, timeout=30) as client):
        assert client.get("/api/shift").json()["models"] == [
            {"name": "tiny", "pending": 0, "answers": 0, "unavailable": None, "last": None}]
        with caplog.at_level("WARNING", logger="petal"):
            for path in later[:MIN_PHOTOS + 3]:
                response = client.post("/api/predict", files={"file": path.read_bytes()})
                assert response.status_code == 200
        shift = client.get("/api/shift").json()
    model = shift["models"][0]
    assert shift["window"] == MIN_PHOTOS and model["pending"] == 3
    assert model["answers"] == MIN_PHOTOS + 3
    assert model["last"]["shifted"] and model["last"]["n"] == MIN_PHOTOS
    assert "less like the training photos" in model["last"]["message"]
    assert any("tiny: these 10 photos are less like" in r.getMessage() for r in caplog.records)


def test_serve_refuses_a_window_too_small_to_tell(tiny_run: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    assert main(["serve", str(tiny_run), "--port", "0", "--shift-window", "3"]) == 1
    assert "--shift-window must be between 10" in capsys.readouterr().err


def test_evaluate_and_the_label_queue_say_when_the_photos_differ(tiny_run: Path,
                                                                 tmp_path: Path) -> None:
    later = _dimmed(tiny_run.parent / "data", tmp_path / "later")
    evaluation = petal.evaluate(tiny_run, data=later, out=tmp_path / "eval")
    shift = evaluation.metrics["shift"]
    assert shift["shifted"] and shift["n"] == 24 and shift["expected_share"] < shift["share"]
    assert ("warning: these 24 photos are less like the training photos"
            in format_summary(evaluation.metrics))
    own = petal.evaluate(tiny_run, out=tmp_path / "own")
    assert "shift" not in own.metrics  # its own held-out photos are what the check compares to

    flat = tmp_path / "new"
    flat.mkdir()
    for path in later.rglob("*.jpg"):
        shutil.copy(path, flat / path.name)
    queue = LabelQueue(flat, tiny_run, tmp_path / "labels", engine="torch", progress=False)
    assert queue.shift is not None and queue.shift.shifted
    assert "less like the training photos" in queue.page()["summary"]
