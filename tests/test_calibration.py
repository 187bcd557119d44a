"""Temperature scaling: the confidence a model states matches how often it is right, fitted
on held-out photos, and no answer changes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import petal
from conftest import card_edited_copy
from petal.errors import PetalError
from petal.inference.export import export
from petal.inference.model_folder import load_model
from petal.inference.preprocess import to_input
from petal.stats import softmax
from petal.training.calibration import calibrate, expected_calibration_error, fit_temperature


def _sampled(temperature: float, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Logits, and labels drawn from softmax(logits / temperature): a model whose logits are
    `temperature` times too sharp (or too flat)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(0, 3, (n, 5))
    probabilities = softmax(logits / temperature)
    labels = np.array([rng.choice(5, p=p) for p in probabilities])
    return logits, labels


@pytest.mark.parametrize("truth", [0.5, 1.0, 2.5])
def test_the_fitted_temperature_is_the_true_one(truth: float) -> None:
    logits, labels = _sampled(truth)
    assert fit_temperature(logits, labels) == pytest.approx(truth, rel=0.1)
    if truth != 1.0:  # a miscalibrated model gets better calibrated
        assert expected_calibration_error(logits, labels, truth) < \
            expected_calibration_error(logits, labels) / 2


def test_the_reported_ece_is_cross_fitted() -> None:
    """The calibrated ECE is not measured on the photos the temperature was fitted on: each
    half is scaled by the other half's temperature."""
    logits, labels = _sampled(2.0, n=600)
    found = calibrate(logits, labels, "validation")
    order = np.random.default_rng(0).permutation(600)
    first, second = order[::2], order[1::2]
    cross = np.empty_like(logits)
    cross[second] = logits[second] / fit_temperature(logits[first], labels[first])
    cross[first] = logits[first] / fit_temperature(logits[second], labels[second])
    assert found["ece_calibrated"] == pytest.approx(expected_calibration_error(cross, labels),
                                                    abs=1e-6)
    assert found["ece_calibrated"] < found["ece"] and found["n"] == 600
    assert found["temperature"] == pytest.approx(fit_temperature(logits, labels), rel=1e-4)
    assert fit_temperature(logits[:1], labels[:1]) == 1.0  # one photo cannot set it


def test_calibration_changes_no_answer_in_torch_or_onnx(tiny_run: Path, tmp_path: Path) -> None:
    assert petal.load(tiny_run).card.calibration["fitted_on"] == "validation"
    temperature = 0.4  # as a strongly under-confident model gets
    run = card_edited_copy(tiny_run, tmp_path / "run",
                           lambda card: card["calibration"].update(temperature=temperature))
    photos = sorted((tiny_run.parent / "data").rglob("*.jpg"))
    classifier = petal.load(run)
    arrays = np.stack([classifier.prepare(p) for p in photos])
    network, spec_card = load_model(run)
    with torch.inference_mode():
        raw = network(torch.from_numpy(to_input(arrays, spec_card.input))).numpy()
    answered = classifier.answer(arrays).probabilities
    np.testing.assert_allclose(answered, softmax(raw / temperature), atol=1e-5)
    onnx = petal.load(export(run, out=tmp_path / "tiny.onnx").path)
    for probabilities in (answered, onnx.answer(arrays).probabilities):
        assert (probabilities.argmax(axis=1) == raw.argmax(axis=1)).all()


@pytest.mark.parametrize("temperature", [0, -1, 1e9, "2", None])
def test_a_crafted_temperature_is_refused(tiny_run: Path, tmp_path: Path,
                                          temperature: object) -> None:
    copy = card_edited_copy(tiny_run, tmp_path / "run",
                            lambda card: card["calibration"].update(temperature=temperature))
    with pytest.raises(PetalError, match="calibration must be an object whose temperature"):
        petal.load(copy)


def test_a_temperature_that_does_not_help_held_out_photos_is_not_applied() -> None:
    """Fitted on a few photos of a calibrated model, the temperature makes the other half
    worse: it stays 1."""
    logits, labels = _sampled(1.0, n=12, seed=3)
    found = calibrate(logits, labels, "validation")
    assert found["ece_calibrated"] >= found["ece"]
    assert found["applied"] is False and found["temperature"] == 1.0


def test_mcnemar_is_the_exact_binomial_test_of_the_discordant_photos() -> None:
    from petal.stats import mcnemar_p

    assert mcnemar_p(0, 0) == 1.0 and mcnemar_p(5, 5) == 1.0
    assert mcnemar_p(0, 3) == pytest.approx(0.25) == mcnemar_p(3, 0)  # 2 * (1/2)^3
    assert mcnemar_p(1, 9) == pytest.approx(2 * 11 / 1024)
    assert mcnemar_p(8, 50) < 1e-7
