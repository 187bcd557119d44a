"""Training curves as PNG files: accuracy, loss and learning rate, as the original write-up
showed them."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator, PercentFormatter  # noqa: E402

from petal.report.figures import save_figure  # noqa: E402
from petal.run_folder import (  # noqa: E402
    CURVES,
    HISTORY_FILE,
    LR_STEPS_FILE,
    read_history,
    read_lr_steps,
)


def plot_history(run_dir: Path) -> list[Path]:
    """Write accuracy.png, loss.png and lr.png into `run_dir` from its history files."""
    accuracy_png, loss_png, lr_png = (run_dir / name for name in CURVES)
    rows = read_history(run_dir / HISTORY_FILE)
    epochs = [r["epoch"] for r in rows]
    written = []

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["val_acc"] for r in rows], "-x")
    ax.set(xlabel="epoch", ylabel="validation accuracy", title="Accuracy vs. epochs")
    ax.yaxis.set_major_formatter(PercentFormatter(1.0))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    written.append(save_figure(fig, accuracy_png))

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [r["train_loss"] for r in rows], "-bx", label="training")
    ax.plot(epochs, [r["val_loss"] for r in rows], "-rx", label="validation")
    ax.set(xlabel="epoch", ylabel="loss", title="Loss vs. epochs")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend()
    ax.grid(alpha=0.3)
    written.append(save_figure(fig, loss_png))

    steps = read_lr_steps(run_dir / LR_STEPS_FILE)
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([s for s, _ in steps], [lr for _, lr in steps])
    ax.set(xlabel="batch", ylabel="learning rate", title="Learning rate vs. batch")
    ax.grid(alpha=0.3)
    written.append(save_figure(fig, lr_png))
    return written


def plot_lr_finder(lrs: list[float], losses: list[float], smoothed: list[float],
                   suggestion: float | None, recipe_lr: float | None, path: Path) -> Path:
    """The range test: every step's loss (faint) and its smoothed curve (bold) against the
    learning rate on a log axis; the suggestion and the recipe's learning rate marked. The
    loss axis stops a little above the starting loss, so a divergence does not flatten the
    part that matters."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
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
    return save_figure(fig, path)
