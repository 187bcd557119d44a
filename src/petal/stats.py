"""How much an accuracy measured on n images can be trusted: its 95 % interval; whether two
models' accuracies on the same photos differ (McNemar); and the softmax that turns any
engine's logits into probabilities.

The Wilson score interval: unlike the normal approximation it stays inside [0, 1] and is
not zero-width at 0 % or 100 %, which matters most on the small validation sets where an
interval is shown at all. scipy's binomtest(...).proportion_ci(method="wilson") gives the
same figures, but importing scipy.stats takes 0.7-0.9 s, which every command that prints an
accuracy would pay; these few lines cost nothing.
"""

from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959964  # the normal quantile of a two-sided 95 % interval
INTERVAL_BELOW = 200  # accuracies on fewer images are printed with their interval
FEW_PHOTOS = 5  # photos of a class below which its per-class figures are marked as rough


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The 95 % Wilson score interval of the proportion correct / n."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def describe_accuracy(correct: int, n: int, interval: bool = False) -> str:
    """'95.6 % (412 of 431 images)', with the interval under INTERVAL_BELOW images (or
    always, with `interval`)."""
    text = f"{100 * correct / n:.1f} % ({correct} of {n} images" if n else "- (no images"
    if 0 < n and (interval or n < INTERVAL_BELOW):
        low, high = wilson_interval(correct, n)
        text += f"; 95 % interval {100 * low:.1f}-{100 * high:.1f} %"
    return text + ")"


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, classes) logits -> probabilities, each row summing to 1 (shifted: no overflow)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def mcnemar_p(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar test of two classifiers on the same photos: given the photos
    only the first got right and those only the second got right, the chance of a split at
    least this uneven if both were equally good (a binomial test at one half)."""
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(only_first, only_second) + 1)) / 2**n
    return min(1.0, 2 * tail)
