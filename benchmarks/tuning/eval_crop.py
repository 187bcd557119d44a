"""Test-time views of trained models: the central crop against the whole stored square.

A tuning helper (benchmarks/tuning/README.md). For each run (or model) folder, evaluates its
own validation split four ways and counts the images right: the central crop of the
training crops' size (`c`, what a model saved with eval_crop=center sees), `c` averaged
with its mirror (`c+cm`, tta_flip), the whole decoded-cache square (`f`, what
eval_crop=full sees), `f` with its mirror (`f+fm`) and all four averaged (`c+cm+f+fm`).
Nothing is retrained, so the recipe field eval_crop can be judged on models that already
exist, saved either way.

    .venv/bin/python benchmarks/tuning/eval_crop.py runs/tune/s1-default runs/tune/s2-default \
        --json benchmarks/tuning/results/eval_crop.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py

import numpy as np  # noqa: E402
from common import record, validation_photos  # noqa: E402

import petal  # noqa: E402
from petal.fsutil import read_json  # noqa: E402
from petal.jobs.evaluate import central_crops  # noqa: E402
from petal.run_folder import CONFIG_FILE  # noqa: E402

VIEWS = {"c": ["c"], "c+cm": ["c", "cm"], "f": ["f"], "f+fm": ["f", "fm"],
         "c+cm+f+fm": ["c", "cm", "f", "fm"]}


def images_right(run: Path) -> dict:
    """Images right on `run`'s own validation split for each entry of VIEWS."""
    photos = validation_photos(run)
    classifier = petal.load(photos.folder)
    config = photos.folder.parent / CONFIG_FILE  # a run's config.json has the training input
    crop = read_json(config)["input"]["size"] if config.is_file() else classifier.spec.size
    squares, targets = photos.squares, photos.targets
    crops = central_crops(squares, crop)
    probabilities = {name: classifier.answer(np.ascontiguousarray(pixels)).probabilities
                     for name, pixels in [("c", crops), ("cm", crops[:, :, ::-1]),
                                          ("f", squares), ("fm", squares[:, :, ::-1])]}
    right = {name: int((sum(probabilities[v] for v in views).argmax(1) == targets).sum())
             for name, views in VIEWS.items()}
    return {"run": str(run), "n": len(targets), **right}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run or model folders")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        rows.append(images_right(run))
        print("  ".join(f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    totals = {name: sum(row[name] for row in rows) for name in ["n", *VIEWS]}
    print("total  " + "  ".join(f"{k} {v}" for k, v in totals.items()))
    if args.json:
        record(args.json, {"runs": rows, "totals": totals}, "trained models scored on their "
               "validation split with the central crop, the whole square, their mirrors and "
               "all four averaged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
