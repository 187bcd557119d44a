"""Result figures as PNG files: confusion matrix, mistakes, reliability, predictions, comparison.

Each plot_ function draws one figure from plain data (images, labels, probabilities) and
writes it; a *_figure function returns the figure itself (for a notebook). None of them knows
about models or torch. Figures are matplotlib's object API, not pyplot: no global state, no
backend chosen for the caller (a notebook keeps its own), nothing to close.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from PIL import Image

from petal.data.image import load_image
from petal.fsutil import atomic_write_bytes

GALLERY_MAX = 16  # images in a gallery figure: enough to see a pattern, still readable
LABEL_CHARS = 22  # class names longer than this are cut short in captions and bar labels


def short(label: str, limit: int = LABEL_CHARS) -> str:
    """`label`, cut to `limit` characters with an ellipsis, so captions do not overlap."""
    return label if len(label) <= limit else label[:limit - 1] + "…"


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
    unknown: bool = False  # the model says the photo is none of its classes
    overlay: np.ndarray | None = None  # where it looked for its top class (petal.inference.explain)


def thumbnail(path: str | Path, side: int = 256) -> Image.Image:
    """An image file as an RGB picture at most `side` px wide and high, for a gallery."""
    image = load_image(path, min_size=side)
    image.thumbnail((side, side))
    return image


class ShownFigure(Figure):
    """A Figure that Jupyter draws where it is a cell's result, pyplot or not."""

    def _repr_png_(self) -> bytes:
        return png_bytes(self)


