"""How much a recipe's accuracy moves with the training seed and the split.

A tuning helper (benchmarks/tuning/README.md). Trains RECIPE (with any `--set FIELD=VALUE`
overrides) once per training seed (`--set seed=N`: initial head, batch order, augmentation)
on each split (`--split-seeds`; 0, the default, is the split every figure in docs/RESULTS.md
uses) and prints each run's final and best validation accuracy with their means, so a
difference between two recipes can be read against the run-to-run spread of one, and a
setting can be judged on several splits at once (docs/TUNING.md):

    .venv/bin/python benchmarks/tuning/seed_spread.py --recipe fast-transfer --seeds 0 1 2 \\
        --out runs/spread --json benchmarks/tuning/results/seed_spread_fast_transfer.json
    .venv/bin/python benchmarks/tuning/seed_spread.py --recipe original-transfer --seeds 0 \\
        --split-seeds 1 2 --set lr=5e-4 --jobs 2 --out runs/tune-lr5e-4

Run folders go to OUT/RECIPE-seedN (default split) or OUT/RECIPE-splitS-seedN. A finished
one is read, not trained again, and an unfinished one is continued with `petal train
--resume`, so a long measurement (9-30 minutes per original-transfer run on 2 CPU cores,
by host: docs/RESULTS.md) can be stopped and picked up again. `--jobs N` trains N runs side by
side, each pinned to its own share of the CPU cores: on the 2-core machine of
docs/RESULTS.md one original-transfer run on one core took about as long as on two, so two
jobs halve the wall time (the runs' seconds are then one core's).
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # benchmarks/common.py

from common import FLOWERS, PETAL, record, split_file  # noqa: E402

from petal.run_folder import read_history  # noqa: E402


def run_path(out: Path, recipe: str, split_seed: int, seed: int) -> Path:
    return out / (f"{recipe}-seed{seed}" if split_seed == 0
                  else f"{recipe}-split{split_seed}-seed{seed}")


def train(command: list[str], run: Path, cores: set[int] | None) -> None:
    """Train (or finish) the run folder `run` unless it already holds a model."""
    if (run / "model" / "model.json").is_file():
        print(f"{run}: finished already, read as it is", flush=True)
        return
    if run.exists():
        command = [str(PETAL), "train", "--resume", str(run), "--no-progress"]
    sys.stdout.write(" ".join(command) + "\n")  # one write: jobs print side by side
    sys.stdout.flush()
    pin = (lambda: os.sched_setaffinity(0, cores)) if cores else None
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, preexec_fn=pin)


def summarise(split_seed: int, seed: int, run: Path) -> dict:
    rows = read_history(run / "history.csv")
    return {"split_seed": split_seed, "seed": seed, "final_val_acc": rows[-1]["val_acc"],
            "best_val_acc": max(r["val_acc"] for r in rows), "epochs": int(rows[-1]["epoch"]),
            "seconds": rows[-1]["elapsed_seconds"], "run": str(run)}


def core_shares(jobs: int) -> list[set[int] | None]:
    """One set of cores per job (None: no pinning, for a single job)."""
    if jobs == 1:
        return [None]
    cores = sorted(os.sched_getaffinity(0))
    if jobs > len(cores):
        sys.exit(f"--jobs {jobs}: only {len(cores)} cores")
    return [set(cores[i::jobs]) for i in range(jobs)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        metavar="FIELD=VALUE", help="recipe override, as in `petal train`")
    parser.add_argument("--precision", help="`petal train --precision` (default: its auto)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds")
    parser.add_argument("--split-seeds", type=int, nargs="+", default=[0],
                        help="splits (`petal data split --seed S`); 0 is the default split")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained side by side")
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--out", type=Path, required=True, help="run folders go here")
    parser.add_argument("--cache-dir", type=Path, help="petal's cache (default: its own)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    runs = []
    for split_seed in args.split_seeds:
        split = split_file(args.data, args.out, split_seed)
        for seed in args.seeds:
            run = run_path(args.out, args.recipe, split_seed, seed)
            command = [str(PETAL), "train", "--data", str(args.data), "--recipe", args.recipe,
                       "--set", f"seed={seed}", "--out", str(run), "--no-progress"]
            command += [part for item in args.overrides for part in ("--set", item)]
            command += ["--split", str(split)] if split else []
            command += ["--precision", args.precision] if args.precision else []
            command += ["--cache-dir", str(args.cache_dir)] if args.cache_dir else []
            runs.append((split_seed, seed, run, command))

    free_cores: queue.Queue = queue.Queue()
    for share in core_shares(args.jobs):
        free_cores.put(share)

    def train_pinned(command: list[str], run: Path) -> None:
        cores = free_cores.get()
        try:
            train(command, run, cores)
        finally:
            free_cores.put(cores)

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        for future in [pool.submit(train_pinned, command, run) for *_, run, command in runs]:
            future.result()
    results = [summarise(split_seed, seed, run) for split_seed, seed, run, _ in runs]

    finals = [r["final_val_acc"] for r in results]
    per_split = {s: statistics.fmean(r["final_val_acc"] for r in results if r["split_seed"] == s)
                 for s in args.split_seeds}
    summary = {"mean_final_val_acc": statistics.fmean(finals),
               "min_final_val_acc": min(finals), "max_final_val_acc": max(finals),
               "mean_final_val_acc_per_split": per_split}
    settings = " ".join(args.overrides) or "as defined"
    print(f"\n{args.recipe} ({settings}), one run per split and training seed")
    print(f"{'split':>5} {'seed':>4} {'final acc':>9} {'best acc':>9} {'epochs':>6} {'seconds':>8}")
    for r in results:
        print(f"{r['split_seed']:>5} {r['seed']:>4} {r['final_val_acc']:>9.4f} "
              f"{r['best_val_acc']:>9.4f} {r['epochs']:>6} {r['seconds']:>8.0f}")
    for split_seed, mean in per_split.items():
        print(f"split {split_seed}: mean final {mean:.4f}")
    print(f"mean final {summary['mean_final_val_acc']:.4f}, range "
          f"{summary['min_final_val_acc']:.4f}-{summary['max_final_val_acc']:.4f}")
    if args.json:
        record(args.json, {
            "recipe": args.recipe, "overrides": args.overrides,
            "precision": args.precision or "auto", "jobs": args.jobs, "data": str(args.data),
            "results": results, **summary},
            f"{args.recipe} {' '.join(args.overrides)} by training seed and split seed: "
            "each run's final accuracy and the means")
    return 0


if __name__ == "__main__":
    sys.exit(main())
