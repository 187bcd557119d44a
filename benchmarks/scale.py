"""How petal's data steps grow with the number of photos: time and peak memory at N images.

    .venv/bin/python benchmarks/scale.py --sizes 10000 30000 100000 --train-up-to 30000 \
        --hashes 1000000 --json benchmarks/results/scale.json --plot docs/images/scale.png

For each N, a folder of N small JPEGs in 10 classes is generated (seeded; 1 % exact copies and
1 % near copies re-encoded at another quality), then each step runs as its own `petal`
command: `data check`, `data split`, `cache build` (the decoded cache), and up to
`--train-up-to N` photos also `train --recipe fast-transfer --set epochs=1` (its trunk
features and one epoch of its head). Peak memory is the largest resident set of the
command's whole process tree, sampled every 50 ms, in all and without the pages of
memory-mapped files (the caches), which count as resident once read but cost no memory the
kernel cannot take back. The growth exponent between two sizes is
log(t2 / t1) / log(N2 / N1): 1 is linear. `--hashes N` also times the near-duplicate search
on N random 64-bit hashes.
"""

from __future__ import annotations

import argparse
import math
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from common import PETAL, record
from PIL import Image

CLASSES = 10


def make_folder(n: int, root: Path, seed: int = 0) -> None:
    """n JPEGs of 96 x 80 px: smooth random patterns, 1 % exact and 1 % near copies."""
    rng = np.random.default_rng(seed)
    for c in range(CLASSES):
        (root / f"class{c:02d}").mkdir(parents=True, exist_ok=True)
    originals = n - 2 * (n // 100)
    for i in range(originals):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((96, 80), Image.Resampling.BICUBIC)
        image.save(root / f"class{i % CLASSES:02d}" / f"{i:07d}.jpg", quality=90)
    for k, i in enumerate(rng.choice(originals, 2 * (n // 100), replace=False)):
        source = root / f"class{i % CLASSES:02d}" / f"{i:07d}.jpg"
        copy = source.with_name(f"{i:07d}_copy{k}.jpg")
        if k % 2:
            copy.write_bytes(source.read_bytes())
        else:
            Image.open(source).save(copy, quality=60)


def _tree_rss(pid: int) -> tuple[int, int]:
    """Resident bytes of process `pid` and all its descendants (Linux /proc): in all, and
    anonymous only (without the pages of memory-mapped files, which the kernel can drop)."""
    total, anonymous, todo = 0, 0, [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            total += int(status.split("VmRSS:")[1].split()[0]) * 1024
            anonymous += int(status.split("RssAnon:")[1].split()[0]) * 1024
            for task in Path(f"/proc/{current}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            continue  # it ended meanwhile
    return total, anonymous


def run_step(argv: list[str]) -> dict:
    """Run a petal command; its seconds and the peak memory of its process tree."""
    start = time.perf_counter()
    process = subprocess.Popen([str(PETAL), *argv, "--no-progress"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    peak, peak_anonymous = 0, 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, peak_anonymous
        while not stop.is_set():
            total, anonymous = _tree_rss(process.pid)
            peak, peak_anonymous = max(peak, total), max(peak_anonymous, anonymous)
            stop.wait(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = process.communicate()
    stop.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"petal {' '.join(argv)} failed:\n{err[-2000:]}")
    return {"seconds": round(time.perf_counter() - start, 2), "peak_mb": round(peak / 2**20),
            "peak_anonymous_mb": round(peak_anonymous / 2**20)}


def time_hashes(n: int) -> dict:
    from petal.data.duplicates import NEAR_DUPLICATE_MAX_DISTANCE, near_pairs

    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) << np.uint64(1)
    start = time.perf_counter()
    pairs = near_pairs(hashes, NEAR_DUPLICATE_MAX_DISTANCE)
    seconds = time.perf_counter() - start
    print(f"near-duplicate search on {n} random hashes: {seconds:.1f} s, {len(pairs)} pairs",
          flush=True)
    return {"n": n, "seconds": round(seconds, 2), "pairs": len(pairs)}


def exponents(rows: list[dict], step: str) -> list[float]:
    points = [(r["n"], r[step]["seconds"]) for r in rows if step in r]
    return [round(math.log(t2 / t1) / math.log(n2 / n1), 2)
            for (n1, t1), (n2, t2) in zip(points, points[1:])]


def plot(rows: list[dict], steps: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for step in steps:
        points = [(r["n"], r[step]["seconds"]) for r in rows if step in r]
        if points:
            ax.plot(*zip(*points), "o-", label=step)
    sizes = [r["n"] for r in rows]
    first = min(r[steps[0]]["seconds"] for r in rows if r["n"] == sizes[0])
    ax.plot(sizes, [first * n / sizes[0] for n in sizes], "k:", label="linear (from data check)")
    ax.set(xscale="log", yscale="log", xlabel="photos", ylabel="seconds",
           title="petal's data steps against the number of photos (2 CPU cores)")
    ax.set_xticks(sizes, [f"{n:,}" for n in sizes])
    ax.xaxis.set_minor_locator(matplotlib.ticker.NullLocator())
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 30_000, 100_000])
    parser.add_argument("--train-up-to", type=int, default=0, metavar="N",
                        help="also time fast-transfer's features and one epoch, for sizes up "
                        "to N (slow: about 70 photos a second on 2 cores)")
    parser.add_argument("--hashes", type=int, help="also time near-duplicate search on N hashes")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--plot", type=Path, help="draw time against N here")
    args = parser.parse_args()
    steps = ["data check", "data split", "cache build", "train 1 epoch"]
    rows = []
    with tempfile.TemporaryDirectory(prefix="petal-scale-", dir=args.work) as scratch:
        for n in args.sizes:
            work = Path(scratch) / str(n)
            start = time.perf_counter()
            make_folder(n, work / "data")
            row = {"n": n, "generate_seconds": round(time.perf_counter() - start, 1)}
            data, cache = str(work / "data"), str(work / "cache")
            commands = {
                "data check": ["data", "check", data, "--json"],
                "data split": ["data", "split", data, "--out", str(work / "split.json")],
                "cache build": ["cache", "build", data, "--cache-dir", cache],
                "train 1 epoch": ["train", "--data", data, "--recipe", "fast-transfer",
                                  "--set", "epochs=1", "--split", str(work / "split.json"),
                                  "--out", str(work / "run"), "--cache-dir", cache]}
            for step in steps if n <= args.train_up_to else steps[:-1]:
                row[step] = run_step(commands[step])
                print(f"N={n}: {step} {row[step]['seconds']} s, peak {row[step]['peak_mb']} MB "
                      f"({row[step]['peak_anonymous_mb']} MB not file-backed)", flush=True)
            rows.append(row)
            shutil.rmtree(work)
    growth = {step: exponents(rows, step) for step in steps}
    print("growth exponents between sizes: " + "; ".join(f"{k} {v}" for k, v in growth.items()))
    result = {"sizes": args.sizes,
              "rows": rows, "growth_exponents": growth}
    if args.hashes:
        result["near_duplicate_search"] = time_hashes(args.hashes)
    if args.plot:
        plot(rows, steps, args.plot)
    if args.json:
        record(args.json, result, "time and peak memory of data check, data split, cache "
               "build (and training) on synthetic sets by size; near-duplicate search")
    return 0


if __name__ == "__main__":
    sys.exit(main())
