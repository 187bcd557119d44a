"""The run folder: the names of what `petal train`, `petal evaluate` and `petal run` write, and
how to read it back. Every other module takes these names from here.

A run folder (RUN), written by `petal train` (global rank 0 only; files replaced atomically):
  config.json        what was asked for: data, model, weights, recipe, trainer options
  split.json         the split trained on (a final model on every photo: validation empty)
  history.csv        epoch,train_loss,val_loss,val_acc,lr,epoch_seconds,elapsed_seconds
                     (val_loss and val_acc empty for a final model on every photo)
  lr_steps.csv       the learning rate of every optimiser step
  accuracy.png  loss.png  lr.png  (lr_find.png with --lr auto)
  cross_validation.json, out_of_fold.safetensors   when cross-validated (--folds K, or by
                     default on a small data set): each fold's figures, and each photo's
                     logits and novelty from the fold model that did not train on it
  checkpoints/       best.ckpt (highest val_acc) and last.ckpt (for --resume)
  model/             model.safetensors + model.json: the network at the end of the schedule
  eval/, eval-NAME/  what `petal evaluate` wrote: metrics.json and its figures
  .petal.lock        there while a process writes the run (`writing`): names that process

A main run folder (MAIN), written by `petal run`:
  data_check.json  split.json  timings.json  report.html
  predictions_scratch.png  predictions_transfer.png  compare_1.png ...
  scratch/  transfer/   one run folder per model, each with eval/

Reading these files needs neither torch nor Lightning: the report renders from them alone.
"""

from __future__ import annotations

import contextlib
import csv
import fcntl
import io
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from petal.errors import PetalError
from petal.fsutil import atomic_write_text

# written by `petal train`
CONFIG_FILE, SPLIT_FILE = "config.json", "split.json"
HISTORY_FILE, LR_STEPS_FILE = "history.csv", "lr_steps.csv"
CURVES = ("accuracy.png", "loss.png", "lr.png")
LR_FIND_PLOT = "lr_find.png"
CROSS_VALIDATION_FILE = "cross_validation.json"  # with --folds K
OUT_OF_FOLD_FILE = "out_of_fold.safetensors"  # each photo's logits and novelty, from its fold
CHECKPOINTS_DIR, BEST_CHECKPOINT, LAST_CHECKPOINT = "checkpoints", "best", "last"  # NAME.ckpt
MODEL_DIR, CARD_FILE = "model", "model.json"
# written by `petal evaluate`
EVAL_DIR, METRICS_FILE = "eval", "metrics.json"
PREDICTIONS_FILE = "predictions.csv"  # path,true,predicted,confidence: one row per photo
EVAL_FIGURES = ("confusion_matrix.png", "reliability.png", "worst_mistakes.png")
NOVELTY_FIGURE = "novelty.png"  # with --unknown
# written by `petal run`
DATA_CHECK_FILE, TIMINGS_FILE, REPORT_FILE = "data_check.json", "timings.json", "report.html"
ROLES = ("scratch", "transfer")

LOCK_FILE = ".petal.lock"

HISTORY_COLUMNS = ["epoch", "train_loss", "val_loss", "val_acc", "lr", "epoch_seconds",
                   "elapsed_seconds"]


def is_run_folder(path: Path) -> bool:
    return (path / CONFIG_FILE).is_file()


def last_checkpoint(run: Path) -> Path:
    return run / CHECKPOINTS_DIR / f"{LAST_CHECKPOINT}.ckpt"


def find_model_folder(path: str | os.PathLike) -> Path:
    """The model folder for `path`, which may be a model folder or a run folder holding model/.

    A model save replaces the folder with two renames (inference.model_folder's
    save_model_folder); if it died between them, the previous folder is found and used: the
    old model is intact.
    """
    path = Path(path)
    for candidate in (path, path / MODEL_DIR):
        if (candidate / CARD_FILE).is_file():
            return candidate
        if candidate.exists() or not candidate.name:  # "." has no name to add to
            continue
        previous = candidate.with_name(candidate.name + ".previous")
        if (previous / CARD_FILE).is_file():
            return previous
    if not path.exists():
        raise PetalError(f"model path {path} does not exist")
    raise PetalError(f"{path} is neither a model folder (with {CARD_FILE}) nor a run folder "
                     f"holding {MODEL_DIR}/: pass the folder `petal train` wrote")


def run_of_model(model_folder: Path) -> Path:
    """The run folder holding `model_folder`, or the model folder itself when it stands alone."""
    parent = model_folder.parent
    return parent if is_run_folder(parent) else model_folder


_held: dict[Path, int] = {}  # the run folders this process writes, and how deeply nested


@contextmanager
def writing(run: Path) -> Iterator[None]:
    """Hold run folder `run` while this process writes it: another process asking for it
    meanwhile gets a PetalError naming this one. Nested uses in one process share the hold.
    The lock is the operating system's (flock on RUN/.petal.lock, removed on release): it
    goes with the process, so a run whose process was killed is free again at once. The
    folders made here (the run's and any missing above it) that are left empty (the start
    failed) are removed again."""
    key = run.resolve()
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    made = _missing(run)
    fd = _lock(run)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        (run / LOCK_FILE).unlink(missing_ok=True)  # still held: see _lock
        for folder in made:  # deepest first
            with contextlib.suppress(OSError):  # a folder not empty (or gone) stays as it is
                folder.rmdir()
        os.close(fd)  # releases the lock


def _missing(folder: Path) -> list[Path]:
    """`folder` and its parents that do not exist yet, deepest first."""
    missing = []
    while not folder.exists() and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing


def _lock(run: Path) -> int:
    """A descriptor of RUN/.petal.lock, locked, with this process's id written in it."""
    while True:
        run.mkdir(parents=True, exist_ok=True)
        path = run / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(path, fd):
                break
            os.close(fd)  # its holder removed the file before we locked it: make a new one
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise PetalError(f"{run} is in use by process {holder}: wait until it ends, or "
                             "choose another --out") from None
        except BaseException:
            os.close(fd)
            raise
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        return os.stat(path).st_ino == os.fstat(fd).st_ino
    except FileNotFoundError:
        return False


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
