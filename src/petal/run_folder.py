"""The run folder: the names of what `petal train`, `petal evaluate` and `petal run` write, and
how to read it back. Every other module takes these names from here.

A run folder (RUN), written by `petal train` (global rank 0 only; files replaced atomically):
  config.json        what was asked for: data, model, weights, recipe, trainer options
  split.json         the split trained on
  history.csv        epoch,train_loss,val_loss,val_acc,lr,epoch_seconds,elapsed_seconds
  lr_steps.csv       the learning rate of every optimiser step
  accuracy.png  loss.png  lr.png  (lr_find.png with --lr auto)
  checkpoints/       best.ckpt (highest val_acc) and last.ckpt (for --resume)
  model/             model.safetensors + model.json: the network at the end of the schedule
  eval/, eval-NAME/  what `petal evaluate` wrote: metrics.json and its figures

A main run folder (MAIN), written by `petal run`:
  data_check.json  split.json  timings.json  report.html
  predictions_scratch.png  predictions_transfer.png  compare_1.png ...
  scratch/  transfer/   one run folder per model, each with eval/

Reading these files needs neither torch nor Lightning: the report renders from them alone.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from petal.errors import PetalError
from petal.fsutil import atomic_write_text

# written by `petal train`
CONFIG_FILE, SPLIT_FILE = "config.json", "split.json"
HISTORY_FILE, LR_STEPS_FILE = "history.csv", "lr_steps.csv"
CURVES = ("accuracy.png", "loss.png", "lr.png")
LR_FIND_PLOT = "lr_find.png"
CROSS_VALIDATION_FILE = "cross_validation.json"  # with --folds K
CHECKPOINTS_DIR, BEST_CHECKPOINT, LAST_CHECKPOINT = "checkpoints", "best", "last"  # NAME.ckpt
MODEL_DIR, CARD_FILE = "model", "model.json"
# written by `petal evaluate`
EVAL_DIR, METRICS_FILE = "eval", "metrics.json"
EVAL_FIGURES = ("confusion_matrix.png", "reliability.png", "worst_mistakes.png")
NOVELTY_FIGURE = "novelty.png"  # with --unknown
# written by `petal run`
DATA_CHECK_FILE, TIMINGS_FILE, REPORT_FILE = "data_check.json", "timings.json", "report.html"
ROLES = ("scratch", "transfer")

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_acc", "lr", "epoch_seconds",
                   "elapsed_seconds"]


def is_run_folder(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def last_checkpoint(run: Path) -> Path:
    return run / CHECKPOINTS_DIR / f"{LAST_CHECKPOINT}.ckpt"


def find_model_folder(path: str | os.PathLike) -> Path:
    """The model folder for `path`, which may be a model folder or a run folder holding model/.

    A model save replaces the folder with two renames (modelio.save_model_folder); if it
    died between them, the previous folder is found and used: the old model is intact.
    """
    path = Path(path)
    for candidate in (path, path / MODEL_DIR):
        if (candidate / CARD_FILE).is_file():
            return candidate
        previous = candidate.with_name(candidate.name + ".previous")
        if not candidate.exists() and (previous / CARD_FILE).is_file():
            return previous
    if not path.exists():
        raise PetalError(f"model path {path} does not exist")
    raise PetalError(f"{path} is neither a model folder (with {CARD_FILE}) nor a run folder "
                     f"holding {MODEL_DIR}/: pass the folder `petal train` wrote")


def run_of_model(model_folder: Path) -> Path:
    """The run folder holding `model_folder`, or the model folder itself when it stands alone."""
    parent = model_folder.parent
    return parent if is_run_folder(parent) else model_folder


def read_history(path: str | os.PathLike) -> list[dict[str, float]]:
    """history.csv as rows of floats."""
    with open(path, newline="") as handle:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(handle)]


def write_history(path: str | os.PathLike, rows: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=HISTORY_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _format(k, row[k]) for k in HISTORY_COLUMNS})
    atomic_write_text(path, buffer.getvalue())


def _format(key: str, value: float) -> str:
    if key == "epoch":
        return str(int(value))
    if key.endswith("seconds"):
        return f"{value:.2f}"
    return f"{value:.6g}"


def read_lr_steps(path: str | os.PathLike) -> list[tuple[int, float]]:
    """lr_steps.csv as (optimiser step, learning rate) pairs."""
    with open(path, newline="") as handle:
        return [(int(r["step"]), float(r["lr"])) for r in csv.DictReader(handle)]
