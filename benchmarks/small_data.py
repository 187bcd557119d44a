"""Small data: do the card's accuracy, the unknown threshold and the confidence hold on new
photos when a class has only 10, 20 or 50 photos?

    .venv/bin/python benchmarks/small_data.py --json benchmarks/results/small_data.json

For each size and seed, the flowers set is subsampled to SIZE photos a class (linked, the
data set is never written) and trained with fast-transfer twice: with one held-out split
(`--folds 0`: the card's accuracy, threshold and temperature from the split's few validation
photos) and with petal's defaults (cross-validated over every photo, then a final model on
all of them). Each model is then scored, through its ONNX export on ONNX Runtime (what
inference delivers), on 1000 photos drawn from those not sampled: a large test set of the
same kind. Printed and written per run, and as means over the seeds: the card's accuracy
against the test accuracy (their difference is the card's error), the share of test photos
called unknown against the promised 5 %, ECE on the test photos with and without the model's
temperature, and the wall time of `petal train`.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
from pathlib import Path

import numpy as np
from common import FLOWERS, record, train

import petal
from petal.inference.export import export
from petal.training.calibration import expected_calibration_error

TEST_PHOTOS = 1000
MODES = {"one split": ["--folds", "0"], "default": []}


def subsample(size: int, seed: int, dest: Path) -> tuple[Path, list[tuple[Path, str]]]:
    """SIZE photos a class linked under `dest`, and the (photo, class) pairs left out."""
    rng = random.Random(seed)
    left: list[tuple[Path, str]] = []
    for folder in sorted(p for p in FLOWERS.iterdir() if p.is_dir()):
        photos = sorted(folder.iterdir())
        rng.shuffle(photos)
        (dest / folder.name).mkdir(parents=True)
        for photo in photos[:size]:
            (dest / folder.name / photo.name).symlink_to(photo)
        left += [(photo, folder.name) for photo in photos[size:]]
    return dest, left


def scored(run: Path, test: list[tuple[Path, str]]) -> dict:
    """The card's figure and what the model does on the test photos (through ONNX)."""
    card = petal.load(run).card
    classifier = petal.load(export(run, out=run / "model.onnx").path)
    answers = [classifier.answer(np.stack([classifier.prepare(p) for p, _ in test[i:i + 64]]))
               for i in range(0, len(test), 64)]
    probabilities = np.concatenate([a.probabilities for a in answers])
    novelty = np.concatenate([a.novelty for a in answers])
    labels = np.array([classifier.classes.index(label) for _, label in test])
    log_p = np.log(np.clip(probabilities, 1e-12, None))
    return {"card_accuracy": card.accuracy["value"], "card_how": card.accuracy["how"],
            "card_n": card.accuracy["n"],
            "test_accuracy": float((probabilities.argmax(axis=1) == labels).mean()),
            "unknown_share": float((novelty > classifier.novelty.threshold).mean()),
            "ece": expected_calibration_error(log_p, labels),
            "ece_uncalibrated": expected_calibration_error(log_p * card.temperature, labels),
            "temperature": card.temperature}


def summary(rows: list[dict]) -> dict:
    errors = [r["card_accuracy"] - r["test_accuracy"] for r in rows]
    return {"runs": len(rows), "card_error_mean": statistics.fmean(errors),
            "card_error_abs_mean": statistics.fmean(abs(e) for e in errors),
            "card_error_sd": statistics.stdev(errors) if len(errors) > 1 else 0.0,
            "test_accuracy": statistics.fmean(r["test_accuracy"] for r in rows),
            "unknown_share": statistics.fmean(r["unknown_share"] for r in rows),
            "unknown_share_range": [min(r["unknown_share"] for r in rows),
                                    max(r["unknown_share"] for r in rows)],
            "ece": statistics.fmean(r["ece"] for r in rows),
            "ece_uncalibrated": statistics.fmean(r["ece_uncalibrated"] for r in rows),
            "seconds": statistics.fmean(r["seconds"] for r in rows)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 50])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for size in args.sizes:
            for seed in args.seeds:
                data, left = subsample(size, seed, Path(work) / f"data-{size}-{seed}")
                test = random.Random(seed).sample(left, TEST_PHOTOS)
                for mode, options in MODES.items():
                    run = Path(work) / f"run-{size}-{seed}-{mode.replace(' ', '-')}"
                    seconds = train(data, run, "fast-transfer", *options)
                    row = {"size": size, "seed": seed, "mode": mode, "seconds": seconds,
                           **scored(run, test)}
                    rows.append(row)
                    print(f"{size:>3} a class, seed {seed}, {mode:9}: card {row['card_how']} "
                          f"{100 * row['card_accuracy']:.1f} % (n {row['card_n']}), test "
                          f"{100 * row['test_accuracy']:.1f} %; unknown "
                          f"{100 * row['unknown_share']:.1f} %; ECE {row['ece']:.3f} "
                          f"({row['ece_uncalibrated']:.3f} uncalibrated); {seconds:.0f} s",
                          flush=True)
    means = {f"{size} {mode}": summary([r for r in rows if r["size"] == size
                                        and r["mode"] == mode])
             for size in args.sizes for mode in MODES}
    for key, m in means.items():
        print(f"{key:>14}: card - test {100 * m['card_error_mean']:+.1f} points (mean |.| "
              f"{100 * m['card_error_abs_mean']:.1f}, sd {100 * m['card_error_sd']:.1f}); test "
              f"{100 * m['test_accuracy']:.1f} %; unknown {100 * m['unknown_share']:.1f} % "
              f"({100 * m['unknown_share_range'][0]:.1f}-{100 * m['unknown_share_range'][1]:.1f});"
              f" ECE {m['ece']:.3f} ({m['ece_uncalibrated']:.3f} uncalibrated); "
              f"{m['seconds']:.0f} s")
    if args.json:
        record(args.json, {"rows": rows, "means": means}, "fast-transfer on a few flowers a "
               "class, subsampled: the card's accuracy, the test accuracy on unsampled photos, "
               "the share called unknown, ECE with and without the temperature, seconds")
    return 0


if __name__ == "__main__":
    sys.exit(main())
