"""The review's numerics: out-of-fold probabilities from a linear head on pretrained features,
confident learning's likely label mistakes (Northcutt, Jiang and Chuang 2021), the other
disagreements, and each photo's distance from the others (petal.jobs.review says why).
Written here (a few lines) rather than taken from cleanlab, whose AGPL-3.0 licence does not
fit petal's MIT licence."""

from __future__ import annotations

import numpy as np
import torch

from petal.inference import novelty
from petal.stats import softmax


def fit_linear(features: np.ndarray, labels: np.ndarray, classes: int,
               weight_decay: float = 1e-3, steps: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression on standardised features, full batch with L-BFGS.
    (A linear probe of a few thousand rows: one torch optimiser call, no training loop.)"""
    inputs = torch.from_numpy(features.astype(np.float32))
    targets = torch.from_numpy(labels.astype(np.int64))
    weight = torch.zeros(features.shape[1], classes, requires_grad=True)
    bias = torch.zeros(classes, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=steps, line_search_fn="strong_wolfe")

    def loss() -> torch.Tensor:
        optimizer.zero_grad()
        value = torch.nn.functional.cross_entropy(inputs @ weight + bias, targets)
        value = value + weight_decay * weight.pow(2).sum()
        value.backward()
        return value

    optimizer.step(loss)
    return weight.detach().numpy(), bias.detach().numpy()


def out_of_fold(features: np.ndarray, labels: np.ndarray, classes: int, fold: np.ndarray
                ) -> np.ndarray:
    """(N, classes) probabilities, each from a head fitted without the image's `fold`."""
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    standard = (features - mean) / std
    probabilities = np.zeros((len(labels), classes), np.float32)
    for k in np.unique(fold):
        held = fold == k
        weight, bias = fit_linear(standard[~held], labels[~held], classes)
        probabilities[held] = softmax(standard[held] @ weight + bias)
    return probabilities


RANKINGS = ("self-confidence", "margin")  # the first is the default


def label_issues(probabilities: np.ndarray, labels: np.ndarray, rank: str = RANKINGS[0]
                 ) -> list[tuple[int, int, float]]:
    """(image, suggested class, score) of the confident joint's off-diagonal images, the
    likeliest mistake first. `rank` "self-confidence": score 1 minus the given label's
    probability (cleanlab's self-confidence, lowest first); "margin": the suggested class's
    probability minus the given one's. Self-confidence ranked the flipped labels of the
    flowers set higher with every trunk measured (docs/RESULTS.md, Label review); both cost
    the same, one pass over the out-of-fold probabilities."""
    if rank not in RANKINGS:
        raise ValueError(f"rank {rank!r}: one of {RANKINGS}")
    classes = probabilities.shape[1]
    thresholds = np.array([probabilities[labels == c, c].mean() if (labels == c).any() else 1.0
                           for c in range(classes)])
    above = probabilities >= thresholds  # classes each image confidently belongs to
    candidates = np.where(above, probabilities, -np.inf)
    confident = candidates.argmax(axis=1)
    found = [(i, int(confident[i]),
              float(1 - probabilities[i, g]) if rank == "self-confidence"
              else float(probabilities[i, confident[i]] - probabilities[i, g]))
             for i, g in enumerate(labels) if above[i].any() and confident[i] != g]
    return sorted(found, key=lambda item: -item[2])


def hard_cases(probabilities: np.ndarray, labels: np.ndarray, flagged: set[int]
               ) -> list[tuple[int, int, float]]:
    """(image, predicted class, score) of every image whose out-of-fold prediction is another
    class and that is not in `flagged`, the largest score (predicted minus given probability)
    first."""
    predicted = probabilities.argmax(axis=1)
    found = [(i, int(p), float(probabilities[i, p] - probabilities[i, g]))
             for i, (p, g) in enumerate(zip(predicted, labels)) if p != g and i not in flagged]
    return sorted(found, key=lambda item: -item[2])


def outlier_scores(features: np.ndarray) -> np.ndarray:
    """Each image's distance to its 10th nearest other image (the open-set score)."""
    reference = novelty.reference_features(features)
    return novelty.knn_distance(features, reference, novelty.KNN_K + 1)  # +1: itself
