"""The `petal` command: parse arguments, call the library, print. Nothing else lives here.

Heavy libraries (torch, Lightning) are imported inside the commands that need them, so
`petal --help` and the data commands start quickly.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from petal.errors import PetalError


def _add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", help="cache folder (default: $PETAL_CACHE, else "
                        "$XDG_CACHE_HOME/petal, else ~/.cache/petal)")


def _human_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError


# --- data -------------------------------------------------------------------------------

def cmd_data_check(args: argparse.Namespace) -> int:
    from petal.data.check import check_folder, format_report

    report = check_folder(args.dir, progress=not args.json)
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
    if not report.usable:
        print(f"error: {report.problem}", file=sys.stderr)
        return 1
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from petal.data.scan import require_usable, scan_folder
    from petal.data.split import make_split

    index = scan_folder(args.dir)
    require_usable(index)
    split = make_split(index, seed=args.seed, val_fraction=args.val_fraction,
                       test_fraction=args.test_fraction, keep_conflicts=args.keep_conflicts)
    out = Path(args.out or "split.json")
    split.save(out)
    sizes = ", ".join(f"{part} {sum(c.values())}" for part, c in split.counts().items())
    print(f"Split of {args.dir} (seed {args.seed}): {sizes}; "
          f"{len(split.excluded_conflicts)} conflicting copies left out -> {out}")
    return 0


def cmd_data_download(args: argparse.Namespace) -> int:
    from petal.data.download import download_dataset

    path = download_dataset(args.name, cache_dir=args.cache_dir)
    print(f"{args.name} is ready at {path}")
    return 0


# --- cache ------------------------------------------------------------------------------

def cmd_cache_info(args: argparse.Namespace) -> int:
    from petal.data.cache import cache_entries, folder_bytes
    from petal.paths import cache_root

    root = cache_root(args.cache_dir)
    total = folder_bytes(root) if root.exists() else 0
    print(f"Cache: {root} ({_human_bytes(total)})")
    for entry in cache_entries(root):
        print(f"  decoded images at {entry.size}px: {entry.images} images, "
              f"{_human_bytes(entry.bytes)}")
    if root.exists():
        for child in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "decoded"):
            print(f"  {child.name}: {_human_bytes(folder_bytes(child))}")
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from petal.data.cache import clear_cache
    from petal.paths import cache_root

    root = cache_root(args.cache_dir)
    freed = clear_cache(root)
    print(f"Cleared {root}: {_human_bytes(freed)} freed")
    return 0


# --- training ---------------------------------------------------------------------------

def resolve_data(arg: str, cache_dir: str | None) -> tuple[Path, str]:
    """A folder path, or the name of a public data set (downloaded once into the cache)."""
    from petal.data.download import is_dataset_name, download_dataset

    if is_dataset_name(arg):
        path = download_dataset(arg, cache_dir=cache_dir)
        return path, f"{arg} (public data set, downloaded to {path})"
    return Path(arg), f"{arg} (local folder)"


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
        resume(Path(args.resume), args.started, progress=not args.no_progress)
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
        fit(request, args.started, progress=not args.no_progress)
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

    recipe = get_recipe(args.recipe, args.set)
    data, _ = resolve_data(args.data, args.cache_dir)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    request = TrainRequest(data=data, recipe=recipe, out=out, model=args.model,
                           weights=args.weights, split_file=Path(args.split) if args.split else None,
                           cache_dir=args.cache_dir)
    lr = find_lr(request, prepare(request), out / "lr_find.png")
    print(f"Suggested learning rate: {lr:.3g} (plot: {out / 'lr_find.png'})")
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
    parser.add_argument("--recipe", default="seed-transfer", help="see `petal recipes` "
                        "(default seed-transfer)")
    parser.add_argument("--weights", help="imagenet, none, or a local state-dict file "
                        "(default: imagenet for pretrained families)")
    parser.add_argument("--split", help="reuse this split file (default: the seed-0 split)")
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a recipe field, e.g. --set epochs=3 (repeatable)")
    _add_cache_dir(parser)


# --- the parser -------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petal",
        description="Transfer-learning image classifier: check data, train, evaluate, predict.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")

    data = verbs.add_parser("data", help="check, split or download an image folder")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="COMMAND")

    check = data_verbs.add_parser("check", help="report classes, sizes, unusable files, duplicates")
    check.add_argument("dir", help="image folder with one sub-folder per class")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(func=cmd_data_check)

    split = data_verbs.add_parser("split", help="stratified, duplicate-aware split saved as JSON")
    split.add_argument("dir", help="image folder with one sub-folder per class")
    split.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    split.add_argument("--val-fraction", type=float, default=0.1, help="default 0.1")
    split.add_argument("--test-fraction", type=float, default=0.0, help="default 0")
    split.add_argument("--keep-conflicts", action="store_true",
                       help="keep identical files filed under different classes")
    split.add_argument("--out", help="output file (default split.json)")
    split.set_defaults(func=cmd_data_split)

    download = data_verbs.add_parser("download", help="fetch a public data set into the cache")
    download.add_argument("name", help="tf_flowers, or kaggle:OWNER/NAME "
                          "(e.g. kaggle:alxmamaev/flowers-recognition)")
    _add_cache_dir(download)
    download.set_defaults(func=cmd_data_download)

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
    train.add_argument("--no-progress", action="store_true", help="no progress bars")
    train.set_defaults(func=cmd_train)

    lr_find = verbs.add_parser("lr-find", help="learning-rate range test; saves lr_find.png")
    _add_training_args(lr_find)
    lr_find.add_argument("--out", default=".", help="folder for lr_find.png (default .)")
    lr_find.set_defaults(func=cmd_lr_find)

    recipes = verbs.add_parser("recipes", help="list the training recipes and their fields")
    recipes.set_defaults(func=cmd_recipes)

    cache = verbs.add_parser("cache", help="show or clear petal's cache")
    cache_verbs = cache.add_subparsers(dest="cache_verb", required=True, metavar="COMMAND")
    info = cache_verbs.add_parser("info", help="what is cached and its size")
    _add_cache_dir(info)
    info.set_defaults(func=cmd_cache_info)
    clear = cache_verbs.add_parser("clear", help="delete everything in the cache")
    _add_cache_dir(clear)
    clear.set_defaults(func=cmd_cache_clear)
    return parser


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    args = build_parser().parse_args(argv)
    args.started = start  # elapsed times in a run folder count from here
    try:
        return args.func(args)
    except PetalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted after {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
