"""`petal lr-find`: the learning-rate range test, as a plot and a suggestion."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from petal.cli.common import add_progress, resolve_data, wants_progress
from petal.cli.train import add_training_args
from petal.errors import PetalError
from petal.training.lr_range import RULES, SUGGESTION_RULE


def add_commands(verbs: argparse._SubParsersAction) -> None:
    lr_find = verbs.add_parser("lr-find", help="learning-rate range test; saves lr_find.png")
    add_training_args(lr_find)
    lr_find.add_argument("--out", default=".", help="folder for lr_find.png (default .)")
    lr_find.add_argument("--rule", default=SUGGESTION_RULE, choices=sorted(RULES),
                         help=f"how the curve becomes a suggestion (default {SUGGESTION_RULE}: "
                         "where the loss stops falling; valley, steep, minimum: fastai's)")
    lr_find.add_argument("--json", action="store_true", help="print the suggestion and the "
                         "curve as JSON: suggestion, lrs, losses (raw), smoothed")
    add_progress(lr_find)
    lr_find.set_defaults(func=cmd_lr_find)


def cmd_lr_find(args: argparse.Namespace) -> int:
    from petal.paths import refuse_inside
    from petal.run_folder import LR_FIND_PLOT
    from petal.training.fit import TrainRequest, find_lr, prepare
    from petal.training.recipes import get_recipe

    if not args.data:
        raise PetalError("--data DIR is required: the range test trains on it")
    recipe = get_recipe(args.recipe, args.set)
    data, _ = resolve_data(args.data, args.cache_dir)
    out = Path(args.out)
    refuse_inside(out, data)
    request = TrainRequest(data=data, recipe=recipe, out=out, model=args.model,
                           weights=args.weights, cache_dir=args.cache_dir,
                           split_file=Path(args.split) if args.split else None,
                           review_file=Path(args.review) if args.review else None)
    progress = wants_progress(args)
    # with --json, standard output carries the JSON alone: notes go to standard error
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        prepared = prepare(request, progress)
        test = find_lr(request, prepared, out / LR_FIND_PLOT, progress, args.rule)
    if args.json:
        print(json.dumps(test.to_json()))
        print(f"Wrote {out / LR_FIND_PLOT}", file=sys.stderr)
    else:
        print(f"Suggested learning rate: {test.suggestion:.3g} ({test.rule} rule; the recipe "
              f"{recipe.name} trains at {prepared.recipe.lr:.3g}; plot: {out / LR_FIND_PLOT})")
    return 0
