"""`petal train`, `petal lr-find`, `petal recipes`, `petal models`."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from petal.cli.common import add_cache_dir, add_progress, resolve_data, wants_progress
from petal.errors import PetalError


def _trainer_options(args: argparse.Namespace):
    from petal.train.fit import TrainerOptions

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
    from lightning.pytorch.utilities import rank_zero_only

    from petal.train.fit import TrainRequest, fit, resume
    from petal.train.recipes import get_recipe

    if args.resume:
        resume(Path(args.resume), args.started, progress=wants_progress(args))
        return 0
    if not args.data:
        raise PetalError("--data DIR is required (or --resume RUN)")
    recipe = get_recipe(args.recipe, args.set)
    data, description = resolve_data(args.data, args.cache_dir)
    model = args.model or recipe.model
    out = Path(args.out or os.environ.get("PETAL_RUN_DIR") or _default_run_dir(recipe.name, model))
    if rank_zero_only.rank == 0 and (out / "config.json").exists():
        raise PetalError(f"{out} already holds a run: continue it with --resume {out}, "
                         "or choose another --out")
    request = TrainRequest(data=data, recipe=recipe, out=out, model=model, weights=args.weights,
                           split_file=Path(args.split) if args.split else None, lr=_lr(args.lr),
                           trainer=_trainer_options(args), cache_dir=args.cache_dir,
                           data_description=description)
    print(f"Training {model} with recipe {recipe.name} on {description} -> {out}")
    # The worker processes Lightning starts for a multi-device run re-run this command
    # and find the run folder here.
    os.environ["PETAL_RUN_DIR"] = str(out)
    try:
        fit(request, args.started, progress=wants_progress(args))
    finally:
        os.environ.pop("PETAL_RUN_DIR", None)
    return 0


def _default_run_dir(recipe: str, model: str) -> str:
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise PetalError("several processes were started for this run (torchrun, SLURM): "
                         "give them one run folder with --out")
    return f"runs/{recipe}_{model.replace(':', '-')}_{time.strftime('%Y%m%d-%H%M%S')}"


def cmd_lr_find(args: argparse.Namespace) -> int:
    from petal.train.fit import TrainRequest, find_lr, prepare
    from petal.train.recipes import get_recipe

    if not args.data:
        raise PetalError("--data DIR is required: the range test trains on it")
    recipe = get_recipe(args.recipe, args.set)
    data, _ = resolve_data(args.data, args.cache_dir)
    out = Path(args.out)
    request = TrainRequest(data=data, recipe=recipe, out=out, model=args.model,
                           weights=args.weights, cache_dir=args.cache_dir,
                           split_file=Path(args.split) if args.split else None)
    progress = wants_progress(args)
    lr = find_lr(request, prepare(request, progress), out / "lr_find.png", progress)
    print(f"Suggested learning rate: {lr:.3g} (plot: {out / 'lr_find.png'})")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from petal.models import model_names

    print("\n".join(model_names()))
    print("... and any timm model as timm:NAME (see timm.list_models())")
    return 0


def cmd_recipes(args: argparse.Namespace) -> int:
    from petal.train.recipes import describe_recipes

    print(describe_recipes())
    return 0


def _add_training_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", help="image folder (one sub-folder per class) or a data set "
                        "name: tf_flowers, kaggle:OWNER/NAME")
    parser.add_argument("--model", help="resnet9, efficientnet_lite0/1/2, a torchvision model "
                        "name (resnet34, ...) or timm:NAME (default: the recipe's)")
    parser.add_argument("--recipe", default="fast-transfer", help="see `petal recipes` "
                        "(default fast-transfer: minutes on a CPU)")
    parser.add_argument("--weights", help="imagenet, none, or a local state-dict file "
                        "(default: imagenet for pretrained families)")
    parser.add_argument("--split", help="reuse this split file (default: the seed-0 split)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a recipe field, e.g. --set epochs=3 (repeatable)")
    add_cache_dir(parser)


def add_commands(verbs: argparse._SubParsersAction) -> None:
    train = verbs.add_parser("train", help="train a model; writes a run folder")
    _add_training_args(train)
    train.add_argument("--out", help="run folder (default runs/RECIPE_MODEL_TIME)")
    train.add_argument("--lr", help="learning rate: a number, or 'auto' for the LR finder's "
                       "suggestion (default: the recipe's)")
    train.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    train.add_argument("--accelerator", default="auto", help="cpu, gpu, ... (Lightning)")
    train.add_argument("--devices", default="auto", help="number of devices (Lightning)")
    train.add_argument("--num-nodes", type=int, default=1, help="machines (Lightning)")
    train.add_argument("--strategy", default="auto", help="auto, ddp, ... (Lightning)")
    train.add_argument("--precision", default="32-true",
                       help="32-true, bf16-mixed, 16-mixed (Lightning)")
    add_progress(train)
    train.set_defaults(func=cmd_train)

    lr_find = verbs.add_parser("lr-find", help="learning-rate range test; saves lr_find.png")
    _add_training_args(lr_find)
    lr_find.add_argument("--out", default=".", help="folder for lr_find.png (default .)")
    add_progress(lr_find)
    lr_find.set_defaults(func=cmd_lr_find)

    recipes = verbs.add_parser("recipes", help="list the training recipes and their fields")
    recipes.set_defaults(func=cmd_recipes)

    models = verbs.add_parser("models", help="list the model names petal knows")
    models.set_defaults(func=cmd_models)
