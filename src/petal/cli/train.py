"""`petal train`: train a model into a run folder, or continue one (--resume)."""

from __future__ import annotations

import argparse

from petal.cli.common import (
    add_cache_dir,
    add_labels,
    add_progress,
    add_review,
    labels_of,
    wants_progress,
)
from petal.errors import PetalError
from petal.training.precision import AUTO, CHOICES


def add_commands(verbs: argparse._SubParsersAction) -> None:
    train = verbs.add_parser("train", help="train a model; writes a run folder")
    add_training_args(train)
    train.add_argument("--out", help="run folder (default runs/RECIPE_MODEL_TIME)")
    train.add_argument("--lr", help="learning rate: a number, or 'auto' for the LR finder's "
                       "suggestion (default: the recipe's)")
    train.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    train.add_argument("--folds", type=int, metavar="K", help="cross-validate over K folds "
                       "of the training and validation photos, then train the final model "
                       "(default: 5 folds when the split has fewer than 100 validation photos, "
                       "else none; 0: none)")
    train.add_argument("--final", choices=("all", "split"), help="after cross-validating, "
                       "train the final model on every photo (all, the default) or on the "
                       "split's training part (split)")
    train.add_argument("--accelerator", default="auto", help="cpu, gpu, ... (Lightning)")
    train.add_argument("--devices", default="auto", help="number of devices (Lightning)")
    train.add_argument("--num-nodes", type=int, default=1, help="machines (Lightning)")
    train.add_argument("--strategy", default="auto", help="auto, ddp, ... (Lightning)")
    train.add_argument("--precision", default=AUTO, choices=CHOICES,
                       help="number format (Lightning's); auto, the default: bf16-mixed on a "
                       "GPU or a CPU with native bfloat16 (AMX), else 32-true")
    add_progress(train)
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from petal.api import train

    if args.resume:
        if given := _options_given(args.argv, besides=("resume", "progress")):
            raise PetalError(f"--resume continues {args.resume} as it was started (its "
                             f"config.json): leave out {', '.join(given)}, or start a new run "
                             "with them")
        train(resume=args.resume, progress=wants_progress(args), started=args.started)
        return 0
    if not args.data:
        raise PetalError("--data DIR is required (or --resume RUN)")
    if args.folds is not None and (args.folds == 1 or args.folds < 0):
        raise PetalError(f"--folds {args.folds}: at least 2 (or 0: no cross-validation)")
    train(args.data, out=args.out, model=args.model, recipe=args.recipe, overrides=args.set,
          split=args.split, review=args.review, lr=_lr(args.lr), folds=args.folds,
          final=args.final, precision=args.precision, progress=wants_progress(args),
          weights=args.weights, cache_dir=args.cache_dir, accelerator=args.accelerator,
          devices=args.devices, num_nodes=args.num_nodes, strategy=args.strategy,
          started=args.started, **labels_of(args))
    return 0


def _lr(text: str | None) -> float | str | None:
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError as exc:
        raise PetalError(f"--lr {text}: give a number or 'auto'") from exc


def _options_given(argv: list[str], besides: tuple[str, ...]) -> list[str]:
    """The options of `petal train` that `argv` gives (at any value), `besides` aside."""
    parser = argparse.ArgumentParser(prog="petal", add_help=False)
    add_commands(parser.add_subparsers(dest="verb"))
    train = parser._subparsers._group_actions[0].choices["train"]  # noqa: SLF001
    for action in train._actions:  # noqa: SLF001 - argparse keeps them here only
        action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(argv))
    return [f"--{name.replace('_', '-')}" for name in given
            if name not in ("verb", "func", *besides)]


def add_training_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="image folder (one sub-folder per class, or with "
                        "--labels) or a data set "
                        "name: tf_flowers, kaggle:OWNER/NAME")
    parser.add_argument("--model", help="resnet9, efficientnet_lite0/1/2, a torchvision model "
                        "name (resnet34, ...) or timm:NAME (default: the recipe's)")
    parser.add_argument("--recipe", default="fast-transfer", help="see `petal recipes` "
                        "(default fast-transfer: minutes on a CPU)")
    parser.add_argument("--weights", help="imagenet, none, or a local state-dict file "
                        "(default: imagenet for pretrained families)")
    add_labels(parser)
    parser.add_argument("--split", help="reuse this split file (default: a new split, seed 0)")
    add_review(parser)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a recipe field, e.g. --set epochs=3 (repeatable)")
    add_cache_dir(parser)
