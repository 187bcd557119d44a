"""Simulated labelling: does `petal label`'s queue need fewer labels than labelling at random?

    .venv/bin/python benchmarks/active_labelling.py --json benchmarks/results/active_labelling.json

The flowers set's default split (seed 0): its 431 validation photos score every model; its
training photos are the "unlabelled" pool, their true labels the oracle. Each seed starts
from 10 labelled photos a class (drawn with that seed), then adds BATCH photos at a time,
chosen by petal's queue (petal.analysis.queue.queue_with_unknown_last on the last model's
calibrated probabilities, features and novelty, as `petal label` computes them) or at
random, and trains fast-transfer again (`petal train --split`, a split file of the labelled
photos and the fixed validation photos) after each batch. The features come from the trunk
cache, so a round costs one fast-transfer training. Prints and saves the accuracy curves,
the labels each strategy needs to reach 90 % and 94 % (mean curve), and writes the plot
docs/images/active_labelling.png.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from common import FLOWERS, PETAL, ROOT, record, train  # noqa: E402
from trunk_grid import top_outputs  # noqa: E402

from petal.analysis.queue import BATCH, queue_with_unknown_last  # noqa: E402
from petal.data.split import Split  # noqa: E402
from petal.inference.classifier import load  # noqa: E402
from petal.inference.model_folder import read_card  # noqa: E402
from petal.run_folder import find_model_folder  # noqa: E402
from petal.stats import softmax  # noqa: E402

START_PER_CLASS = 10
COMPARE_AT = 300  # added labels at which the target compares the two
STRATEGIES = ("queue", "random")


def round_accuracy(run: Path) -> float:
    return float(read_card(find_model_folder(run)).accuracy["value"])


def trained_round(base: Split, labelled: list[int], run: Path) -> float:
    """Fast-transfer on the `labelled` training photos of `base`, scored on its validation
    photos (trained once: a finished run is read)."""
    if not (run / "model" / "model.json").is_file():
        run.mkdir(parents=True, exist_ok=True)
        split = Split(**{**base.__dict__, "train": [base.train[i] for i in labelled]})
        split.save(run.parent / f"{run.name}-split.json")
        train(FLOWERS, run, "fast-transfer", "--split", str(run.parent / f"{run.name}-split.json"))
    return round_accuracy(run)


def queue_picks(base: Split, labelled: list[int], run: Path) -> list[int]:
    """The next BATCH photos of the pool in the queue's order for the model at `run`."""
    chosen = set(labelled)
    pool = [i for i in range(len(base.train)) if i not in chosen]
    files = [(FLOWERS / base.train[i].path, base.train[i].sha256) for i in pool]
    logits, features = top_outputs(run, files)
    _, known = top_outputs(run, [(FLOWERS / base.train[i].path, base.train[i].sha256)
                                 for i in labelled])
    score = load(run).novelty
    order = queue_with_unknown_last(softmax(logits), features, known,
                                    score.score(features), score.threshold)
    return [pool[i] for i in order[:BATCH]]


def simulate(base: Split, strategy: str, seed: int, rounds: int, out: Path) -> list[float]:
    """Accuracy after each round (the first: the starting photos alone)."""
    rng = np.random.default_rng(seed)
    labelled = [int(i) for c in base.classes for i in rng.choice(
        [k for k, item in enumerate(base.train) if item.label == c], START_PER_CLASS,
        replace=False)]
    curve = []
    for step in range(rounds + 1):
        run = out / f"{strategy}-seed{seed}" / f"round{step:02d}"
        curve.append(trained_round(base, labelled, run))
        print(f"{strategy} seed {seed}: {len(labelled)} labels, {100 * curve[-1]:.2f} %",
              flush=True)
        if step == rounds:
            break
        if strategy == "queue":
            labelled += queue_picks(base, labelled, run)
        else:
            chosen = set(labelled)
            pool = [i for i in range(len(base.train)) if i not in chosen]
            labelled += [int(i) for i in rng.choice(pool, BATCH, replace=False)]
    return curve


def labels_for(sizes: list[int], curve: list[float], accuracy: float) -> float | None:
    """Labels the curve needs for `accuracy`, interpolated linearly between rounds."""
    for (n0, a0), (n1, a1) in zip(zip(sizes, curve), zip(sizes[1:], curve[1:])):
        if a0 >= accuracy:
            return float(n0)
        if a1 >= accuracy:
            return n0 + (n1 - n0) * (accuracy - a0) / (a1 - a0)
    return None


