"""Disk a cached recipe leaves in the cache, per photo: fast-transfer's trunk features, and
the decoded squares it no longer stores.

    .venv/bin/python benchmarks/cache_disk.py --json benchmarks/results/cache_disk.json

PER_CLASS flowers a class linked into a folder; `petal train --recipe fast-transfer --folds 0`
into an empty cache: what its cache holds after, by kind (`features/`, `decoded/`). Until
2026-12-08 training first decoded every photo into `decoded/` (a 256 px square, read once to
compute the features); `petal cache build` of the same folder into another empty cache
stores exactly those squares, and is measured as what training used to add.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import FLOWERS, PETAL, linked, record

from petal.data.decoded_cache import folder_bytes

PER_CLASS = 100


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        data = linked(FLOWERS, root / "data", per_class=PER_CLASS)
        photos = sum(1 for _ in data.glob("*/*"))
        started = time.perf_counter()
        subprocess.run([PETAL, "train", "--data", str(data), "--recipe", "fast-transfer",
                        "--folds", "0", "--out", str(root / "run"), "--cache-dir",
                        str(root / "cache"), "--no-progress"], check=True,
                       capture_output=True)
        seconds = time.perf_counter() - started
        subprocess.run([PETAL, "cache", "build", str(data), "--model", "efficientnet_lite0",
                        "--cache-dir", str(root / "squares"), "--no-progress"], check=True,
                       capture_output=True)
        figures = {"photos": photos, "train_s_cold": round(seconds, 1),
                   "now": {"features": folder_bytes(root / "cache" / "features"),
                           "decoded": folder_bytes(root / "cache" / "decoded")},
                   "decoded_squares_before": folder_bytes(root / "squares" / "decoded")}
    per = {k: round(v / photos) for k, v in figures["now"].items()}
    before = round(figures["decoded_squares_before"] / photos)
    figures["per_photo"] = {"features": per["features"], "decoded_now": per["decoded"],
                            "decoded_before": before,
                            "before": per["features"] + before,
                            "after": per["features"] + per["decoded"]}
    print(f"{photos} photos: per photo now {per['features'] / 1024:.1f} KiB of features, "
          f"{per['decoded'] / 1024:.1f} KiB decoded; before, {before / 1024:.1f} KiB of decoded "
          f"squares besides ({seconds:.0f} s training from a cold cache)")
    if args.json:
        record(args.json, figures, about="disk per photo a fast-transfer training leaves in "
               "the cache, and the decoded squares it no longer stores")


if __name__ == "__main__":
    sys.exit(main())
