"""The LR finder against the recipes' hand-tuned learning rates on the flowers set.

    .venv/bin/python benchmarks/lr_find.py --seeds 0 1 --train \
        --json benchmarks/results/lr_find.json

For each fast recipe and split seed: the range test's time and every rule's suggestion
(petal.training.lr_range.RULES) on petal's curve and on fastai's (an exponential average, which
lags), and Lightning's own on its own curve, next to the recipe's LR;
with --train, the validation accuracy of a training at the shipped rule's suggestion (what
`--lr auto` does) and at the recipe's LR, same split, same seed.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import FLOWERS, record

from petal.data.scan import scan_folder
from petal.data.split import make_split
from petal.training.fit import TrainRequest, find_lr, prepare
from petal.training.lr_range import RULES, SUGGESTION_RULE, smoothed
from petal.training.orchestrator import train_model
from petal.training.recipes import get_recipe


def fastai_curve(losses: list[float], beta: float = 0.98) -> np.ndarray:
    """fastai's smoothing: an exponential average, bias corrected with the right step count."""
    average, curve = 0.0, []
    for step, loss in enumerate(losses, start=1):
        average = beta * average + (1 - beta) * loss
        curve.append(average / (1 - beta ** step))
    return np.array(curve)


def lightning_suggestion(lrs: list[float], losses: list[float]) -> float:
    """What Lightning's tuner suggests: the steepest point of its own smoothed curve (beta 0.98,
    bias corrected with the step count one too high), skipping 10 steps at the start, 1 at the
    end; rebuilt here from the raw losses to compare on the same test."""
    average, curve = 0.0, []
    for step, loss in enumerate(losses, start=1):
        average = 0.98 * average + 0.02 * loss
        curve.append(average / (1 - 0.98 ** (step + 1)))
    window, window_lrs = np.array(curve[10:-1]), np.array(lrs[10:-1])
    return float(window_lrs[int(np.argmin(np.gradient(window, window_lrs)))])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--recipes", nargs="+", default=["fast-transfer", "fast-resnet9"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--train", action="store_true",
                        help="also train at the suggestion and at the recipe's LR")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--cache-dir", help="petal's cache (default: the usual one)")
    args = parser.parse_args()
    index = scan_folder(args.data, progress=False)
    results = []
    with tempfile.TemporaryDirectory(prefix="petal-lr-find-") as scratch:
        for seed in args.seeds:
            split_file = Path(scratch) / f"split{seed}.json"
            make_split(index, seed=seed).save(split_file)
            for name in args.recipes:
                recipe = get_recipe(name)
                request = TrainRequest(data=args.data, recipe=recipe, out=Path(scratch) / "lr",
                                       split_file=split_file, cache_dir=args.cache_dir)
                prepared = prepare(request, progress=False)
                test = find_lr(request, prepared, Path(scratch) / "lr_find.png", progress=False)
                curve = np.array(smoothed(test.losses))
                rules = {rule: test.lrs[pick(test.lrs, curve)] for rule, pick in RULES.items()}
                lagging = fastai_curve(test.losses)
                rules.update({f"{rule} on fastai's curve": test.lrs[pick(test.lrs, lagging)]
                              for rule, pick in RULES.items()})
                rules["lightning"] = lightning_suggestion(test.lrs, test.losses)
                row = {"recipe": name, "seed": seed, "recipe_lr": recipe.lr,
                       "range_test_seconds": round(test.seconds, 1), "steps": len(test.lrs),
                       "suggestions": {k: float(f"{v:.4g}") for k, v in rules.items()},
                       "factor_from_recipe": {k: round(v / recipe.lr, 3)
                                              for k, v in rules.items()},
                       "lrs": test.lrs, "losses": test.to_json()["losses"]}
                print(f"{name}, split seed {seed}: range test {test.seconds:.1f} s; recipe LR "
                      f"{recipe.lr:g}; " + ", ".join(f"{k} {v:.3g} (x{v / recipe.lr:.2f})"
                                                     for k, v in rules.items()), flush=True)
                if args.train:
                    for label, lr in (("recipe", None), ("auto", test.suggestion)):
                        request = TrainRequest(
                            data=args.data, recipe=recipe, out=Path(scratch) / f"{name}{seed}"
                            f"{label}", split_file=split_file, lr=lr, cache_dir=args.cache_dir)
                        trained = train_model(request, folds=0, progress=False)
                        row[f"val_acc_{label}"] = round(trained.val_acc, 6)
                        row[f"train_seconds_{label}"] = round(trained.seconds, 1)
                    row["range_test_share"] = round(test.seconds / row["train_seconds_recipe"], 3)
                    print(f"  {SUGGESTION_RULE} at {test.suggestion:.3g}: "
                          f"{100 * row['val_acc_auto']:.1f} %; recipe's {recipe.lr:g}: "
                          f"{100 * row['val_acc_recipe']:.1f} %; the range test costs "
                          f"{100 * row['range_test_share']:.1f} % of the training", flush=True)
                results.append(row)
    summary = {rule: round(max(abs(math.log10(r["factor_from_recipe"][rule])) for r in results), 3)
               for rule in results[0]["suggestions"]}
    print("largest distance from the recipe's LR, in decades: "
          + ", ".join(f"{k} {v}" for k, v in summary.items()))
    if args.json:
        record(args.json, {"rule": SUGGESTION_RULE, "results": results,
                           "worst_decades_from_recipe": summary},
               "the LR range test by recipe and split seed: raw losses, every rule's "
               "suggestion, accuracy at the suggestion and at the recipe's LR, the test's time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
