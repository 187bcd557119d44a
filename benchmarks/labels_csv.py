"""Labels from a CSV file against class folders, on the flowers set: the same split, the same
accuracy, and what reading the CSV costs.

    .venv/bin/python benchmarks/labels_csv.py --json benchmarks/results/labels_csv.json

The CSV lists every file under the class folders (`path,label`, the class folder's name as
the label), so both sources name the same photos the same way: `petal.split` of each must
give the same split, and `petal train` (fast-transfer, petal's defaults, one feature cache)
the same model. Timed: `petal.check` of each (the scan, every photo read), and each training.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from common import FLOWERS, ROOT, record

import petal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "labels-csv")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    files = sorted(p.relative_to(args.data).as_posix() for p in args.data.glob("*/*")
                   if p.is_file())
    labels = args.out / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{f},{f.split('/')[0]}\n" for f in files))
    sources = {"class folders": {}, "labels file": {"labels": labels}}
    figures: dict = {"photos_listed": len(files), "sources": {}}
    splits = {}
    for name, extra in sources.items():
        started = time.perf_counter()
        check = petal.check(args.data, progress=False, **extra)
        seconds = time.perf_counter() - started
        splits[name] = petal.split(args.data, progress=False, **extra)
        run = args.out / name.replace(" ", "-")
        started = time.perf_counter()
        trained = petal.train(args.data, out=run, cache_dir=args.out / "cache", progress=False,
                              **extra)
        figures["sources"][name] = {
            "check_s": round(seconds, 2), "usable": len(check.index.images),
            "not_used": len(check.index.rejected), "train_s": round(time.perf_counter()
                                                                     - started, 1),
            "accuracy": trained.accuracy}
        print(f"{name:14}: check {seconds:.1f} s ({len(check.index.images)} usable, "
              f"{len(check.index.rejected)} not used), accuracy "
              f"{100 * trained.accuracy['value']:.2f} % ({trained.accuracy['correct']} of "
              f"{trained.accuracy['n']})")
    first, second = splits.values()
    figures["same_split"] = all(first.part(p) == second.part(p) for p in ("train", "val", "test"))
    figures["same_accuracy"] = len({s["accuracy"]["correct"]
                                    for s in figures["sources"].values()}) == 1
    print(f"same split: {figures['same_split']}; same accuracy: {figures['same_accuracy']}")
    if args.json:
        record(args.json, figures, about="labels from a CSV file against class folders on the "
               "flowers set: split, accuracy and the time to read them")


if __name__ == "__main__":
    sys.exit(main())
