"""A run folder as an object (what `petal.train` returns): its model card's accuracy, its
history, its curves and its model, read from the folder when asked; nothing is kept that
the folder does not say."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from petal.errors import PetalError
from petal.fsutil import read_json
from petal.run_folder import (
    CONFIG_FILE,
    CROSS_VALIDATION_FILE,
    HISTORY_FILE,
    LR_STEPS_FILE,
    MODEL_DIR,
    is_run_folder,
    read_history,
    read_lr_steps,
)
from petal.stats import describe_accuracy

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from petal.inference.classifier import Classifier
    from petal.inference.model_folder import ModelCard


class Run:
    """The run folder `folder` (os.PathLike: any petal function that takes a model or a run
    takes a Run)."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        if not is_run_folder(self.folder):
            raise PetalError(f"{self.folder} is not a petal run folder (no {CONFIG_FILE})")

    def __fspath__(self) -> str:
        return str(self.folder)

    def __repr__(self) -> str:
        return f"Run({str(self.folder)!r}: {self.summary()})"

    @property
    def card(self) -> ModelCard:
        """The model card (model/model.json)."""
        from petal.inference.model_folder import read_card

        return read_card(self.folder / MODEL_DIR)

    @property
    def config(self) -> dict:
        """What the run was asked for (config.json)."""
        return read_json(self.folder / CONFIG_FILE)

    @property
    def accuracy(self) -> dict | None:
        """The card's accuracy: how ("validation" or "cross-validated"), value, correct, n,
        interval (and folds); None while the run has no model yet."""
        return self.card.accuracy if (self.folder / MODEL_DIR).is_dir() else None

    @property
    def history(self) -> list[dict[str, float]]:
        """One row an epoch, with history.csv's columns (a missing figure is NaN)."""
        return read_history(self.folder / HISTORY_FILE)

    @property
    def cross_validation(self) -> dict | None:
        """cross_validation.json: each fold's accuracy, mean, spread, pooled; None when the
        run did not cross-validate."""
        path = self.folder / CROSS_VALIDATION_FILE
        return read_json(path) if path.is_file() else None

    @property
    def classifier(self) -> Classifier:
        """The run's model, ready to predict (petal.load)."""
        from petal.inference.classifier import load

        return load(self.folder)

    def plot(self) -> dict[str, Figure]:
        """The curves (accuracy.png, loss.png, lr.png) as matplotlib figures, by file name
        (drawn side by side in Jupyter)."""
        from petal.report.curves import history_figures
        from petal.report.notebook import Figures

        return Figures(history_figures(self.history,
                                       read_lr_steps(self.folder / LR_STEPS_FILE)))

    def summary(self) -> str:
        accuracy = self.accuracy
        if accuracy is None:
            return "no model yet"
        said = describe_accuracy(accuracy["correct"], accuracy["n"], interval=True)
        folds = f" over {accuracy['folds']} folds" if accuracy.get("folds") else ""
        return f"{accuracy['how']} accuracy {said}{folds}"

    def to_pandas(self) -> Any:
        """The history as a pandas DataFrame (pandas is not one of petal's dependencies)."""
        from petal.display import pandas

        return pandas().DataFrame(self.history)

    def _repr_html_(self) -> str:
        from petal.display import heading, paragraph, table_html
        from petal.report.notebook import figures_html

        card = self.card if (self.folder / MODEL_DIR).is_dir() else None
        title = (f"Run {self.folder}: {card.architecture.get('name')}, recipe "
                 f"{card.recipe.get('name')}" if card else f"Run {self.folder}")
        columns = ["epoch", "train_loss", "val_loss", "val_acc", "lr", "epoch_seconds"]
        shown = {"epoch": "{:.0f}", "train_loss": "{:.4f}", "val_loss": "{:.4f}",
                 "val_acc": "{:.1%}", "lr": "{:.2e}", "epoch_seconds": "{:.1f}"}
        rows = [[shown[c].format(row[c]) if row[c] == row[c] else "" for c in columns]
                for row in self.history]
        return (heading(title) + paragraph(self.summary()) + table_html(rows, columns)
                + figures_html(list(self.plot().values())))
