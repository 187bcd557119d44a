"""Cross-validation: how well the recipe does on photos it did not train on, using every
photo once, when one held-out split would be too small to say.

The run's training and validation photos are dealt into K folds (petal.data.split.fold_splits);
the recipe trains afresh K times, each time on all folds but one, and the model says what it
makes of the photos of the fold it never saw: its logits and its novelty (the distance to
its own training photos). Reported: each fold's accuracy, their mean and standard deviation,
and the pooled accuracy over every photo with its 95 % interval (cross_validation.json);
kept: those out-of-fold logits and novelty scores (out_of_fold.safetensors), from which a
final model trained on every photo takes its unknown threshold and its temperature. In
cached mode (fast-transfer) a fold costs the recipe's epochs on stored features: seconds to
a minute on a CPU; in full mode, a whole training.
"""

from __future__ import annotations

import dataclasses
import logging
import statistics
import time
from pathlib import Path

import lightning as L
import numpy as np

from petal.data.scan import DatasetIndex
from petal.data.split import Split, fold_splits
from petal.fsutil import atomic_write_json
from petal.inference import novelty
from petal.run_folder import CROSS_VALIDATION_FILE, OUT_OF_FOLD_FILE
from petal.stats import describe_accuracy, wilson_interval
from petal.training.batches import train_loader
from petal.training.fit import TrainRequest, prepare, scan_and_split
from petal.training.outputs import OutOfFold, collect_outputs
from petal.training.trainer import interruptible, make_trainer

log = logging.getLogger(__name__)


def _train_fold(request: TrainRequest, lr: float, scanned: tuple[DatasetIndex, Split],
                progress: bool, place: dict[str, int]) -> OutOfFold:
    """The recipe trained on one fold split; what it says of that split's validation photos
    (nothing written). `place`: each photo's place among all the run's photos."""
    prepared = prepare(request, progress, scanned=scanned, notes=False)
    recipe = dataclasses.replace(prepared.recipe, lr=lr)
    L.seed_everything(recipe.seed, verbose=False)
    trainer = make_trainer(dataclasses.replace(request, recipe=recipe), "fold",
                           progress=progress)
    module = prepared.module(recipe)
    with interruptible(trainer):
        trainer.fit(module, train_loader(prepared.train_set, recipe.batch_size, recipe.seed))
    spec, batch = prepared.eval_spec, recipe.batch_size
    logits, features, labels = collect_outputs(module, prepared.val_set, spec, batch)
    reference = collect_outputs(module, prepared.reference_set, spec, batch)[1]
    # The distance to the k-th nearest training photo shrinks as training photos are added.
    # The final model's reference holds every photo, a fold's only (K-1)/K of them: the fold
    # counts to a proportionally nearer neighbour, so that its scores, which set the final
    # model's threshold, are on the final model's scale (k/N alike).
    k = max(1, round(novelty.KNN_K * len(scanned[1].train) / len(place)))
    return OutOfFold(logits, labels, novelty.fit(reference, features, k=k).val_scores,
                     np.array([place[item.path] for item in scanned[1].val]))


def cross_validate(request: TrainRequest, folds: int, lr: float, progress: bool = True,
                   scanned: tuple[DatasetIndex, Split] | None = None) -> dict:
    """Train the request's recipe on `folds` fold splits at `lr`; the figures as a dict,
    written with the out-of-fold predictions into the run folder. `scanned` (the run's data
    and split, from `scan_and_split`) saves scanning the folder again."""
    started = time.perf_counter()
    index, split = scanned or scan_and_split(request, progress=False)
    place = {path: i for i, path in enumerate(sorted(i.path for i in split.train + split.val))}
    parts, accuracies, correct, sizes = [], [], [], []
    for k, fold in enumerate(fold_splits(split, index, folds, seed=request.recipe.seed)):
        part = _train_fold(request, lr, (index, fold), progress, place)
        parts.append(part)
        sizes.append(len(part.labels))
        correct.append(int((part.logits.argmax(axis=1) == part.labels).sum()))
        accuracies.append(round(correct[-1] / sizes[-1], 6))
        spent = time.perf_counter() - started
        left = (f"; about {spent / (k + 1) * (folds - k - 1):.0f} s for the other "
                f"{folds - k - 1}, at the pace so far" if k + 1 < folds else "")
        log.info(f"Fold {k + 1} of {folds}: {describe_accuracy(correct[-1], sizes[-1])} "
                 f"({spent:.0f} s in all{left})")
    total, n = sum(correct), sum(sizes)
    result = {"folds": folds, "lr": lr, "accuracies": accuracies, "correct": correct,
              "n_val": sizes, "mean": round(statistics.fmean(accuracies), 6),
              "std": round(statistics.stdev(accuracies), 6),
              "pooled": {"correct": total, "n_images": n,
                         "interval": [round(v, 6) for v in wilson_interval(total, n)]},
              "seconds": round(time.perf_counter() - started, 1)}
    run = Path(request.out)
    run.mkdir(parents=True, exist_ok=True)
    OutOfFold(*(np.concatenate([getattr(p, name) for p in parts])
                for name in ("logits", "labels", "novelty", "photos"))).save(run / OUT_OF_FOLD_FILE)
    atomic_write_json(run / CROSS_VALIDATION_FILE, result)
    return result


def format_cross_validation(result: dict) -> str:
    """The one-line summary `petal train --folds` prints."""
    return (f"Cross-validated over {result['folds']} folds: mean {100 * result['mean']:.1f} % "
            f"(standard deviation {100 * result['std']:.1f} points, folds "
            f"{100 * min(result['accuracies']):.1f}-{100 * max(result['accuracies']):.1f} %); "
            "each image validated once, by the fold's model that did not train on it: "
            + describe_accuracy(result["pooled"]["correct"], result["pooled"]["n_images"],
                                interval=True)
            + " (what to expect of the final model on new photos like these)")
