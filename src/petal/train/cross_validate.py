"""`petal train --folds K`: how much the validation accuracy depends on which images validate.

The run's training and validation images are dealt into K folds (petal.data.split.fold_splits);
the recipe trains afresh K times, each time validated on one fold, so every image is
validated once, by a model that never saw it. Reported: each fold's accuracy, their mean and
standard deviation, and the pooled accuracy over all images with its 95 % interval. In cached
mode (fast-transfer) a fold costs what the recipe's epochs on stored features cost: seconds to
a minute on a CPU; in full mode it costs a whole training.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import warnings
from pathlib import Path

import lightning as L

from petal.data.scan import DatasetIndex
from petal.data.split import Split, fold_splits
from petal.fsutil import atomic_write_json
from petal.run_folder import CROSS_VALIDATION_FILE
from petal.stats import describe_accuracy, wilson_interval
from petal.train.batches import eval_loader, train_loader
from petal.train.fit import TrainRequest, prepare, scan_and_split


def _train_fold(request: TrainRequest, lr: float, scanned: tuple[DatasetIndex, Split],
                progress: bool) -> float:
    """Validation accuracy of the recipe trained on one fold split (nothing written)."""
    prepared = prepare(request, progress, scanned=scanned)
    recipe = dataclasses.replace(prepared.recipe, lr=lr)
    L.seed_everything(recipe.seed, verbose=False)
    trainer = L.Trainer(accelerator=request.trainer.accelerator, devices=1,
                        precision=request.trainer.precision, max_epochs=recipe.epochs,
                        gradient_clip_val=recipe.grad_clip_value,
                        gradient_clip_algorithm="value", logger=False, enable_checkpointing=False,
                        enable_progress_bar=progress, enable_model_summary=False,
                        num_sanity_val_steps=0, check_val_every_n_epoch=recipe.epochs,
                        default_root_dir=str(request.out))
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        trainer.fit(prepared.module(recipe),
                    train_loader(prepared.train_set, recipe.batch_size, recipe.seed),
                    eval_loader(prepared.val_set, recipe.batch_size))
    return float(trainer.callback_metrics["val_acc"])


def cross_validate(request: TrainRequest, folds: int, lr: float, progress: bool = True,
                   scanned: tuple[DatasetIndex, Split] | None = None) -> dict:
    """Train the request's recipe on `folds` fold splits at `lr`; the figures as a dict,
    also written to the run folder's cross_validation.json. `scanned` (the run's data and
    split, from `scan_and_split`) saves scanning the folder again."""
    started = time.perf_counter()
    index, split = scanned or scan_and_split(request, progress=False)
    accuracies, correct, sizes = [], [], []
    for k, fold in enumerate(fold_splits(split, index, folds, seed=request.recipe.seed)):
        accuracy = _train_fold(request, lr, (index, fold), progress)
        accuracies.append(round(accuracy, 6))
        sizes.append(len(fold.val))
        correct.append(round(accuracy * len(fold.val)))
        print(f"Fold {k + 1} of {folds}: {describe_accuracy(correct[-1], sizes[-1])}")
    total, n = sum(correct), sum(sizes)
    result = {"folds": folds, "lr": lr, "accuracies": accuracies, "correct": correct,
              "n_val": sizes, "mean": round(statistics.fmean(accuracies), 6),
              "std": round(statistics.stdev(accuracies), 6),
              "pooled": {"correct": total, "n_images": n,
                         "interval": [round(v, 6) for v in wilson_interval(total, n)]},
              "seconds": round(time.perf_counter() - started, 1)}
    atomic_write_json(Path(request.out) / CROSS_VALIDATION_FILE, result)
    return result


def format_cross_validation(result: dict) -> str:
    """The one-line summary `petal train --folds` prints."""
    return (f"Cross-validated over {result['folds']} folds: mean {100 * result['mean']:.1f} % "
            f"(standard deviation {100 * result['std']:.1f} points, folds "
            f"{100 * min(result['accuracies']):.1f}-{100 * max(result['accuracies']):.1f} %); "
            "each image validated once: "
            f"{describe_accuracy(result['pooled']['correct'], result['pooled']['n_images'])}")
