"""`petal run`: the main job (what `make run` invokes)."""

from __future__ import annotations

import argparse
import time

from petal.cli.common import (
    add_cache_dir,
    add_labels,
    add_progress,
    add_review,
    labels_of,
    wants_progress,
)


def add_commands(verbs: argparse._SubParsersAction) -> None:
    run = verbs.add_parser("run", help="the whole experiment: check, split, train from scratch "
                           "and pretrained, evaluate, compare, report.html")
    run.add_argument("--data", required=True, help="image folder (one sub-folder per class, or "
                     "with --labels) "
                     "or a data set name: tf_flowers, kaggle:OWNER/NAME")
    run.add_argument("--out", help="main run folder (default runs/main_TIME)")
    run.add_argument("--scratch-model", default="resnet9", help="default resnet9")
    run.add_argument("--transfer-model", default="efficientnet_lite0",
                     help="default efficientnet_lite0 (offline ImageNet weights); e.g. "
                     "resnet34 with --weights imagenet|PATH for the original's model")
    run.add_argument("--weights", help="weights of the transfer model: imagenet, or a local "
                     "state-dict file (default: its ImageNet weights)")
    run.add_argument("--recipes", default="fast",
                     help="fast: fast-resnet9 + fast-transfer (default); original: the "
                     "original write-up's original-resnet9 + original-transfer")
    run.add_argument("--set-scratch", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a field of the scratch recipe (repeatable)")
    run.add_argument("--set-transfer", action="append", default=[], metavar="FIELD=VALUE",
                     help="override a field of the transfer recipe (repeatable)")
    run.add_argument("--lr-find", action=argparse.BooleanOptionalAction, default=True,
                     help="run the learning-rate range test for each model and show it in the "
                     "report beside the rate the recipe trains at (default: on; "
                     "--no-lr-find skips it)")
    add_review(run)
    add_labels(run)
    add_progress(run)
    add_cache_dir(run)
    run.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from petal.api import run

    job = run(args.data, out=args.out, recipes=args.recipes, lr_find=args.lr_find,
              scratch_model=args.scratch_model, transfer_model=args.transfer_model,
              weights=args.weights, scratch_overrides=args.set_scratch,
              transfer_overrides=args.set_transfer, review=args.review,
              cache_dir=args.cache_dir, progress=wants_progress(args), started=args.started,
              **labels_of(args))
    print(f"\nDone in {time.perf_counter() - args.started:.0f} s. Report: {job.report}")
    return 0
