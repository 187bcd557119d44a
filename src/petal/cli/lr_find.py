"""`petal lr-find`: the learning-rate range test, as a plot and a suggestion."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from petal.cli.common import add_progress, labels_of, wants_progress
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
    from petal.api import lr_find
    from petal.run_folder import LR_FIND_PLOT

    if not args.data:
        raise PetalError("--data DIR is required: the range test trains on it")
    # with --json, standard output carries the JSON alone: notes go to standard error
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        finding = lr_find(args.data, model=args.model, recipe=args.recipe, overrides=args.set,
                          rule=args.rule, split=args.split, review=args.review,
                          weights=args.weights, out=args.out, cache_dir=args.cache_dir,
                          progress=wants_progress(args), **labels_of(args))
    plot = Path(args.out) / LR_FIND_PLOT
    if args.json:
        print(json.dumps(finding.to_json()))
        print(f"Wrote {plot}", file=sys.stderr)
    else:
        print(f"Suggested learning rate: {finding.suggestion:.3g} ({finding.rule} rule; the "
              f"recipe {args.recipe} trains at {finding.recipe_lr:.3g}; plot: {plot})")
    return 0
