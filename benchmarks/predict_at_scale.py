"""`petal predict --out FILE.csv` over the whole flowers set: photos a second with 0, 1 and 2
decoding workers, and what resuming a finished file costs.

    .venv/bin/python benchmarks/predict_at_scale.py runs/notebook/transfer \\
        --json benchmarks/results/predict_at_scale.json

Each run is `petal predict MODEL FLOWERS --out FILE --workers N` in a process of its own
(the ONNX engine, batches of 32), timed from start to exit, its peak memory read from
the process's rusage by a wrapper; then the same command again on the finished file (every
photo found there: nothing to predict).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from common import FLOWERS, record
from hostile_images import cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a run or model folder")
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    photos = sum(1 for p in args.data.rglob("*") if p.is_file())
    figures: dict = {"photos": photos, "runs": {}}
    with tempfile.TemporaryDirectory() as folder:
        for workers in (0, 1, 2):
            out = Path(folder) / f"w{workers}.csv"
            command = ["predict", args.model, str(args.data), "--out", str(out), "--workers",
                       str(workers), "--no-progress"]
            started = time.perf_counter()
            ran = cost(*command)
            seconds = time.perf_counter() - started
            started = time.perf_counter()
            again = cost(*command)
            resumed = time.perf_counter() - started
            figures["runs"][workers] = {
                "seconds": round(seconds, 1), "photos_per_s": round(photos / seconds, 1),
                "peak_mib": round(ran["peak_mib"]), "exit": ran["exit"],
                "resume_finished_s": round(resumed, 1), "resume_said": again["output"].strip()
                .splitlines()[-1][:160]}
            print(f"workers {workers}: {seconds:.1f} s, {photos / seconds:.0f} photos/s, peak "
                  f"{ran['peak_mib']:.0f} MiB (parent); again on the finished file: "
                  f"{resumed:.1f} s", flush=True)
    if args.json:
        record(args.json, figures, about="petal predict --out over the flowers set with 0, 1 "
               "and 2 decoding workers, and resuming a finished file")


if __name__ == "__main__":
    sys.exit(main())
