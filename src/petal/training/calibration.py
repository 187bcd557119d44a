"""Calibrated confidence by temperature scaling (Guo et al. 2017, "On calibration of modern
neural networks"): one scalar T divides every logit before the softmax, chosen to minimise
the negative log-likelihood of photos the model did not train on. The argmax, and so every
label petal answers, never changes; only how sure it says it is. (Label smoothing, which
the fast recipes use, leaves a model under-confident: T < 1 sharpens it again.)

T is fitted on held-out logits (the validation photos, or out-of-fold ones). Its effect is
measured without fitting on the photos it is scored on: the held-out photos are halved,
T fitted on each half scores the other, and the expected calibration error (ECE, top-1,
15 bins, as `petal evaluate` reports it) is taken over both halves.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.classification import multiclass_calibration_error

from petal.inference.model_folder import MAX_TEMPERATURE, MIN_TEMPERATURE  # model.json's bounds

BINS = 15


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The T that minimises the mean negative log-likelihood of softmax(logits / T); 1.0 for
    fewer than two photos. One parameter, fitted by L-BFGS on log T."""
    if len(labels) < 2:
        return 1.0
    inputs = torch.from_numpy(np.asarray(logits, np.float64))
    targets = torch.from_numpy(np.asarray(labels, np.int64))
    log_t = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_t], max_iter=100, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(inputs / log_t.exp(), targets)
        value.backward()
        return value

    optimizer.step(loss)
    temperature = float(log_t.detach().exp())
    if not math.isfinite(temperature):
        return 1.0
    return min(max(temperature, MIN_TEMPERATURE), MAX_TEMPERATURE)


def expected_calibration_error(logits: np.ndarray, labels: np.ndarray,
                               temperature: float = 1.0) -> float:
    """Top-1 ECE of softmax(logits / temperature) in BINS equal-width bins (TorchMetrics)."""
    probabilities = torch.softmax(torch.from_numpy(np.asarray(logits, np.float64))
                                  / temperature, dim=1)
    return float(multiclass_calibration_error(
        probabilities, torch.from_numpy(np.asarray(labels, np.int64)),
        num_classes=probabilities.shape[1], n_bins=BINS, norm="l1"))


def calibrate(logits: np.ndarray, labels: np.ndarray, fitted_on: str) -> dict:
    """model.json's `calibration`: the temperature fitted on all of `logits`, and the ECE
    before it and after it, the latter cross-fitted over two halves (module docstring). When
    the cross-fitted ECE is not lower (a few noisy photos), the temperature stays 1: a fit
    that does not help photos it was not fitted on is not applied."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    order = np.random.default_rng(0).permutation(len(labels))
    halves = (order[::2], order[1::2])
    cross_fitted = np.empty_like(logits)  # each half scaled by the other half's temperature
    for fit_on, score_on in (halves, halves[::-1]):
        cross_fitted[score_on] = logits[score_on] / fit_temperature(logits[fit_on],
                                                                    labels[fit_on])
    before = expected_calibration_error(logits, labels)
    after = expected_calibration_error(cross_fitted, labels)
    return {"temperature": round(fit_temperature(logits, labels), 6) if after < before else 1.0,
            "fitted_on": fitted_on, "n": int(len(labels)), "ece": round(before, 6),
            "ece_calibrated": round(after, 6), "applied": after < before, "bins": BINS}
