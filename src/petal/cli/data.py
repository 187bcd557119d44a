"""`petal data ...` and `petal cache ...`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from petal.cli.common import add_cache_dir, add_progress, human_bytes, wants_progress


def cmd_data_check(args: argparse.Namespace) -> int:
    from petal.data.check import check_folder, format_report

    report = check_folder(args.dir, progress=wants_progress(args))
    print(json.dumps(report.to_json(), indent=2) if args.json else format_report(report))
    if not report.usable:
        print(f"error: {report.problem}", file=sys.stderr)
        return 1
    return 0


def cmd_data_split(args: argparse.Namespace) -> int:
    from petal.data.scan import require_usable, scan_folder
    from petal.data.split import make_split

    index = scan_folder(args.dir, progress=wants_progress(args))
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

    path = download_dataset(args.name, cache_dir=args.cache_dir, progress=wants_progress(args))
    print(f"{args.name} is ready at {path}")
    return 0


# --- cache ------------------------------------------------------------------------------

def cmd_cache_build(args: argparse.Namespace) -> int:
    import time

    from petal.data.cache import DecodedCache
    from petal.data.scan import require_usable, scan_folder
    from petal.models import input_spec
    from petal.paths import cache_root

    size = args.size or input_spec(args.model).resize_size
    start = time.perf_counter()
    index = scan_folder(args.dir, progress=wants_progress(args))
    require_usable(index)
    scanned = time.perf_counter()
    DecodedCache(cache_root(args.cache_dir), size).ensure(
        [(index.root / r.path, r.sha256) for r in index.images], progress=wants_progress(args))
    done = time.perf_counter()
    print(f"{len(index.images)} images cached at {size}px: new ones decoded, stored ones "
          f"checked, in {done - scanned:.1f} s (scan {scanned - start:.1f} s) -> "
          f"{cache_root(args.cache_dir)}")
    return 0


def cmd_cache_info(args: argparse.Namespace) -> int:
    from petal.data.cache import cache_entries, folder_bytes
    from petal.paths import cache_root

    root = cache_root(args.cache_dir)
    total = folder_bytes(root) if root.exists() else 0
    print(f"Cache: {root} ({human_bytes(total)})")
    for entry in cache_entries(root):
        print(f"  decoded images at {entry.size}px: {entry.images} images, "
              f"{human_bytes(entry.bytes)}")
    if root.exists():
        for child in sorted(p for p in root.iterdir() if p.is_dir() and p.name != "decoded"):
            print(f"  {child.name}: {human_bytes(folder_bytes(child))}")
    return 0


def cmd_cache_clear(args: argparse.Namespace) -> int:
    from petal.data.cache import clear_cache
    from petal.paths import cache_root

    root = cache_root(args.cache_dir)
    freed = clear_cache(root)
    print(f"Cleared {root}: {human_bytes(freed)} freed")
    return 0


def add_commands(verbs: argparse._SubParsersAction) -> None:
    data = verbs.add_parser("data", help="check, split or download an image folder")
    data_verbs = data.add_subparsers(dest="data_verb", required=True, metavar="COMMAND")

    check = data_verbs.add_parser("check", help="report classes, sizes, unusable files, duplicates")
    check.add_argument("dir", help="image folder with one sub-folder per class")
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    add_progress(check)
    check.set_defaults(func=cmd_data_check)

    split = data_verbs.add_parser("split", help="stratified, duplicate-aware split saved as JSON")
    split.add_argument("dir", help="image folder with one sub-folder per class")
    split.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    split.add_argument("--val-fraction", type=float, default=0.1, help="default 0.1")
    split.add_argument("--test-fraction", type=float, default=0.0, help="default 0")
    split.add_argument("--keep-conflicts", action="store_true",
                       help="keep identical files filed under different classes")
    split.add_argument("--out", help="output file (default split.json)")
    add_progress(split)
    split.set_defaults(func=cmd_data_split)

    download = data_verbs.add_parser("download", help="fetch a public data set into the cache")
    download.add_argument("name", help="tf_flowers, or kaggle:OWNER/NAME "
                          "(e.g. kaggle:alxmamaev/flowers-recognition)")
    add_cache_dir(download)
    add_progress(download)
    download.set_defaults(func=cmd_data_download)

    cache = verbs.add_parser("cache", help="show or clear petal's cache")
    cache_verbs = cache.add_subparsers(dest="cache_verb", required=True, metavar="COMMAND")
    build = cache_verbs.add_parser("build", help="decode every usable image of DIR once, "
                                   "ahead of training")
    build.add_argument("dir", help="image folder with one sub-folder per class")
    build.add_argument("--model", default="efficientnet_lite0",
                       help="store at this model's resize size (default efficientnet_lite0)")
    build.add_argument("--size", type=int, help="store at this size instead (shorter side, px)")
    add_cache_dir(build)
    add_progress(build)
    build.set_defaults(func=cmd_cache_build)
    info = cache_verbs.add_parser("info", help="what is cached and its size")
    add_cache_dir(info)
    info.set_defaults(func=cmd_cache_info)
    clear = cache_verbs.add_parser("clear", help="delete everything in the cache")
    add_cache_dir(clear)
    clear.set_defaults(func=cmd_cache_clear)