def subplots(*grid: int, **options: Any) -> tuple[Figure, Any]:
    """A figure of its own and its axes, as pyplot.subplots gives them."""
    figure = {key: options.pop(key) for key in ("figsize", "layout") if key in options}
    fig = ShownFigure(**figure)
    return fig, fig.subplots(*grid, **options)


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG, laid out (unless it has its own layout engine)."""
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def save_figure(fig: Figure, path: Path) -> Path:
    """Write the figure atomically as PNG (a full disk leaves the previous file)."""
    atomic_write_bytes(path, png_bytes(fig))
    return path


def confusion_matrix_figure(matrix: np.ndarray, classes: Sequence[str]) -> Figure:
    """One panel sized to its classes: cells shaded by the share of their row (recall on the
    diagonal) and labelled with their count (zeros left blank); rows = true class.

    A cell is 0.32 inch (35 px) at any number of classes, so 50 classes stay legible at full
    size instead of being shrunk into a fixed frame.
    """
    matrix = np.asarray(matrix)
    n = len(classes)
    totals = matrix.sum(axis=1, keepdims=True)
    shares = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    label_inches = 0.09 * max((len(c) for c in classes), default=1) + 0.6
    side = max(3.0, 0.32 * n)
    fig, ax = subplots(figsize=(side + label_inches + 1.2, side + label_inches + 0.6))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    ticks = range(n)
    fontsize = 10 if n <= 10 else 9 if n <= 30 else 8
    ax.set_xticks(ticks, classes, rotation=45 if n <= 10 else 90,
                  ha="right" if n <= 10 else "center", fontsize=fontsize)
    ax.set_yticks(ticks, classes, fontsize=fontsize)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title("Confusion matrix: counts, shaded by share of the true class", fontsize=10)
    for (row, col), value in np.ndenumerate(matrix):
        if value:
            ax.text(col, row, str(value), ha="center", va="center", fontsize=fontsize,
                    color="white" if shares[row, col] > 0.5 else "black")
    fig.colorbar(image, ax=ax, fraction=0.04, pad=0.02, label="share of the true class")
    return fig


def _gallery(images: Sequence[Image.Image | np.ndarray], captions: Sequence[str], path: Path,
             title: str, colors: Sequence[str] | None = None, columns: int = 4) -> Path:
    """Images in a grid of up to `columns` columns, each titled with its caption (in its
    colour)."""
    cols = min(columns, len(images))
    rows = math.ceil(len(images) / cols)
    # a title line wider than one or two photos is wrapped, not clipped at the figure's edge
    title = "\n".join(textwrap.fill(line, width=max(30, 24 * cols)) for line in title.split("\n"))
    # constrained layout keeps the title clear of a portrait photo's caption (tight_layout
    # let them overlap)
    fig, axes = subplots(rows, cols, figsize=(3 * cols, 3.4 * rows + 0.4 * title.count("\n")
                                                  + 0.4), squeeze=False, layout="constrained")
    for ax in axes.flat:
        ax.axis("off")
    for i, (ax, image, caption) in enumerate(zip(axes.flat, images, captions)):
        ax.imshow(image)
        ax.set_title(caption, fontsize=10, color=colors[i] if colors else "black")
    fig.suptitle(title, fontsize=12)
    return save_figure(fig, path)


RIGHT, WRONG, UNKNOWN = "tab:green", "tab:red", "tab:orange"


def plot_gallery(images: Sequence[Image.Image | np.ndarray], captions: Sequence[str],
                 path: Path, title: str, limit: int = GALLERY_MAX, columns: int = 4) -> Path:
    """Images with a caption each (at most `limit`); says so when there are none."""
    if not images:
        fig, ax = subplots(figsize=(6, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"{title}: none", ha="center", va="center", fontsize=12)
        return save_figure(fig, path)
    return _gallery(list(images)[:limit], list(captions)[:limit], path, title, columns=columns)


def plot_worst_mistakes(mistakes: Sequence[Mistake], path: Path, n_images: int,
                        n_mistakes: int, explained: bool = False) -> Path:
    """The first GALLERY_MAX of `mistakes` (most confident first); says so when there are none.

    `n_images` and `n_mistakes` are the totals of the evaluation, for the title; `explained`:
    the images carry the heat map of the wrongly predicted class.
    """
    if not mistakes:
        fig, ax = subplots(figsize=(6, 2.5))
        ax.axis("off")
        ax.text(0.5, 0.5, f"No mistakes: all {n_images} images classified correctly",
                ha="center", va="center", fontsize=12)
        return save_figure(fig, path)
    shown = list(mistakes)[:GALLERY_MAX]
    captions = [f"true: {short(m.true)}\n✗ predicted: {short(m.predicted)} "
                f"({m.confidence:.1%})" for m in shown]
    title = f"Most confident mistakes ({len(shown)} of {n_mistakes}, {n_images} images)"
    if explained:
        title += "\nred: where the model looked for the class it predicted"
    return _gallery([m.image for m in shown], captions, path, title, [WRONG] * len(shown))


def plot_predictions(images: Sequence[Image.Image | np.ndarray], labels: Sequence[str],
                     probabilities: Sequence[float], path: Path, total: int,
                     truths: Sequence[str] | None = None, title: str = "Predictions",
                     unknown: Sequence[bool] | None = None, limit: int = GALLERY_MAX) -> Path:
    """Each image titled with its predicted label and probability; `total` images were predicted.

    An image the model calls `unknown` is captioned so, with its closest class (no
    percentage: one shared among classes the photo is none of would read as certainty), in
    orange.
    With `truths` (labelled photos), each caption also gives the true label and a ✓ in green
    or a ✗ in red. Draws at most `limit` images, the first ones given.
    """
    n = min(len(images), limit)
    unknown = list(unknown or [False] * n)[:n]
    captions = [f"unknown (closest: {short(label)})" if rejected else
                f"{short(label)} ({p:.1%})"
                for label, p, rejected in zip(labels[:n], probabilities[:n], unknown)]
    colors = [UNKNOWN if rejected else "black" for rejected in unknown]
    if truths is not None:
        right = [label == truth and not rejected
                 for label, truth, rejected in zip(labels[:n], truths[:n], unknown)]
        captions = [f"true: {short(truth)}\n{'✓' if ok else '✗'} predicted: {caption}"
                    for truth, ok, caption in zip(truths, right, captions)]
        colors = [RIGHT if ok else WRONG for ok in right]
        title += f": {sum(right)} of {n} right"
    shown = f"first {n} of {total}" if total > n else f"{n}"
    return _gallery(list(images[:n]), captions, path, f"{title} ({shown} images)", colors)


def _binned(confidences: np.ndarray, correct: np.ndarray, n_bins: int
            ) -> tuple[np.ndarray, np.ndarray]:
    """(images, accuracy) in each of `n_bins` equal-width confidence bins."""
    edges = np.linspace(0, 1, n_bins + 1)
    bins = np.clip(np.searchsorted(edges, confidences, side="right") - 1, 0, n_bins - 1)
    counts = np.bincount(bins, minlength=n_bins)
    hits = np.bincount(bins, weights=correct.astype(float), minlength=n_bins)
    return counts, np.divide(hits, counts, out=np.zeros(n_bins), where=counts > 0)


def reliability_figure(confidences: np.ndarray, correct: np.ndarray, ece: float,
                       n_bins: int = 15, before: tuple[np.ndarray, float] | None = None
                       ) -> Figure:
    """Accuracy against confidence in `n_bins` equal-width bins, with the diagonal of calibration.

    Bars are drawn only for bins holding images; a lower panel shows how many each holds.
    `before`: the confidences (and ECE) the model gave before calibration, drawn as a line.
    """
    counts, accuracy = _binned(confidences, correct, n_bins)
    centres, width = (np.arange(n_bins) + 0.5) / n_bins, 1 / n_bins
    fig, (top, bottom) = subplots(2, 1, figsize=(5.5, 6.5), sharex=True,
                                  gridspec_kw={"height_ratios": [3, 1]})
    filled = counts > 0
    top.bar(centres[filled], accuracy[filled], width=width, edgecolor="black",
            color="tab:blue", label="accuracy" if before is None else "accuracy, calibrated")
    if before is not None:
        counts_before, accuracy_before = _binned(before[0], correct, n_bins)
        shown = counts_before > 0
        top.plot(centres[shown], accuracy_before[shown], "o-", color="tab:orange",
                 label=f"before calibration (ECE {before[1]:.3f})")
    top.plot([0, 1], [0, 1], "--", color="gray", label="perfect calibration")
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1),
            title=f"Reliability diagram (ECE {ece:.3f}, {n_bins} bins)")
    top.legend(loc="upper left")
    bottom.bar(centres, counts, width=width, edgecolor="black", color="tab:gray")
    bottom.set(xlabel="confidence (top-1 probability)", ylabel="images")
    return fig


def plot_novelty(known: np.ndarray, unknown: np.ndarray, threshold: float, path: Path) -> Path:
    """The novelty of known and unknown photos as densities (each group's histogram has area
    1, so 26 known photos stay visible beside 300 unknown ones), the threshold marked."""
    fig, ax = subplots(figsize=(6.5, 4))
    edges = np.histogram_bin_edges(np.concatenate([known, unknown]), bins=40)
    ax.hist(known, bins=edges, density=True, alpha=0.6, color="tab:blue",
            label=f"known classes ({len(known)} photos)")
    ax.hist(unknown, bins=edges, density=True, alpha=0.6, color=UNKNOWN,
            label=f"unknown ({len(unknown)} photos)")
    ax.axvline(threshold, color="black", linestyle="--",
               label=f"threshold {threshold:.3g}: above it, unknown")
    ax.set(xlabel="novelty (higher: less like the training photos)",
           ylabel="density (each group's area is 1)", title="Novelty of known and unknown photos")
    ax.legend(fontsize=9)
    return save_figure(fig, path)


def explanation_figure(photo: np.ndarray, overlaid: np.ndarray, ranking: Ranking,
                       explained: str) -> Figure:
    """The photo as the model saw it, the heat map of `explained` over it, and the top labels."""
    fig, axes = subplots(1, 3, figsize=(11, 3.6), gridspec_kw={"width_ratios": [1, 1, 1.2]})
    axes[0].imshow(photo)
    axes[0].set_title("as the model sees it", fontsize=10)
    axes[1].imshow(overlaid)
    axes[1].set_title(f"where it looked for {short(explained)}", fontsize=10)
    for ax in axes[:2]:
        ax.axis("off")
    _ranking_bars(axes[2], ranking, truth=None)
    return fig


def _ranking_bars(ax: Axes, ranking: Ranking, truth: str | None) -> None:
    """One model's top-k as labelled horizontal bars, titled (✓/✗ against `truth`)."""
    positions = np.arange(len(ranking.labels))
    colors = [RIGHT if label == truth else "tab:gray" for label in ranking.labels]
    bars = ax.barh(positions, ranking.probabilities, color=colors)
    ax.bar_label(bars, [f"{p:.1%}" for p in ranking.probabilities], padding=2, fontsize=9)
    ax.set_yticks(positions, [short(label) for label in ranking.labels])
    ax.invert_yaxis()  # most probable on top
    ax.set_xticks([0, 0.5, 1], ["0 %", "50 %", "100 %"])
    right = ranking.labels[0] == truth and not ranking.unknown
    verdict = "" if truth is None else ("  ✓" if right else "  ✗")
    ax.set(xlim=(0, 1.25), xlabel="probability")
    color = "black" if not verdict else (RIGHT if right else WRONG)
    if ranking.unknown:
        verdict += "\nunknown: none of its classes"
        color = UNKNOWN if truth is None else color
    ax.set_title(ranking.title + verdict, fontsize=10, color=color)


