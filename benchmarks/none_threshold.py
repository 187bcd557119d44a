"""Photos filed as "none of these" at the next training: the unknown threshold they check and
set, against the default (keep 95 % of the held-out photos of the classes).

    .venv/bin/python benchmarks/none_threshold.py --json benchmarks/results/none_threshold.json

For each seed and each kind of "none" photo (KINDS: its name, and how many in _none/):
fast-transfer trained with petal's defaults on TRAIN_PER_CLASS flowers a class drawn with
that seed, with photos of none of its classes in DATA/_none/:
- far: open_set.py's 37 photos that are not flowers (20 of them in _none/, the rest held
  out);
- near, near-60: a flower class left out of the classes (one per seed, in turn), 20 or 60 of
  its photos in _none/, NONE_TEST others held out.
One training a seed and kind: the none photos do not change the network, only its threshold.
Both thresholds are judged on photos neither training nor the threshold saw: TEST_KNOWN other
flowers of the classes (known kept) and the held-out none photos (none rejected).
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

import numpy as np
from common import FLOWERS, ROOT, link_into, record, train
from open_set import far_ood_folder

import petal
from petal.data.scan import NONE_FOLDER
from petal.errors import PetalWarning
from petal.inference.novelty import DEFAULT_KEEP
from petal.stats import wilson_interval

TRAIN_PER_CLASS = 20
KINDS = {"far": 20, "near": 20, "near-60": 60}
NONE_TEST = 100
TEST_KNOWN = 300


def draw(data: Path, seed: int, kind: str, strangers: list[Path], out: Path
         ) -> tuple[Path, list[Path], list[Path]]:
    """The training folder (links), the known test photos and the held-out none photos."""
    rng = np.random.default_rng(seed)
    classes = sorted(c for c in data.iterdir() if c.is_dir() and not c.name.startswith("."))
    left_out = classes[seed % len(classes)] if kind.startswith("near") else None
    folder, rest = out / "data", []
    for cls in classes:
        if cls == left_out:
            continue
        files = sorted(p for p in cls.iterdir() if p.is_file())
        chosen = set(rng.choice(len(files), TRAIN_PER_CLASS, replace=False))
        for i, photo in enumerate(files):
            if i in chosen:
                link_into(photo, folder / cls.name)
            else:
                rest.append(photo)
    known_test = [rest[i] for i in rng.choice(len(rest), TEST_KNOWN, replace=False)]
    none = (sorted(p for p in left_out.iterdir() if p.is_file()) if left_out else strangers)
    order = rng.permutation(len(none))
    for i in order[:KINDS[kind]]:
        link_into(none[i], folder / NONE_FOLDER)
    none_test = [none[i] for i in order[KINDS[kind]:KINDS[kind] + NONE_TEST]]
    return folder, known_test, none_test


def shares(classifier: petal.Classifier, known: list[Path], none: list[Path]) -> dict:
    with warnings.catch_warnings():  # the shift check's, on the none photos: expected
        warnings.simplefilter("ignore", PetalWarning)
        said_known, said_none = classifier.predict(known), classifier.predict(none)
    kept = sum(not p.unknown for p in said_known)
    rejected = sum(p.unknown for p in said_none)
    return {"keep": round(classifier.novelty.keep, 4), "known_kept": kept, "n_known": len(known),
            "known_kept_interval": [round(v, 4) for v in wilson_interval(kept, len(known))],
            "none_rejected": rejected, "n_none": len(none),
            "none_rejected_interval": [round(v, 4) for v in wilson_interval(rejected, len(none))]}


def one(data: Path, seed: int, kind: str, strangers: list[Path], out: Path) -> dict:
    where = out / f"{kind}-seed{seed}"
    folder, known, none = draw(data, seed, kind, strangers, where)
    run = where / "run"
    if not (run / "model" / "model.json").is_file():
        train(folder, run, cache_dir=out / "cache")
    card = json.loads((run / "model" / "model.json").read_text())
    classifier = petal.load(run)
    found = {"seed": seed, "kind": kind, "at_training": card["novelty"]["none_photos"],
             "with_none_photos": shares(classifier, known, none)}
    found["default"] = shares(classifier.keeping(DEFAULT_KEEP), known, none)
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "none-threshold")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    strangers = sorted((far_ood_folder(args.out / "far") / "not_flowers").iterdir())
    found = [one(args.data, seed, kind, strangers, args.out)
             for kind in KINDS for seed in range(args.seeds)]
    print(f"{'kind':>7} {'seed':>4} {'adopted':>8} {'keep':>6} "
          f"{'known kept: default':>20} {'with none':>10} {'none rejected: default':>23} "
          f"{'with none':>10}")
    for row in found:
        default, mine = row["default"], row["with_none_photos"]
        print(f"{row['kind']:>7} {row['seed']:>4} {str(row['at_training']['adopted']):>8} "
              f"{mine['keep']:>6.3f} {default['known_kept']:>14} / {default['n_known']} "
              f"{mine['known_kept']:>10} {default['none_rejected']:>17} / {default['n_none']:<3} "
              f"{mine['none_rejected']:>10}")
    summary = {}
    for kind in KINDS:
        rows = [r for r in found if r["kind"] == kind]
        summary[kind] = {arm: {what: round(float(np.mean([r[arm][what] / r[arm][f"n_{size}"]
                                                           for r in rows])), 4)
                               for what, size in (("known_kept", "known"),
                                                  ("none_rejected", "none"))}
                         for arm in ("default", "with_none_photos")}
        summary[kind]["adopted"] = sum(r["at_training"]["adopted"] for r in rows)
        print(f"{kind}: mean over {len(rows)} seeds {summary[kind]}")
    if args.json:
        record(args.json, {"train_per_class": TRAIN_PER_CLASS, "none_train": KINDS,
                           "test_known": TEST_KNOWN, "summary": summary, "runs": found},
               about="the unknown threshold checked and set with photos filed as none of "
                     "these, against keeping 95 % of the held-out known photos")


if __name__ == "__main__":
    sys.exit(main())
