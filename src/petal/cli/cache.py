"""`petal cache build|info|clear`: petal's cache of decoded images and trunk features."""

from __future__ import annotations

import argparse

from petal.cli.common import add_cache_dir, add_progress, human_bytes, wants_progress


def add_commands(verbs: argparse._SubParsersAction) -> None:
    cache = verbs.add_parser("cache", help="build, show or clear petal's cache")
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


def cmd_cache_build(args: argparse.Namespace) -> int:
    import time

    from petal.data.decoded_cache import DecodedCache
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
    from petal.data.decoded_cache import cache_entries, folder_bytes
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
    from petal.data.decoded_cache import clear_cache
    from petal.paths import cache_root

    root = cache_root(args.cache_dir)
    freed = clear_cache(root)
    print(f"Cleared {root}: {human_bytes(freed)} freed")
    return 0
