"""How a model is trained and its figures earned, in one place: `petal train`, `petal.train`,
each model of `petal run`, the tests and the benchmarks all come through `train_model`.

    data and split -> the learning rate (petal.training.fit.choose_lr) -> cross-validation
    when asked or when the split is small -> the model -> its unknown threshold and
    temperature (petal.training.fit.finish)

One held-out split, or, when the split holds too few validation photos to say anything
(SMALL_HELD_OUT), cross-validation over every photo and a final model:

    folds: None chooses (cross-validate a small split, CROSS_VALIDATION_FOLDS folds, fewer
           when a class has fewer photos); 0 never; K, K folds
    final: "all", the final model trains on every photo of the split, and its accuracy,
           unknown threshold and temperature come from the folds' out-of-fold predictions;
           "split", it trains on the split's training part and validates on the rest (its
           card still leads with the cross-validated accuracy, the larger sample)
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

import lightning as L
from lightning.pytorch.utilities import rank_zero_only

from petal.data.scan import DatasetIndex
from petal.data.split import Split, check_folds
from petal.training.cross_validate import cross_validate, format_cross_validation
from petal.training.fit import (
    SMALL_HELD_OUT,
    Prepared,
    TrainRequest,
    TrainResult,
    choose_lr,
    fit,
    holding,
    prepare,
    scan_and_split,
    write_run_start,
)

log = logging.getLogger(__name__)

CROSS_VALIDATION_FOLDS = 5
FINALS = ("all", "split")
T = TypeVar("T")


def untimed(step: str, work: Callable[[], T]) -> T:
    return work()


def chosen_folds(requested: int | None, split: Split) -> int:
    """The folds to cross-validate over (0: none), as the module docstring says."""
    if requested is not None:
        return requested
    if len(split.val) >= SMALL_HELD_OUT:
        return 0
    smallest = min(sum(1 for i in split.train + split.val if i.label == c) for c in split.classes)
    return min(CROSS_VALIDATION_FOLDS, smallest) if smallest >= 2 else 0


def plan(request: TrainRequest, split: Split, folds: int, final: str) -> str:
    """What a training says before it starts: what it will do, and what that costs."""
    n_val, n_all = len(split.val), len(split.train) + len(split.val)
    if not folds:
        counts = {c: sum(1 for i in split.train + split.val if i.label == c)
                  for c in split.classes}
        smallest = min(counts, key=counts.get)
        why = (f" ({n_val} are too few to trust, but {smallest} has {counts[smallest]} photo(s): "
               "cross-validation needs at least 2 of every class)"
               if n_val < SMALL_HELD_OUT and counts[smallest] < 2 else "")
        return f"Training on {len(split.train)} photos, validating on {n_val}{why}"
    cost = ("each on stored features" if request.recipe.mode == "cached"
            else f"each a whole {request.recipe.name} training")
    reason = (f"{n_val} validation photos are too few to trust (fewer than {SMALL_HELD_OUT}): "
              if n_val < SMALL_HELD_OUT else "")
    final_line = (f"then the final model on all {n_all} photos" if final == "all"
                  else f"then the model on the split's {len(split.train)} training photos")
    return (f"{reason}cross-validating over {folds} folds of {n_all} photos ({folds} trainings, "
            f"{cost}; each fold says how long the rest will take), {final_line} (--folds 0 "
            "skips the folds; --final chooses)")


def train_model(request: TrainRequest, scanned: tuple[DatasetIndex, Split] | None = None, *,
                folds: int | None = None, final: str = "all", progress: bool = True,
                started: float | None = None, show_lr_finder: bool = False,
                callbacks: Sequence[L.Callback] = (),
                timed: Callable[[str, Callable[[], T]], T] = untimed) -> TrainResult:
    """Train as the module docstring says into `request.out`, which is held while it is
    written. `scanned`: the data folder's index and split when the caller has them;
    `show_lr_finder`: run the range test for its plot even when not training at its
    suggestion; `timed(step, work)` runs each step (petal run times them)."""
    if final not in FINALS:
        raise ValueError(f"final {final!r}: one of {FINALS}")
    started = time.perf_counter() if started is None else started
    with holding(request.out):
        index, split = scanned or scan_and_split(request, progress)
        folds = chosen_folds(folds, split)
        if folds:
            check_folds(split, folds)  # before any training
        log.info(plan(request, split, folds, final))
        finder = request.lr == "auto" or show_lr_finder  # the range test runs
        step = f"prepare data and model ({request.model_name}, {request.recipe.name})"
        prepared = (timed(step, lambda: prepare(request, progress, scanned=(index, split)))
                    if not folds or final == "split" or finder else None)
        chosen = (timed("LR finder", lambda: choose_lr(request, prepared, progress,
                                                       show_finder=show_lr_finder))
                  if finder else choose_lr(request, prepared, progress))
        if folds:
            figures = timed(f"cross-validate ({folds} folds)", lambda: cross_validate(
                request, folds, chosen.value, progress, (index, split)))
            log.info(format_cross_validation(figures))
        if folds and final == "all":
            everything = dataclasses.replace(split, train=sorted(split.train + split.val,
                                                                 key=lambda item: item.path),
                                             val=[])
            request = dataclasses.replace(request, validate=False)
            prepared = prepare(request, progress, scanned=(index, everything))
        result = timed("train", lambda: _train(request, prepared, chosen.value,
                                                chosen.suggested, started, progress,
                                                callbacks))
    return dataclasses.replace(result, lr_suggested=chosen.suggested)


def _train(request: TrainRequest, prepared: Prepared, lr: float, lr_found: float | None,
           started: float, progress: bool, callbacks: Sequence[L.Callback]) -> TrainResult:
    """The run folder begun (global rank 0), then the model trained at `lr`."""
    if rank_zero_only.rank == 0:
        write_run_start(request, prepared, lr_found if request.lr == "auto" else None)
    return fit(request, started, lr, progress, callbacks=callbacks, prepared=prepared)
