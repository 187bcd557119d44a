"""`petal data check|split|review|pack|download`: look at, split, review, pack or fetch an
image folder."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from petal.cli.common import (
    add_cache_dir,
    add_labels,
    add_progress,
    add_review,
    labels_of,
    wants_progress,
)
from petal.errors import PetalError


def add_commands(verbs: argparse._SubParsersAction) -> None:
    data = verbs.add_parser("data", help="check, split or download an image folder")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="COMMAND")

    check = data_verbs.add_parser("check", help="report classes, sizes, unusable files, duplicates")
    check.add_argument("dir", help="image folder: one sub-folder per class, or the "
                       "photos --labels names")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    add_labels(check)
    add_progress(check)
    check.set_defaults(func=cmd_data_check)

    split = data_verbs.add_parser("split", help="stratified, duplicate-aware split saved as JSON")
    split.add_argument("dir", help="image folder: one sub-folder per class, or the "
                       "photos --labels names")
    split.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    split.add_argument("--val-fraction", type=float, default=0.1, help="default 0.1")
    split.add_argument("--test-fraction", type=float, default=0.0, help="default 0")
    split.add_argument("--keep-conflicts", action="store_true",
                       help="keep identical files filed under different classes")
    add_review(split)
    add_labels(split)
    split.add_argument("--out", help="output file (default split.json)")
    add_progress(split)
    split.set_defaults(func=cmd_data_split)

    review = data_verbs.add_parser(
        "review", help="likely label mistakes and outliers, from out-of-fold predictions")
    review.add_argument("dir", help="image folder: one sub-folder per class, or the "
                       "photos --labels names")
    review.add_argument("--model", default="efficientnet_lite0",
                        help="pretrained model whose features are used (default "
                        "efficientnet_lite0: the features fast-transfer caches)")
    review.add_argument("--folds", type=int, default=5, help="folds (default 5)")
    review.add_argument("--rank", choices=("self-confidence", "margin"),
                        default="self-confidence", help="order of the likely label mistakes: "
                        "the given label's out-of-fold probability, lowest first (default), "
                        "or how far the suggested class's probability exceeds it")
    review.add_argument("--out", help="also write here review.csv (your decisions: edit it, "
                        "then pass it to --review), review.html (thumbnails), review.json, "
                        "label_issues.png and outliers.png (contact sheets of the first 16)")
    review.add_argument("--json", action="store_true", help="print the review as JSON")
    add_labels(review)
    review.add_argument("--serve", action="store_true", help="then open the review page on "
                        "--out's findings (as `petal review OUT`): decide in the browser")
    review.add_argument("--port", type=int, default=0, help="the review page's port on "
                        "127.0.0.1, with --serve (default 0: any free one)")
    add_cache_dir(review)
    add_progress(review)
    review.set_defaults(func=cmd_data_review)

    pack = data_verbs.add_parser("pack", help="write the usable photos as WebDataset tar "
                                 "shards, for predict to stream from a disk or a server")
    pack.add_argument("dir", help="image folder: one sub-folder per class, or the "
                      "photos --labels names")
    pack.add_argument("--out", required=True, help="a new or empty folder for the shards "
                      "(shard-000000.tar, ...)")
    pack.add_argument("--shard-mb", type=float, default=256, help="about this many MB a "
                      "shard (default 256)")
    add_labels(pack)
    add_progress(pack)
    pack.set_defaults(func=cmd_data_pack)

    download = data_verbs.add_parser("download", help="fetch a public data set into the cache")
    download.add_argument("name", help="tf_flowers, or kaggle:OWNER/NAME "
                          "(e.g. kaggle:alxmamaev/flowers-recognition)")
    add_cache_dir(download)
    add_progress(download)
    download.set_defaults(func=cmd_data_download)


def cmd_data_check(args: argparse.Namespace) -> int:
    from petal.api import check

    report = check(args.dir, progress=wants_progress(args), **labels_of(args))
    print(json.dumps(report.to_json(), indent=2) if args.json else report.summary())
    if not report.usable:
        print(f"error: {report.problem}", file=sys.stderr)
        return 1
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from petal.api import split as make_split

    out = Path(args.out or "split.json")
    split = make_split(args.dir, out=out, seed=args.seed, val_fraction=args.val_fraction,
                       test_fraction=args.test_fraction, keep_conflicts=args.keep_conflicts,
                       review=args.review, progress=wants_progress(args), **labels_of(args))
    sizes = ", ".join(f"{part} {sum(c.values())}" for part, c in split.counts().items())
    print(f"Split of {args.dir} (seed {args.seed}): {sizes}; "
          f"{len(split.excluded_conflicts)} conflicting copies left out -> {out}")
    return 0


def cmd_data_review(args: argparse.Namespace) -> int:
    from petal.api import review

    if args.serve and not args.out:
        raise PetalError("--serve shows the findings written to --out: give --out DIR too")
    if args.serve:
        from petal.paths import refuse_inside
        from petal.serve.local_page import listen

        refuse_inside(args.out, args.dir)  # before the port is taken
        sock = listen(args.port)  # before the review: a busy or bad port fails fast
    # with --json, standard output carries the JSON alone: notes go to standard error
    with contextlib.redirect_stdout(sys.stderr if args.json else sys.stdout):
        result = review(args.dir, model=args.model, folds=args.folds, out=args.out,
                        cache_dir=args.cache_dir, progress=wants_progress(args),
                        rank=args.rank, **labels_of(args))
    print(json.dumps(result.to_json(), indent=2) if args.json else result.summary())
    if args.serve:
        from petal.cli.decide import serve_review

        serve_review(args.out, sock)
    return 0


def cmd_data_pack(args: argparse.Namespace) -> int:
    from petal.api import pack

    packed = pack(args.dir, out=args.out, shard_mb=args.shard_mb,
                  progress=wants_progress(args), **labels_of(args))
    print(packed.summary())
    return 0 if packed.photos else 1


def cmd_data_download(args: argparse.Namespace) -> int:
    from petal.data.download import download_dataset

    path = download_dataset(args.name, cache_dir=args.cache_dir, progress=wants_progress(args))
    print(f"{args.name} is ready at {path}")
    return 0
