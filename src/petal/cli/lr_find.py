"""`petal lr-find`: the learning-rate range test, as a plot and a suggestion."""

from __future__ import annotations

import argparse
from pathlib import Path

from petal.cli.common import add_progress, resolve_data, wants_progress
from petal.cli.train import add_training_args
from petal.errors import PetalError


def add_commands(verbs: argparse._SubParsersAction) -> None:
    lr_find = verbs.add_parser("lr-find", help="learning-rate range test; saves lr_find.png")
    add_training_args(lr_find)
    lr_find.add_argument("--out", default=".", help="folder for lr_find.png (default .)")
    add_progress(lr_find)
    lr_find.set_defaults(func=cmd_lr_find)


def cmd_lr_find(args: argparse.Namespace) -> int:
    from petal.run_folder import LR_FIND_PLOT
    from petal.train.fit import TrainRequest, find_lr, prepare
    from petal.train.recipes import get_recipe

    if not args.data:
        raise PetalError("--data DIR is required: the range test trains on it")
    recipe = get_recipe(args.recipe, args.set)
    data, _ = resolve_data(args.data, args.cache_dir)
    out = Path(args.out)
    request = TrainRequest(data=data, recipe=recipe, out=out, model=args.model,
                           weights=args.weights, cache_dir=args.cache_dir,
                           split_file=Path(args.split) if args.split else None,
                           review_file=Path(args.review) if args.review else None)
    progress = wants_progress(args)
    lr = find_lr(request, prepare(request, progress), out / LR_FIND_PLOT, progress)
    print(f"Suggested learning rate: {lr:.3g} (plot: {out / LR_FIND_PLOT})")
    return 0
