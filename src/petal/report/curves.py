"""Training curves: accuracy, loss and learning rate, as the original write-up showed them, and
the learning-rate finder's curve; as figures (for a notebook) or PNG files (a run folder)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, PercentFormatter

from petal.report.figures import save_figure, subplots
from petal.run_folder import CURVES, HISTORY_FILE, LR_STEPS_FILE, read_history, read_lr_steps


def history_figures(rows: Sequence[dict[str, float]], steps: Sequence[tuple[int, float]]
                    ) -> dict[str, Figure]:
    """The curves of history.csv's `rows` and lr_steps.csv's `steps`, by file name (CURVES).
    A run that trained without validation (a final model on every photo) has no validation
    curve: its accuracy figure says so instead of plotting nothing."""
    epochs = [r["epoch"] for r in rows]
    validated = any(math.isfinite(r["val_acc"]) for r in rows)
    accuracy, ax = subplots(figsize=(6, 4))
    if validated:
        ax.plot(epochs, [r["val_acc"] for r in rows], "-x")
        ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    else:
        ax.text(0.5, 0.5, "trained on every photo: no validation accuracy\n(the "
                "cross-validation's figures: the model card,\nand `petal evaluate RUN`, out of "
                "fold)", ha="center", va="center", transform=ax.transAxes)
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Accuracy vs. epochs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)

    loss, ax = subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_loss"] for r in rows], "-bx", label="training")
    if validated:
        ax.plot(epochs, [r["val_loss"] for r in rows], "-rx", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="Loss vs. epochs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    ax.grid(alpha=0.3)

    lr, ax = subplots(figsize=(6, 4))
    ax.plot([s for s, _ in steps], [value for _, value in steps])
    ax.set(xlabel="batch", ylabel="learning rate", title="Learning rate vs. batch")
    ax.grid(alpha=0.3)
    return dict(zip(CURVES, (accuracy, loss, lr), strict=True))


def plot_history(run_dir: Path) -> list[Path]:
    """Write accuracy.png, loss.png and lr.png into `run_dir` from its history files."""
    figures = history_figures(read_history(run_dir / HISTORY_FILE),
                              read_lr_steps(run_dir / LR_STEPS_FILE))
    return [save_figure(figure, run_dir / name) for name, figure in figures.items()]


def lr_finder_figure(lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float],
                     suggestion: float | None, recipe_lr: float | None) -> Figure:
    """The range test: every step's loss (faint) and its smoothed curve (bold) against the
    learning rate on a log axis; the suggestion and the recipe's learning rate marked. The
    loss axis stops a little above the starting loss, so a divergence does not flatten the
    part that matters."""
    fig, ax = subplots(figsize=(7, 4.5))
    ax.plot(lrs, losses, color="tab:blue", alpha=0.3, linewidth=1, label="loss of each step")
    ax.plot(lrs, smoothed, color="tab:blue", linewidth=2.2, label="smoothed")
    ax.set_xscale("log")
    finite = [v for v in smoothed if math.isfinite(v)]
    if finite:
        lowest = min(finite + [v for v in losses if math.isfinite(v)])
        top = 1.25 * max(finite[: finite.index(min(finite)) + 1])
        ax.set_ylim(max(0.0, lowest - 0.05 * (top - lowest)), top)
    if suggestion is not None:
        nearest = min(range(len(lrs)), key=lambda i: abs(math.log(lrs[i] / suggestion)))
        ax.plot(lrs[nearest], smoothed[nearest], "o", color="tab:red", markersize=9,
                label=f"suggested LR {suggestion:.3g}")
    if recipe_lr is not None:
        ax.axvline(recipe_lr, color="tab:green", linestyle="--",
                   label=f"the recipe's LR {recipe_lr:.3g}")
    ax.set(xlabel="learning rate (log scale)", ylabel="training loss",
           title="Learning-rate finder")
    ax.legend(fontsize=9)
    ax.grid(alpha=0.3, which="both")
    return fig
