"""Result figures as PNG files: confusion matrix, mistakes, reliability, predictions, comparison.

Each plot_ function draws one figure from plain data (images, labels, probabilities),
writes it and closes it; none of them knows about models or torch.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from petal.data.image import load_image  # noqa: E402
from petal.fsutil import atomic_write_bytes  # noqa: E402

GALLERY_MAX = 16  # images in a gallery figure: enough to see a pattern, still readable


@dataclass(frozen=True)
class Mistake:
    """A wrong prediction: the photo, its true label, the predicted one and its probability."""

    image: Image.Image | np.ndarray
    true: str
    predicted: str
    confidence: float


@dataclass(frozen=True)
class Ranking:
    """One model's top-k for the comparison figure, most probable first."""

    title: str
    labels: Sequence[str]
    probabilities: Sequence[float]


def thumbnail(path: str | Path, side: int = 256) -> Image.Image:
    """An image file as an RGB picture at most `side` px wide and high, for a gallery."""
    image = load_image(path, min_size=side)
    image.thumbnail((side, side))
    return image


def save_figure(fig: plt.Figure, path: Path) -> Path:
    """Lay out, write atomically as PNG (a full disk leaves the previous file) and close."""
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def _matrix_panel(ax: plt.Axes, values: np.ndarray, classes: Sequence[str], title: str,
                  fmt: str) -> None:
    ax.imshow(values, cmap="Blues", vmin=0, vmax=max(float(values.max()), 1e-9))
    ticks = range(len(classes))
    ax.set_xticks(ticks, classes, rotation=45, ha="right")
    ax.set_yticks(ticks, classes)
    ax.set(xlabel="predicted", ylabel="true", title=title)
    threshold = values.max() / 2
    for (row, col), value in np.ndenumerate(values):
        ax.text(col, row, format(value, fmt), ha="center", va="center", fontsize=8,
                color="white" if value > threshold else "black")


def plot_confusion_matrix(matrix: np.ndarray, classes: Sequence[str], path: Path) -> Path:
    """Counts (left) and rows normalised to recall (right) in one PNG; rows = true class."""
    matrix = np.asarray(matrix)
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    side = 2.5 + 0.6 * len(classes)
    fig, (left, right) = plt.subplots(1, 2, figsize=(2 * side, side))
    _matrix_panel(left, matrix, classes, "Confusion matrix (counts)", "d")
    _matrix_panel(right, normalised, classes, "Confusion matrix (row-normalised)", ".2f")
    return save_figure(fig, path)


def _gallery(images: Sequence[Image.Image | np.ndarray], captions: Sequence[str], path: Path,
             title: str, caption_color: str = "black") -> Path:
    """Images in a grid of up to 4 columns, each titled with its caption."""
    cols = min(4, len(images))
    rows = math.ceil(len(images) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3.3 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image)
        ax.set_title(caption, fontsize=9, color=caption_color)
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_worst_mistakes(mistakes: Sequence[Mistake], path: Path, n_images: int,
                        n_mistakes: int) -> Path:
    """The first GALLERY_MAX of `mistakes` (most confident first); says so when there are none.

    `n_images` and `n_mistakes` are the totals of the evaluation, for the title.
    """
    if not mistakes:
        fig, ax = plt.subplots(figsize=(6, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No mistakes: all {n_images} images classified correctly",
                ha="center", va="center", fontsize=12)
        return save_figure(fig, path)
    shown = list(mistakes)[:GALLERY_MAX]
    captions = [f"true: {m.true}\npredicted: {m.predicted} ({m.confidence:.1%})" for m in shown]
    title = f"Most confident mistakes ({len(shown)} of {n_mistakes}, {n_images} images)"
    return _gallery([m.image for m in shown], captions, path, title, "tab:red")


def plot_predictions(images: Sequence[Image.Image | np.ndarray], labels: Sequence[str],
                     probabilities: Sequence[float], path: Path, total: int) -> Path:
    """Each image titled with its predicted label and probability; `total` images were predicted.

    Draws at most GALLERY_MAX images, the first ones given.
    """
    n = min(len(images), GALLERY_MAX)
    captions = [f"{label} ({p:.1%})" for label, p in zip(labels[:n], probabilities[:n])]
    shown = f"first {n} of {total}" if total > n else f"{n}"
    return _gallery(list(images[:n]), captions, path, f"Predictions ({shown} images)")


def plot_reliability(confidences: np.ndarray, correct: np.ndarray, ece: float, path: Path,
                     n_bins: int = 15) -> Path:
    """Accuracy against confidence in `n_bins` equal-width bins, with the diagonal of calibration.

    Bars are drawn only for bins holding images; a lower panel shows how many each holds.
    """
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidences, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    hits = np.bincount(bins, weights=correct.astype(float), minlength=n_bins)
    accuracy = np.divide(hits, counts, out=np.zeros(n_bins), where=counts > 0)
    centres, width = (edges[:-1] + edges[1:]) / 2, 1 / n_bins
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    filled = counts > 0
    top.bar(centres[filled], accuracy[filled], width=width, edgecolor="black",
            color="tab:blue", label="accuracy")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
            title=f"Reliability diagram (ECE {ece:.3f}, {n_bins} bins)")
    top.legend(loc="upper left")
    bottom.bar(centres, counts, width=width, edgecolor="black", color="tab:gray")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="images")
    return save_figure(fig, path)


def plot_comparison(image: Image.Image | np.ndarray, rankings: Sequence[Ranking],
                    path: Path) -> Path:
    """The image, then each model's top-k as labelled horizontal bars, side by side."""
    fig, axes = plt.subplots(1, 1 + len(rankings), figsize=(3.6 * (1 + len(rankings)), 3.4),
                             squeeze=False)
    axes[0, 0].imshow(image)
    axes[0, 0].axis("off")
    for ax, ranking in zip(axes[0, 1:], rankings):
        positions = np.arange(len(ranking.labels))
        bars = ax.barh(positions, ranking.probabilities,
                       color=["tab:green"] + ["tab:gray"] * (len(ranking.labels) - 1))
        ax.bar_label(bars, [f"{p:.1%}" for p in ranking.probabilities], padding=2, fontsize=8)
        ax.set_yticks(positions, ranking.labels)
        ax.invert_yaxis()  # most probable on top
        ax.set_xticks([0, 0.5, 1])
        ax.set(xlim=(0, 1.25), xlabel="probability", title=ranking.title)
    return save_figure(fig, path)
