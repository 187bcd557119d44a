"""One training through the Python API and the same through the command line, and what
`import petal` costs.

    .venv/bin/python benchmarks/api_vs_cli.py --data ../shared/data/flowers \\
        --json benchmarks/results/api_vs_cli.json

Both trainings run in processes of their own, one after the other, on one cache (warmed
first, so neither pays for decoding): petal.train(...) and `petal train ...` with the same
recipe, split seed and folds. Printed: whether their history.csv agree in every column but
the two timing ones, and whether their model.safetensors are the same bytes. `import petal`:
the median wall time of `python -c "import petal"` over 10 runs, less that of `python -c
"pass"`, and whether torch or numpy came with it.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PETAL, record

TIMES = ("epoch_seconds", "elapsed_seconds")


def import_cost(runs: int = 10) -> dict:
    def median_seconds(code: str) -> float:
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - started)
        return statistics.median(times)

    probe = ("import sys; before = set(sys.modules); import petal; "
             "print(len(set(sys.modules) - before), 'torch' in sys.modules, "
             "'numpy' in sys.modules)")
    modules, torch, numpy = subprocess.run([sys.executable, "-c", probe], capture_output=True,
                                           text=True, check=True).stdout.split()
    return {"seconds": round(median_seconds("import petal") - median_seconds("pass"), 4),
            "modules": int(modules), "torch": torch == "True", "numpy": numpy == "True"}


def history(run: Path) -> list[dict]:
    with open(run / "history.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMES} for row in csv.DictReader(handle)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--recipe", default="fast-resnet9")
    parser.add_argument("--json", help="write the figures here")
    args = parser.parse_args()
    cost = import_cost()
    print(f"import petal: {1000 * cost['seconds']:.0f} ms over a bare interpreter, "
          f"{cost['modules']} modules; torch {cost['torch']}, numpy {cost['numpy']}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        cache = root / "cache"
        same = ["--recipe", args.recipe, "--folds", "0", "--cache-dir", str(cache),
                "--no-progress"]
        subprocess.run([PETAL, "train", "--data", args.data, "--out", str(root / "warm"), *same,
                        "--set", "epochs=1"], check=True, capture_output=True)
        seconds = {}
        for how in ("api", "cli"):
            started = time.perf_counter()
            if how == "api":
                code = (f"import petal; petal.train({args.data!r}, out={str(root / how)!r}, "
                        f"recipe={args.recipe!r}, folds=0, cache_dir={str(cache)!r}, "
                        "progress=False)")
                subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
            else:
                subprocess.run([PETAL, "train", "--data", args.data, "--out", str(root / how),
                                *same], check=True, capture_output=True)
            seconds[how] = round(time.perf_counter() - started, 1)
        rows = {how: history(root / how) for how in ("api", "cli")}
        weights = {how: hashlib.sha256((root / how / "model" / "model.safetensors").read_bytes())
                   .hexdigest() for how in ("api", "cli")}
    result = {"recipe": args.recipe, "epochs": len(rows["api"]),
              "history_identical": rows["api"] == rows["cli"],
              "weights_identical": weights["api"] == weights["cli"], "seconds": seconds,
              "last_epoch": rows["api"][-1], "import": cost}
    print(f"{args.recipe} on {args.data}: history.csv identical but for the times: "
          f"{result['history_identical']} ({result['epochs']} epochs); model.safetensors "
          f"identical: {result['weights_identical']}; {seconds['api']} s through the API, "
          f"{seconds['cli']} s through the CLI")
    if args.json:
        record(args.json, result, f"`import petal`'s cost; {args.recipe} trained through "
               "`petal.train` and `petal train`: history and weights identical or not")
    return 0 if result["history_identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
