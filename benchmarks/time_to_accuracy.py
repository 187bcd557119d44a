"""Wall-clock from the raw JPEG folder to a target validation accuracy, per training path.

Each path runs `petal train` as a subprocess on the default split of the flowers set
(seed 0), twice: with a cold cache (a new, empty --cache-dir: every JPEG decoded, every
trunk feature computed) and with that cache warm. Times come from the run's history.csv,
whose elapsed_seconds count from the start of the command, data preparation included;
`wall` is the whole process, Python start-up and saving included.

    .venv/bin/python benchmarks/time_to_accuracy.py --json benchmarks/results/time_to_accuracy.json
    .venv/bin/python benchmarks/time_to_accuracy.py --full   # adds the original recipes

Paths and targets (the original write-up's numbers):
    fast-transfer   EfficientNet-Lite0, cached trunk features     target 94.7 %
    fast-resnet9    ResNet9 from scratch, narrow and fast          target 82 %
  --full adds
    original-transfer   the original's transfer recipe, whole network  target 94.7 %
    original-resnet9    the original's 20 epochs; by default only the first is run and
                        the schedule's time is extrapolated (marked as such);
                        --original-resnet9-epochs 20 runs them all
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from common import FLOWERS, record, train

from petal.run_folder import read_history


@dataclass(frozen=True)
class TrainingPath:
    recipe: str
    target: float
    overrides: tuple[str, ...] = ()
    extrapolate_to: int | None = None  # epochs of the full schedule, when only some run
    warm: bool = True  # also run with a warm cache (pointless where decoding is seconds of hours)


PATHS = [TrainingPath("fast-transfer", 0.947), TrainingPath("fast-resnet9", 0.82)]


def full_paths(original_resnet9_epochs: int) -> list[TrainingPath]:
    """The original recipes; original-resnet9 cut to its first epochs (2-7 min each on 2 CPU
    cores)."""
    cut = original_resnet9_epochs < 20
    return [TrainingPath("original-transfer", 0.947, warm=False),
            TrainingPath("original-resnet9", 0.82,
                         (f"epochs={original_resnet9_epochs}",) if cut else (),
                         extrapolate_to=20 if cut else None, warm=False)]


@dataclass
class Result:
    recipe: str
    cache: str
    target: float
    seconds_to_target: float | None
    epoch_reached: int | None
    final_val_acc: float
    epochs: int
    seconds_to_final: float
    wall_seconds: float
    extrapolated_seconds: float | None = None  # the full schedule, from the epochs run


def measure(path: TrainingPath, cache_state: str, history: list[dict[str, float]], wall: float
            ) -> Result:
    reached = next((row for row in history if row["val_acc"] >= path.target), None)
    last = history[-1]
    extrapolated = None
    if path.extrapolate_to:
        preparation = history[0]["elapsed_seconds"] - history[0]["epoch_seconds"]
        per_epoch = sum(r["epoch_seconds"] for r in history) / len(history)
        extrapolated = preparation + per_epoch * path.extrapolate_to
    return Result(path.recipe, cache_state, path.target,
                  reached["elapsed_seconds"] if reached else None,
                  int(reached["epoch"]) if reached else None, last["val_acc"],
                  int(last["epoch"]), last["elapsed_seconds"], wall, extrapolated)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def print_table(results: list[Result]) -> None:
    print(f"\n{'recipe':<17} {'cache':<5} {'target':>6} {'to target':>9} {'epoch':>5} "
          f"{'final acc':>9} {'epochs':>6} {'to final':>8} {'wall':>6} {'extrapolated':>12}")
    for r in results:
        print(f"{r.recipe:<17} {r.cache:<5} {r.target:>6.3f} {_seconds(r.seconds_to_target):>9} "
              f"{r.epoch_reached or '-':>5} {r.final_val_acc:>9.4f} {r.epochs:>6} "
              f"{_seconds(r.seconds_to_final):>8} {_seconds(r.wall_seconds):>6} "
              f"{_seconds(r.extrapolated_seconds):>12}")
    print("seconds from the start of `petal train`, data preparation included; "
          "extrapolated = the full schedule's time estimated from the epochs run")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--split", type=Path, help="split file (default: petal's seed-0 split)")
    parser.add_argument("--full", action="store_true", help="add the slow original recipes")
    parser.add_argument("--only", nargs="*", help="recipes to run (default: all selected)")
    parser.add_argument("--original-resnet9-epochs", type=int,
                        default=1, choices=range(1, 21), metavar="1-20",
                        help="epochs of original-resnet9's 20 to run (--full)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", type=Path, help="keep run folders and caches here")
    args = parser.parse_args()

    full = full_paths(args.original_resnet9_epochs) if args.full else []
    paths = [p for p in PATHS + full if not args.only or p.recipe in args.only]
    results = []
    with tempfile.TemporaryDirectory(prefix="petal-tta-") as scratch:
        work = args.keep or Path(scratch)
        for path in paths:
            cache = work / f"cache-{path.recipe}"  # empty at first: a cold start
            for cache_state in ("cold", "warm") if path.warm else ("cold",):
                out = work / f"{path.recipe}-{cache_state}"
                print(f"{path.recipe}, {cache_state} cache ...", flush=True)
                options = [*(["--split", str(args.split)] if args.split else []),
                           *(arg for override in path.overrides for arg in ("--set", override))]
                wall = train(args.data, out, path.recipe, *options, cache_dir=cache)
                results.append(measure(path, cache_state, read_history(out / "history.csv"), wall))
                print_table(results[-1:])
    print_table(results)
    if args.json:
        record(args.json, {"data": str(args.data), "results": [asdict(r) for r in results]},
               f"{', '.join(p.recipe for p in paths)}, cold (and warm) cache: time to the "
               "write-up's accuracy, final accuracy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
