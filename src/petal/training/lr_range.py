"""The learning-rate range test's curve and its suggestion, from the raw loss of every step.

Lightning's range test smooths the loss with an exponential average whose bias correction is
one step off (it divides by 1 - beta^(step + 1) after the step counter has already moved), so
its first values are about half the real loss and the curve climbs for dozens of steps where
the weights have barely moved; its suggestion, the steepest point of that curve, lands on the
artefact. Even corrected, an exponential average with fastai's and Lightning's beta (0.98)
lags the loss by up to 50 steps, half of a 100-step test: on the flowers curves its lowest
point sat 2 to 50 times to the right of the loss's. petal records the raw losses itself and,
as the whole curve is known once the test ends, smooths them with a centred moving average
(no lag), whose window narrows at both ends so the curve starts at the first loss.

Rules turn the curve into a learning rate: fastai's valley, steep and minimum, and floor,
where the loss stops falling (Smith's upper bound for a one-cycle schedule, which every petal
recipe but original-resnet9 uses). `benchmarks/lr_find.py` compares them against the recipes'
hand-tuned learning rates on the flowers set: floor came within a factor of 2.6 of them,
fastai's valley 5 to 16 times below (docs/RESULTS.md), so floor is SUGGESTION_RULE.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SMOOTHING_SHARE = 0.05  # half the smoothing window: 5 of 100 steps, a third of a decade
SKIP_START = 0.1  # share of the first steps no rule looks at (fastai: num_it // 10)
SKIP_END = 5  # nor the last steps, where the loss diverges (fastai: 5)
FLOOR_SHARE = 0.05  # the floor rule: within 5 % of the fall above the lowest loss


def smoothed(losses: Sequence[float], share: float = SMOOTHING_SHARE) -> np.ndarray:
    """The centred moving average of `losses` over `share` of the steps on each side, the
    window narrowing to fit at the ends; infinite and NaN losses are left out of it.
    (Hand-written: scipy's filters pad the ends instead of narrowing the window, which would
    bend the curve's first and last points towards made-up values.)"""
    values = np.asarray(losses, float)
    n = len(values)
    finite = np.isfinite(values)
    sums = np.concatenate([[0.0], np.cumsum(np.where(finite, values, 0.0))])
    counts = np.concatenate([[0], np.cumsum(finite)])
    steps = np.arange(n)
    half = np.minimum(max(1, round(share * n)), np.minimum(steps, n - 1 - steps))
    low, high = steps - half, steps + half + 1
    count = counts[high] - counts[low]
    return np.where(count > 0, (sums[high] - sums[low]) / np.maximum(count, 1), np.nan)


def _window(lrs: Sequence[float], losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """The part of the curve the rules look at, and the index its first point had."""
    start = int(len(losses) * SKIP_START)
    end = max(start + 2, len(losses) - SKIP_END)
    return np.asarray(lrs[start:end], float), np.asarray(losses[start:end], float), start


def valley(lrs: Sequence[float], losses: np.ndarray) -> int | None:
    """fastai's default: the middle of the longest stretch over which the loss keeps falling
    (a longest decreasing subsequence, so a noisy step does not break it)."""
    lrs, losses, start = _window(lrs, losses)
    n = len(losses)
    if n < 3:
        return None
    longest = np.ones(n, int)
    for i in range(1, n):
        earlier = np.flatnonzero(losses[:i] > losses[i])
        if len(earlier):
            longest[i] = longest[earlier].max() + 1
    end = int(longest.argmax())
    sections = longest[end] / 3  # fastai's index: half-way along the stretch
    return start + max(0, end - int(longest[end]) + int(sections) + int(sections / 2))


def steep(lrs: Sequence[float], losses: np.ndarray) -> int | None:
    """fastai's "steep": where the loss falls fastest against log(learning rate)."""
    lrs, losses, start = _window(lrs, losses)
    if len(losses) < 3:
        return None
    return start + int(np.argmin(np.gradient(losses, np.log(lrs))))


def minimum(lrs: Sequence[float], losses: np.ndarray) -> int | None:
    """fastai's "minimum": a tenth of the learning rate of the lowest loss (as an index)."""
    window_lrs, window, start = _window(lrs, losses)
    if len(window) < 3:
        return None
    target = window_lrs[int(np.nanargmin(window))] / 10
    return int(np.argmin(np.abs(np.log(np.asarray(lrs, float)) - np.log(target))))


def floor(lrs: Sequence[float], losses: np.ndarray) -> int | None:
    """Where the loss stops falling, Smith's upper bound for a one-cycle schedule: walking
    left from the lowest point of the curve, the last learning rate whose loss is still
    within FLOOR_SHARE of the fall (from the highest point before the lowest) above it."""
    lrs, losses, start = _window(lrs, losses)
    if len(losses) < 3:
        return None
    lowest = int(np.nanargmin(losses))
    band = losses[lowest] + FLOOR_SHARE * (np.nanmax(losses[:lowest + 1]) - losses[lowest])
    edge = lowest
    while edge > 0 and losses[edge - 1] <= band:
        edge -= 1
    return start + edge


RULES: dict[str, Callable[[Sequence[float], np.ndarray], int | None]] = {
    "floor": floor, "valley": valley, "steep": steep, "minimum": minimum}
SUGGESTION_RULE = "floor"


def suggest(lrs: Sequence[float], losses: Sequence[float],
            rule: str = SUGGESTION_RULE) -> float | None:
    """The learning rate `rule` picks from the raw `losses` of a range test over `lrs`."""
    curve = smoothed(losses)
    finite = np.isfinite(curve)
    if finite.sum() < 3:
        return None
    kept_lrs = np.asarray(lrs, float)[finite]
    index = RULES[rule](kept_lrs, curve[finite])
    return None if index is None else float(kept_lrs[index])


@dataclass
class LRFinding:
    """One range test (`petal.lr_find`): the learning rate and raw loss of every step, what
    it suggests, and the rate the recipe trains at, for comparison."""

    lrs: list[float]
    losses: list[float]
    suggestion: float | None
    rule: str = SUGGESTION_RULE
    seconds: float = 0.0
    recipe_lr: float | None = None

    @classmethod
    def from_steps(cls, lrs: Sequence[float], losses: Sequence[float], seconds: float = 0.0,
                   rule: str = SUGGESTION_RULE, recipe_lr: float | None = None) -> LRFinding:
        n = min(len(lrs), len(losses))
        lrs, losses = [float(v) for v in lrs[:n]], [float(v) for v in losses[:n]]
        return cls(lrs, losses, suggest(lrs, losses, rule), rule, seconds, recipe_lr)

    @property
    def smoothed(self) -> list[float]:
        return smoothed(self.losses).tolist()

    def figure(self) -> Figure:
        """The curve, the suggestion and the recipe's rate (matplotlib)."""
        from petal.report.curves import lr_finder_figure

        return lr_finder_figure(self.lrs, self.losses, self.smoothed, self.suggestion,
                                self.recipe_lr)

    plot = figure

    def summary(self) -> str:
        said = (f"suggested learning rate {self.suggestion:.3g} ({self.rule} rule)"
                if self.suggestion is not None else "no suggestion: the loss never fell")
        recipe = f"; the recipe trains at {self.recipe_lr:.3g}" if self.recipe_lr else ""
        return f"{said}{recipe}, from {len(self.lrs)} steps in {self.seconds:.0f} s"

    def _repr_html_(self) -> str:
        from petal.display import paragraph
        from petal.report.notebook import figure_html

        return paragraph(f"LR finder: {self.summary()}") + figure_html(self.figure())

    def to_json(self) -> dict:
        """Plain JSON: a diverged (infinite or NaN) loss is null."""
        def finite(values: list[float]) -> list[float | None]:
            return [v if math.isfinite(v) else None for v in values]

        return {"suggestion": self.suggestion, "rule": self.rule, "lrs": self.lrs,
                "losses": finite(self.losses), "smoothed": finite(self.smoothed),
                "seconds": round(self.seconds, 2)}