def plot_comparison(image: Image.Image | np.ndarray, rankings: Sequence[Ranking],
                    path: Path, truth: str | None = None) -> Path:
    return save_figure(comparison_figure(image, rankings, truth), path)


def comparison_figure(image: Image.Image | np.ndarray, rankings: Sequence[Ranking],
                      truth: str | None = None) -> Figure:
    """The image, then each model's top-k as labelled horizontal bars, side by side; above
    each model's bars, where it looked, when the rankings carry overlays.

    With `truth`, its bar is green wherever it appears (and the image is titled with it);
    the other bars are grey, so a right answer and a wrong one look different.
    """
    maps = any(r.overlay is not None for r in rankings)
    columns = 1 + len(rankings)
    fig, axes = subplots(2 if maps else 1, columns, figsize=(3.6 * columns, 6.8 if maps
                                                                 else 3.4), squeeze=False)
    axes[0, 0].imshow(image)
    axes[0, 0].set_title(f"true: {short(truth)}" if truth is not None else "", fontsize=10)
    for ax in axes[:, 0]:
        ax.axis("off")
    for column, ranking in enumerate(rankings, start=1):
        _ranking_bars(axes[-1, column], ranking, truth)
        if maps:
            axes[0, column].axis("off")
            if ranking.overlay is not None:
                axes[0, column].imshow(ranking.overlay)
                axes[0, column].set_title(f"where it looked for {short(ranking.labels[0])}",
                                          fontsize=10)
    return fig
