"""How much an accuracy measured on n images can be trusted: its 95 % interval; and the
softmax that turns any engine's logits into probabilities.

The Wilson score interval: unlike the normal approximation it stays inside [0, 1] and is
not zero-width at 0 % or 100 %, which matters most on the small validation sets where an
interval is shown at all (a few lines; scipy and statsmodels are not petal dependencies).
"""

from __future__ import annotations

import math

import numpy as np

Z_95 = 1.959964  # the normal quantile of a two-sided 95 % interval
INTERVAL_BELOW = 200  # accuracies on fewer images are printed with their interval


def wilson_interval(correct: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """The 95 % Wilson score interval of the proportion correct / n."""
    if n <= 0:
        return 0.0, 1.0
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def describe_accuracy(correct: int, n: int) -> str:
    """'95.6 % (412 of 431 images)', with the interval under INTERVAL_BELOW images."""
    text = f"{100 * correct / n:.1f} % ({correct} of {n} images" if n else "- (no images"
    if 0 < n < INTERVAL_BELOW:
        low, high = wilson_interval(correct, n)
        text += f"; 95 % interval {100 * low:.1f}-{100 * high:.1f} %"
    return text + ")"


def softmax(logits: np.ndarray) -> np.ndarray:
    """(N, classes) logits -> probabilities, each row summing to 1 (shifted: no overflow)."""
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
