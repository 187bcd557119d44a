"""Labelling with photos of none of the classes in the pool: accuracy against labels spent,
for the queue that puts the photos it calls unknown last, the queue before it, and random.

    .venv/bin/python benchmarks/queue_unknown_curve.py \\
        --json benchmarks/results/queue_unknown_curve.json

queue_unknown.py's setting, followed over ROUNDS batches: for each seed, fast-transfer with
petal's defaults on 10 flowers a class drawn with that seed; the pool is 400 other flowers
and open_set.py's 37 photos that are not flowers. Each round a strategy picks 50 photos of
the pool; a flower picked is labelled (the oracle: its folder), a non-flower is filed as
none of these (into _none/, as `petal label` does: it trains nothing and checks the unknown
threshold), and fast-transfer is trained again on the labelled folder. Accuracy: on 300
other flowers of the seed (the same for every strategy and round), through `petal.load`.
The labels spent are all the photos picked, non-flowers included.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import warnings
from pathlib import Path

import numpy as np
from common import FLOWERS, ROOT, link_into, record, train
from open_set import far_ood_folder
from queue_unknown import draw

import petal
from petal.analysis.queue import BATCH, queue_order, queue_with_unknown_last
from petal.data.scan import NONE_FOLDER
from petal.errors import PetalWarning
from petal.serve.label_app import model_outputs

ROUNDS = 3
TEST = 300
STRATEGIES = ("unknown last", "before", "random")


def accuracy(run: Path, test: list[Path]) -> float:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PetalWarning)
        said = petal.load(run).predict(test)
    return float(np.mean([p.label == photo.parent.name
                          for p, photo in zip(said, test)]))


def picked(strategy: str, run: Path, pool: list[Path], seed: int, round_: int) -> list[int]:
    if strategy == "random":
        return list(np.random.default_rng(1000 * seed + round_).permutation(len(pool))[:BATCH])
    classifier = petal.load(run)
    probabilities, features, novelty = model_outputs(classifier, pool, False)
    reference, threshold = classifier.novelty.reference, classifier.novelty.threshold
    if strategy == "before":
        return list(queue_order(probabilities, features, reference)[:BATCH])
    return list(queue_with_unknown_last(probabilities, features, reference, novelty,
                                        threshold)[:BATCH])


def one_seed(data: Path, seed: int, strangers: list[Path], out: Path) -> dict:
    labelled, flowers = draw(data, seed, out / f"seed{seed}")
    rng = np.random.default_rng(seed + 99)
    others = sorted({p for c in sorted(data.iterdir()) if c.is_dir()
                     for p in c.iterdir()} - set(flowers)
                    - {p.resolve() for p in labelled.rglob("*") if p.is_symlink()})
    test = [others[i] for i in rng.choice(len(others), TEST, replace=False)]
    start = out / f"seed{seed}" / "start"
    if not (start / "model" / "model.json").is_file():
        train(labelled, start, cache_dir=out / "cache")
    curves = {}
    for strategy in STRATEGIES:
        folder = out / f"seed{seed}" / strategy.replace(" ", "-") / "data"
        shutil.rmtree(folder.parent, ignore_errors=True)
        shutil.copytree(labelled, folder, symlinks=True)
        pool, run, spent = flowers + strangers, start, 0
        points = [(0, accuracy(start, test))]
        for round_ in range(ROUNDS):
            chosen = set(picked(strategy, run, pool, seed, round_))
            for i in chosen:
                photo = pool[i]
                kind = NONE_FOLDER if photo in strangers else photo.parent.name
                link_into(photo, folder / kind)
            spent += len(chosen)
            pool = [p for i, p in enumerate(pool) if i not in chosen]
            run = folder.parent / f"run{round_}"
            train(folder, run, cache_dir=out / "cache")
            points.append((spent, accuracy(run, test)))
        curves[strategy] = {"points": points,
                            "non_flowers_picked": sum(1 for p in (folder / NONE_FOLDER).iterdir())
                            if (folder / NONE_FOLDER).is_dir() else 0}
        print(f"seed {seed} {strategy:12}: " + ", ".join(f"{n} labels {100 * a:.1f} %"
                                                        for n, a in points)
              + f"; non-flowers picked {curves[strategy]['non_flowers_picked']}", flush=True)
    return {"seed": seed, "curves": curves}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "queue-unknown-curve")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    strangers = sorted((far_ood_folder(args.out / "far") / "not_flowers").iterdir())
    found = [one_seed(args.data, seed, strangers, args.out) for seed in range(args.seeds)]
    mean = {s: [round(100 * statistics.mean(r["curves"][s]["points"][k][1] for r in found), 2)
                for k in range(ROUNDS + 1)] for s in STRATEGIES}
    for strategy, row in mean.items():
        print(f"mean {strategy:12}: {row}")
    if args.json:
        record(args.json, {"rounds": ROUNDS, "batch": BATCH, "test": TEST, "mean": mean,
                           "seeds": found},
               about="labelling with non-flowers in the pool: accuracy against labels spent, "
                     "by queue")


if __name__ == "__main__":
    sys.exit(main())
