"""How much a recipe's accuracy moves with the training seed alone, on one split.

Trains RECIPE once per training seed (`--set seed=N`: initial head, batch order,
augmentation; the split stays the default seed-0 split) and prints each run's final and
best validation accuracy with their mean and range, so a difference between two recipes
can be read against the run-to-run spread of one.

    .venv/bin/python benchmarks/seed_spread.py --recipe fast-transfer --seeds 0 1 2 \\
        --out runs/spread --json docs/seed_spread_fast_transfer.json

Run folders go to OUT/RECIPE-seedN. A finished one is read, not trained again, and an
unfinished one is continued with `petal train --resume`, so a long measurement (20-24
minutes per seed-transfer run on 2 CPU cores, docs/RESULTS.md) can be stopped and picked
up again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from machine import machine

from petal.train.history import read_history

ROOT = Path(__file__).resolve().parents[1]
PETAL = Path(sys.executable).with_name("petal")


def train(recipe: str, seed: int, data: Path, run: Path, cache: Path | None) -> None:
    """Train (or finish) the run folder `run` unless it already holds a model."""
    if (run / "model" / "model.json").is_file():
        print(f"{run}: finished already, read as it is", flush=True)
        return
    if run.exists():
        command = [str(PETAL), "train", "--resume", str(run), "--no-progress"]
    else:
        command = [str(PETAL), "train", "--data", str(data), "--recipe", recipe,
                   "--set", f"seed={seed}", "--out", str(run), "--no-progress"]
        command += ["--cache-dir", str(cache)] if cache else []
    print(" ".join(command), flush=True)
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def summarise(seed: int, run: Path) -> dict:
    rows = read_history(run / "history.csv")
    return {"seed": seed, "final_val_acc": rows[-1]["val_acc"],
            "best_val_acc": max(r["val_acc"] for r in rows), "epochs": int(rows[-1]["epoch"]),
            "seconds": rows[-1]["elapsed_seconds"], "run": str(run)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "flowers")
    parser.add_argument("--out", type=Path, required=True, help="run folders go here")
    parser.add_argument("--cache-dir", type=Path, help="petal's cache (default: its own)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    results = []
    for seed in args.seeds:
        run = args.out / f"{args.recipe}-seed{seed}"
        train(args.recipe, seed, args.data, run, args.cache_dir)
        results.append(summarise(seed, run))
    finals = [r["final_val_acc"] for r in results]
    summary = {"mean_final_val_acc": statistics.fmean(finals),
               "min_final_val_acc": min(finals), "max_final_val_acc": max(finals)}
    print(f"\n{args.recipe} on the default split, one run per training seed")
    print(f"{'seed':>4} {'final acc':>9} {'best acc':>9} {'epochs':>6} {'seconds':>8}")
    for r in results:
        print(f"{r['seed']:>4} {r['final_val_acc']:>9.4f} {r['best_val_acc']:>9.4f} "
              f"{r['epochs']:>6} {r['seconds']:>8.0f}")
    print(f"mean final {summary['mean_final_val_acc']:.4f}, range "
          f"{summary['min_final_val_acc']:.4f}-{summary['max_final_val_acc']:.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({
            "date": time.strftime("%Y-%m-%d"), "machine": machine(), "recipe": args.recipe,
            "data": str(args.data), "results": results, **summary}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
