"""`petal train`: train a model into a run folder, or continue one (--resume)."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from petal.cli.common import add_cache_dir, add_progress, add_review, resolve_data, wants_progress
from petal.errors import PetalError
from petal.paths import refuse_inside
from petal.training.precision import AUTO, CHOICES

if TYPE_CHECKING:
    from petal.training.fit import TrainRequest


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


def _trainer_options(args: argparse.Namespace):
    from petal.training.fit import TrainerOptions

    return TrainerOptions(accelerator=args.accelerator, devices=args.devices,
                          num_nodes=args.num_nodes, strategy=args.strategy,
                          precision=args.precision)


def _lr(text: str | None) -> float | str | None:
    if text is None or text == "auto":
        return text
    try:
        return float(text)
    except ValueError as exc:
        raise PetalError(f"--lr {text}: give a number or 'auto'") from exc


def cmd_train(args: argparse.Namespace) -> int:
    from petal.training.fit import TrainRequest, holding, resume
    from petal.training.recipes import get_recipe

    if args.resume:
        if given := _options_given(args, besides=("resume", "progress")):
            raise PetalError(f"--resume continues {args.resume} as it was started (its "
                             f"config.json): leave out {', '.join(given)}, or start a new run "
                             "with them")
        resume(Path(args.resume), args.started, progress=wants_progress(args))
        return 0
    if not args.data:
        raise PetalError("--data DIR is required (or --resume RUN)")
    if args.folds is not None and (args.folds == 1 or args.folds < 0):
        raise PetalError(f"--folds {args.folds}: at least 2 (or 0: no cross-validation)")
    recipe = get_recipe(args.recipe, args.set)
    data, description = resolve_data(args.data, args.cache_dir)
    model = args.model or recipe.model
    out = Path(args.out or os.environ.get("PETAL_RUN_DIR") or _default_run_dir(recipe.name, model))
    refuse_inside(out, data)
    request = TrainRequest(data=data, recipe=recipe, out=out, model=model, weights=args.weights,
                           split_file=Path(args.split) if args.split else None,
                           review_file=Path(args.review) if args.review else None, lr=_lr(args.lr),
                           trainer=_trainer_options(args), cache_dir=args.cache_dir,
                           data_description=description)
    with holding(out):
        _train(request, args)
    return 0


def _train(request: TrainRequest, args: argparse.Namespace) -> None:
    """Check everything, say what will happen, then train (petal.training.validated)."""
    from lightning.pytorch.utilities import rank_zero_only

    from petal.run_folder import is_run_folder
    from petal.training.fit import scan_and_split
    from petal.training.validated import chosen_folds, plan, train_validated

    out, progress = request.out, wants_progress(args)
    if rank_zero_only.rank == 0 and is_run_folder(out):
        raise PetalError(f"{out} already holds a run: continue it with --resume {out}, "
                         "or choose another --out")
    print(f"Training {request.model_name} with recipe {request.recipe.name} on "
          f"{request.data_description} -> {out}")
    scanned = scan_and_split(request, progress)
    several = _several_processes(request)
    if several and args.folds:
        raise PetalError("cross-validation trains on one device: give --folds 0, or train on "
                         "one device")
    folds = 0 if several else chosen_folds(args.folds, scanned[1])
    if folds:
        from petal.data.split import check_folds

        check_folds(scanned[1], folds)  # before any training
    elif args.final is not None:
        raise PetalError("--final chooses the model trained after cross-validating: give "
                         "--folds K too, or leave --final out")
    print(plan(request, scanned[1], folds, args.final or "all"))
    # The worker processes Lightning starts for a multi-device run re-run this command
    # and find the run folder here.
    os.environ["PETAL_RUN_DIR"] = str(out)
    try:
        train_validated(request, args.started, scanned, folds, args.final or "all", progress)
    finally:
        os.environ.pop("PETAL_RUN_DIR", None)


def _options_given(args: argparse.Namespace, besides: tuple[str, ...]) -> list[str]:
    """The options of `petal train` given other than at their defaults, `besides` aside."""
    from petal.cli import build_parser

    defaults = vars(build_parser().parse_args(["train"]))
    return [f"--{name.replace('_', '-')}" for name, value in vars(args).items()
            if name in defaults and name not in besides and value != defaults[name]]


def _several_processes(request: TrainRequest) -> bool:
    """Whether the training runs in several processes (devices, nodes, or torchrun)."""
    devices = str(request.trainer.devices)
    return (int(os.environ.get("WORLD_SIZE", "1")) > 1 or request.trainer.num_nodes > 1
            or (devices.isdigit() and int(devices) > 1))


def _default_run_dir(recipe: str, model: str) -> str:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise PetalError("several processes were started for this run (torchrun, SLURM): "
                         "give them one run folder with --out")
    return f"runs/{recipe}_{model.replace(':', '-')}_{time.strftime('%Y%m%d-%H%M%S')}"


def add_training_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="image folder (one sub-folder per class) or a data set "
                        "name: tf_flowers, kaggle:OWNER/NAME")
    parser.add_argument("--model", help="resnet9, efficientnet_lite0/1/2, a torchvision model "
                        "name (resnet34, ...) or timm:NAME (default: the recipe's)")
    parser.add_argument("--recipe", default="fast-transfer", help="see `petal recipes` "
                        "(default fast-transfer: minutes on a CPU)")
    parser.add_argument("--weights", help="imagenet, none, or a local state-dict file "
                        "(default: imagenet for pretrained families)")
    parser.add_argument("--split", help="reuse this split file (default: a new split, seed 0)")
    add_review(parser)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a recipe field, e.g. --set epochs=3 (repeatable)")
    add_cache_dir(parser)
