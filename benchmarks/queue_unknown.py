"""The labelling queue with photos of none of the classes mixed in: how many of its first
batch it spends on them, before and after it ranks the photos it calls unknown apart.

    .venv/bin/python benchmarks/queue_unknown.py --json benchmarks/results/queue_unknown.json

For each seed: fast-transfer trained with petal's defaults on 10 flowers a class drawn with
that seed (cross-validated, then a final model on all 50); the pool to label is 400 other
flowers drawn with that seed and open_set.py's 37 photos that are not flowers (8.5 % of the
pool). Both orders are computed from the same answers (`petal label`'s): margin sampling
over a k-center cover of the whole pool (the queue until 2026-12-07), and the same queue of
the photos the model does not call unknown followed by those it does
(`queue_with_unknown_last`, the queue since). Counted: non-flowers in the first batch of 50,
flowers called unknown (sent to the back), non-flowers called unknown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from common import FLOWERS, ROOT, record, train
from open_set import far_ood_folder

import petal
from petal.analysis.queue import BATCH, queue_order, queue_with_unknown_last
from petal.serve.label_app import model_outputs

POOL_FLOWERS = 400
START_PER_CLASS = 10


def draw(data: Path, seed: int, out: Path) -> tuple[Path, list[Path]]:
    """A labelled folder of START_PER_CLASS photos a class (links) and POOL_FLOWERS other
    flowers, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    photos = {c.name: sorted(p for p in c.iterdir() if p.is_file())
              for c in sorted(data.iterdir()) if c.is_dir() and not c.name.startswith(".")}
    labelled, rest = out / "labelled", []
    for name, files in photos.items():
        chosen = set(rng.choice(len(files), START_PER_CLASS, replace=False))
        (labelled / name).mkdir(parents=True, exist_ok=True)
        for i, path in enumerate(files):
            if i in chosen:
                link = labelled / name / path.name
                if not link.is_symlink():
                    link.symlink_to(path.resolve())
            else:
                rest.append(path)
    pool = [rest[i] for i in rng.choice(len(rest), POOL_FLOWERS, replace=False)]
    return labelled, pool


def one_seed(data: Path, seed: int, strangers: list[Path], out: Path) -> dict:
    labelled, flowers = draw(data, seed, out / f"seed{seed}")
    run = out / f"seed{seed}" / "run"
    if not (run / "model" / "model.json").is_file():
        train(labelled, run)
    classifier = petal.load(run)
    probabilities, features, novelty = model_outputs(classifier, flowers + strangers, False)
    stranger = np.r_[np.zeros(len(flowers), bool), np.ones(len(strangers), bool)]
    reference = classifier.novelty.reference
    threshold = classifier.novelty.threshold
    before = queue_order(probabilities, features, reference)[:BATCH]
    after = queue_with_unknown_last(probabilities, features, reference, novelty,
                                    threshold)[:BATCH]
    unknown = novelty > threshold
    return {"seed": seed, "pool": len(stranger), "non_flowers": int(stranger.sum()),
            "first_batch_non_flowers_before": int(stranger[before].sum()),
            "first_batch_non_flowers_after": int(stranger[after].sum()),
            "flowers_called_unknown": int(unknown[~stranger].sum()),
            "non_flowers_called_unknown": int(unknown[stranger].sum())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "queue-unknown")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    strangers = sorted((far_ood_folder(args.out / "far") / "not_flowers").iterdir())
    found = [one_seed(args.data, seed, strangers, args.out) for seed in range(args.seeds)]
    print(f"{'seed':>4} {'non-flowers in the first 50: before':>36} {'after':>6} "
          f"{'flowers called unknown':>23} {'non-flowers called unknown':>27}")
    for row in found:
        print(f"{row['seed']:>4} {row['first_batch_non_flowers_before']:>36} "
              f"{row['first_batch_non_flowers_after']:>6} "
              f"{row['flowers_called_unknown']:>16} of {POOL_FLOWERS} "
              f"{row['non_flowers_called_unknown']:>20} of {row['non_flowers']}")
    if args.json:
        record(args.json, {"pool_flowers": POOL_FLOWERS, "start_per_class": START_PER_CLASS,
                           "batch": BATCH, "seeds": found},
               about="the labelling queue's first batch with non-flowers mixed in, before and "
                     "after it ranks the photos called unknown apart")


if __name__ == "__main__":
    sys.exit(main())
