"""fast-transfer's data steps with one process and with two torchrun processes that share
them out: time, disk per photo, and each process's share.

    .venv/bin/python benchmarks/shared_steps.py --sizes 3000 10000 \\
        --json benchmarks/results/shared_steps.json

For each N, scale.py's folder of N generated JPEGs (96 x 80 px, 10 classes); then `petal
train --recipe fast-transfer --set epochs=1 --folds 0` into an empty cache, once as one
process and once as two processes on this machine (`torchrun --nproc-per-node 2`, `--devices
2 --strategy ddp`, one cache folder), each timed from start to exit. Disk: the cache folder
after. The processes' shares are read from their log lines ("computed K of the M missing
rows"). The machine has 2 cores, so the two processes share them: the point here is what
the job costs per photo and that no photo is done twice, not a speed-up (a machine per
process would give one).
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PETAL, record
from scale import make_folder

from petal.data.decoded_cache import folder_bytes

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
TRAIN = ["train", "--recipe", "fast-transfer", "--set", "epochs=1", "--folds", "0",
         "--no-progress", "--accelerator", "cpu"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(command: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=7200,
                          env={**os.environ})
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - started, done.stdout + done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[3000, 10000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    figures: dict = {"sizes": {}}
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        for n in args.sizes:
            data = root / f"data{n}"
            make_folder(n, data)
            photos = sum(1 for p in data.rglob("*") if p.is_file())
            one_s, _ = run([PETAL, *TRAIN, "--data", str(data), "--cache-dir",
                            str(root / f"one{n}"), "--out", str(root / f"run-one{n}")])
            two_s, said = run([TORCHRUN, "--nproc-per-node", "2", "--master-port",
                               str(free_port()), PETAL, *TRAIN, "--data", str(data),
                               "--devices", "2", "--strategy", "ddp", "--cache-dir",
                               str(root / f"two{n}"), "--out", str(root / f"run-two{n}")])
            shares = [int(k) for k in re.findall(r"view0: this process \(\d of 2\) computed "
                                                 r"(\d+) of the \d+ missing rows", said)]
            row = {"photos": photos, "one_process_s": round(one_s, 1),
                   "two_processes_s": round(two_s, 1), "shares": shares,
                   "disk_per_photo_one": round(folder_bytes(root / f"one{n}") / photos),
                   "disk_per_photo_two": round(folder_bytes(root / f"two{n}") / photos),
                   "ms_per_photo_one": round(1000 * one_s / photos, 2),
                   "ms_per_photo_two": round(1000 * two_s / photos, 2)}
            figures["sizes"][n] = row
            print(f"{photos} photos: one process {one_s:.0f} s ({row['ms_per_photo_one']} ms a "
                  f"photo), two {two_s:.0f} s ({row['ms_per_photo_two']} ms), shares {shares}, "
                  f"cache {row['disk_per_photo_one'] / 1024:.1f} KiB a photo", flush=True)
    if args.json:
        record(args.json, figures, about="fast-transfer's data steps with one process and "
               "with two torchrun processes sharing them out")


if __name__ == "__main__":
    sys.exit(main())
