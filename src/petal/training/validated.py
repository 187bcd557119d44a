"""How a model's figures are earned: one held-out split, or, when the split holds too few
validation photos to say anything (SMALL_HELD_OUT), cross-validation over every photo and a
final model trained on all of them.

    folds: None chooses (cross-validate a small split, CROSS_VALIDATION_FOLDS folds, fewer
           when a class has fewer photos); 0 never; K, K folds
    final: "all", the final model trains on every photo of the split, and its accuracy,
           unknown threshold and temperature come from the folds' out-of-fold predictions;
           "split", it trains on the split's training part and validates on the rest (its
           card still leads with the cross-validated accuracy, the larger sample)
"""

from __future__ import annotations

import dataclasses

from petal.data.scan import DatasetIndex
from petal.data.split import Split, check_folds
from petal.run_folder import LR_FIND_PLOT
from petal.training.cross_validate import cross_validate, format_cross_validation
from petal.training.fit import (
    SMALL_HELD_OUT,
    TrainRequest,
    TrainResult,
    find_lr,
    fit,
    prepare,
)

CROSS_VALIDATION_FOLDS = 5


def chosen_folds(requested: int | None, split: Split) -> int:
    """The folds to cross-validate over (0: none), as the module docstring says."""
    if requested is not None:
        return requested
    if len(split.val) >= SMALL_HELD_OUT:
        return 0
    smallest = min(sum(1 for i in split.train + split.val if i.label == c) for c in split.classes)
    return min(CROSS_VALIDATION_FOLDS, smallest) if smallest >= 2 else 0


def plan(request: TrainRequest, split: Split, folds: int, final: str) -> str:
    """What `petal train` says before any training: what it will do, and what that costs."""
    n_val, n_all = len(split.val), len(split.train) + len(split.val)
    if not folds:
        counts = {c: sum(1 for i in split.train + split.val if i.label == c)
                  for c in split.classes}
        smallest = min(counts, key=counts.get)
        why = (f" ({n_val} are too few to trust, but {smallest} has {counts[smallest]} photo(s): "
               "cross-validation needs at least 2 of every class)"
               if n_val < SMALL_HELD_OUT and counts[smallest] < 2 else "")
        return f"Training on {len(split.train)} photos, validating on {n_val}{why}"
    cost = ("each a few seconds on stored features" if request.recipe.mode == "cached"
            else f"each a whole {request.recipe.name} training")
    reason = (f"{n_val} validation photos are too few to trust (fewer than {SMALL_HELD_OUT}): "
              if n_val < SMALL_HELD_OUT else "")
    final_line = (f"then the final model on all {n_all} photos" if final == "all"
                  else f"then the model on the split's {len(split.train)} training photos")
    return (f"{reason}cross-validating over {folds} folds of {n_all} photos ({folds} trainings, "
            f"{cost}), {final_line} (--folds 0 skips the folds; --final chooses)")


def train_validated(request: TrainRequest, started: float, scanned: tuple[DatasetIndex, Split],
                    folds: int, final: str = "all", progress: bool = True) -> TrainResult:
    """Train as the module docstring says; `folds` as chosen_folds returns it."""
    if not folds:
        return fit(request, started, progress, prepared=prepare(request, progress,
                                                                scanned=scanned))
    index, split = scanned
    check_folds(split, folds)
    lr = _cross_validation_lr(request, scanned, progress)
    figures = cross_validate(request, folds, lr, progress, scanned)
    print(format_cross_validation(figures))
    request = dataclasses.replace(request, lr=lr)
    if final == "split":
        return fit(request, started, progress, prepared=prepare(request, progress,
                                                                scanned=scanned))
    everything = dataclasses.replace(split, train=sorted(split.train + split.val,
                                                         key=lambda item: item.path), val=[])
    request = dataclasses.replace(request, validate=False)
    return fit(request, started, progress,
               prepared=prepare(request, progress, scanned=(index, everything)))


def _cross_validation_lr(request: TrainRequest, scanned: tuple[DatasetIndex, Split],
                         progress: bool) -> float:
    """The LR every fold and the final model train at: the request's, the recipe's, or with
    "auto" the LR finder's suggestion on the split's training photos."""
    if request.lr == "auto":
        prepared = prepare(request, progress, scanned=scanned)
        test = find_lr(request, prepared, request.out / LR_FIND_PLOT, progress)
        print(f"LR finder suggests {test.suggestion:.3g} (plot: {request.out / LR_FIND_PLOT})")
        return test.suggestion
    return request.lr if isinstance(request.lr, float) else request.recipe.lr