def plot(sizes: list[int], curves: dict[str, list[list[float]]], path: Path) -> None:
    figure, axis = plt.subplots(figsize=(7, 4.2), dpi=110)
    for strategy, colour in zip(STRATEGIES, ("tab:green", "tab:grey")):
        runs = 100 * np.array(curves[strategy])
        mean = runs.mean(axis=0)
        axis.plot(sizes, mean, marker="o", color=colour,
                  label=f"{'petal label queue' if strategy == 'queue' else 'random'} "
                        f"(mean of {len(runs)} seeds)")
        axis.fill_between(sizes, runs.min(axis=0), runs.max(axis=0), color=colour, alpha=0.2)
    axis.set_xlabel("labelled photos (50 to start, 10 a class)", fontsize=11)
    axis.set_ylabel("validation accuracy, % (431 photos)", fontsize=11)
    axis.set_title("Flowers, fast-transfer retrained after every 50 labels", fontsize=12)
    axis.grid(alpha=0.3)
    axis.legend(loc="lower right", fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)


def summarise(sizes: list[int], curves: dict[str, list[list[float]]]) -> dict:
    """Mean curves, the labels each needs for 90 % and 94 %, the queue's labels for random's
    accuracy after COMPARE_AT added, and the paired difference (same starting photos) at
    each size: mean, standard deviation over seeds, seeds the queue wins."""
    means = {s: [statistics.mean(c) for c in zip(*runs)] for s, runs in curves.items()}
    start = sizes[0]
    random_at = means["random"][sizes.index(start + COMPARE_AT)]
    reached = labels_for(sizes, means["queue"], random_at)
    differences = [[100 * (q - r) for q, r in zip(qs, rs)]
                   for qs, rs in zip(zip(*curves["queue"]), zip(*curves["random"]))]
    return {"labels": sizes, "curves": curves, "mean": means,
            "reach": {s: {str(t): labels_for(sizes, means[s], t / 100) for t in (90, 94)}
                      for s in STRATEGIES},
            "random_after_compare_at": random_at, "compare_at_added": COMPARE_AT,
            "queue_added_labels_for_it": None if reached is None else reached - start,
            "paired_points": [{"labels": n, "mean": round(statistics.mean(d), 2),
                               "sd": round(statistics.stdev(d), 2),
                               "queue_wins": sum(x > 0 for x in d)}
                              for n, d in zip(sizes[1:], differences[1:])]}


def report(summary: dict) -> None:
    for s in STRATEGIES:
        print(f"{s}: " + ", ".join(f"{n} {100 * a:.2f} %" for n, a in
                                   zip(summary["labels"], summary["mean"][s])))
    print("queue minus random, points (paired by seed): " + ", ".join(
        f"{p['labels']} {p['mean']:+.2f} (sd {p['sd']:.2f}, wins {p['queue_wins']})"
        for p in summary["paired_points"]))
    added = summary["queue_added_labels_for_it"]
    print(f"random after {COMPARE_AT} added labels: "
          f"{100 * summary['random_after_compare_at']:.2f} %; the queue reaches it after "
          f"{'never' if added is None else f'{added:.0f}'} added labels")
    print(f"labels to reach 90 % / 94 % (mean curve; None: not within the rounds): "
          f"{summary['reach']}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=10, help="batches of 50 added")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "active_labelling")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="print and plot the figures of an earlier --json, training nothing")
    args = parser.parse_args()

    if args.report:
        summary = json.loads(args.report.read_text())
        result = summarise(summary["labels"], summary["curves"])
    else:
        split_path = args.out / "split-seed0.json"
        if not split_path.is_file():  # the default split, as `petal train` makes it
            args.out.mkdir(parents=True, exist_ok=True)
            subprocess.run([PETAL, "data", "split", str(FLOWERS), "--out", str(split_path)],
                           check=True, stdout=subprocess.DEVNULL)
        base = Split.load(split_path)
        sizes = [len(base.classes) * START_PER_CLASS + BATCH * r for r in range(args.rounds + 1)]
        curves = {s: [simulate(base, s, seed, args.rounds, args.out)
                      for seed in range(args.seeds)] for s in STRATEGIES}
        result = summarise(sizes, curves)
    report(result)
    plot(result["labels"], result["curves"], ROOT / "docs" / "images" / "active_labelling.png")
    if args.json:
        record(args.json, result, f"simulated labelling on the flowers set: accuracy after "
               f"each round of {BATCH} labels, the queue against random picks, {args.seeds} "
               "seeds; labels to 90 % and 94 %; paired differences")
    return 0


if __name__ == "__main__":
    sys.exit(main())
