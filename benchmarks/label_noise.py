"""How well `petal data review` finds labels flipped on purpose.

    .venv/bin/python benchmarks/label_noise.py --json benchmarks/results/label_noise.json

For 3 %, 5 % and 10 % of the flowers set's photos (seeded), a copy of its file list (symlinks,
the data set is never written) files each chosen photo under another class drawn at random;
the review then runs on it. Precision: the share of flagged photos that were flipped;
recall: the share of flipped photos flagged. The set's own label mistakes (which the review
also finds) count against precision here, so the figure is a lower bound.

The ranking (--rank-seeds): at 5 % flipped, for each noise draw (seed), the review's list of
likely mistakes in each of its orders (`--rank self-confidence`, the default, and `margin`):
precision@F (the flipped share of its first F, F the number flipped) and recall@1.5F (the
share of the flipped found in its first 1.5 F).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import FLOWERS, record

from petal.analysis.confident import RANKINGS
from petal.data.scan import scan_folder
from petal.jobs.review import review


def flipped_copy(data: Path, share: float, dest: Path, seed: int = 0) -> set[str]:
    """Links to every photo of `data` under dest/CLASS/, `share` of them under a wrong class;
    returns the flipped photos' paths under dest."""
    index = scan_folder(data, progress=False)
    rng = np.random.default_rng(seed)
    chosen = set(rng.choice(len(index.images), round(share * len(index.images)),
                            replace=False).tolist())
    flipped = set()
    for i, image in enumerate(index.images):
        label = image.label
        if i in chosen:
            label = str(rng.choice([c for c in index.classes if c != image.label]))
        link = dest / label / f"{image.label}-{Path(image.path).name}"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(index.root / image.path)
        if i in chosen:
            flipped.add(link.relative_to(dest).as_posix())
    return flipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--shares", type=float, nargs="+", default=[0.03, 0.05, 0.10])
    parser.add_argument("--rank-seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="noise draws on which the two rankings are compared at 5 %%")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = []
    for share in args.shares:
        with tempfile.TemporaryDirectory(prefix="petal-noise-") as scratch:
            flipped = flipped_copy(args.data, share, Path(scratch))
            start = time.perf_counter()
            found = review(scratch, progress=False)
            seconds = time.perf_counter() - start
        flagged = {issue["path"] for issue in found.label_issues}
        hits = len(flagged & flipped)
        results.append({"share": share, "flipped": len(flipped), "flagged": len(flagged),
                        "precision": round(hits / max(len(flagged), 1), 4),
                        "recall": round(hits / len(flipped), 4), "seconds": round(seconds, 1)})
        r = results[-1]
        print(f"{100 * share:.0f} % flipped ({r['flipped']}): flagged {r['flagged']}, precision "
              f"{r['precision']:.3f}, recall {r['recall']:.3f}, {r['seconds']} s", flush=True)
    rankings = [ranked(args.data, seed) for seed in args.rank_seeds]
    for rank in RANKINGS:
        at_f = [r[rank]["precision_at_f"] for r in rankings]
        at_15f = [r[rank]["recall_at_1_5f"] for r in rankings]
        if at_f:
            print(f"{rank}: precision@F {', '.join(map(str, at_f))} (mean "
                  f"{np.mean(at_f):.3f}), recall@1.5F {', '.join(map(str, at_15f))} (mean "
                  f"{np.mean(at_15f):.3f})", flush=True)
    if args.json:
        record(args.json, {"results": results, "rankings": rankings}, "`petal data review` on "
               "copies of the flowers set with some labels flipped: flagged, precision, "
               "recall, seconds; at 5 %, each ranking's precision@F and recall@1.5F per draw")
    return 0


def ranked(data: Path, seed: int, share: float = 0.05) -> dict:
    """Both orders of the likely mistakes on one noise draw (the features computed once)."""
    found = {"seed": seed}
    with tempfile.TemporaryDirectory(prefix="petal-noise-") as scratch:
        flipped = flipped_copy(data, share, Path(scratch), seed=seed)
        for rank in RANKINGS:
            order = [i["path"] for i in review(scratch, progress=False, rank=rank).label_issues]
            count = len(flipped)
            found[rank] = {
                "precision_at_f": round(len(set(order[:count]) & flipped) / count, 4),
                "recall_at_1_5f": round(len(set(order[:round(1.5 * count)]) & flipped) / count,
                                        4)}
    return found


if __name__ == "__main__":
    sys.exit(main())
