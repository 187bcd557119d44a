"""The data loop's speed: a decision on the review page and in the labelling queue, and the
retraining after a batch of labels.

    .venv/bin/python benchmarks/data_loop.py --json benchmarks/results/data_loop.json

- decisions: `petal review` over the flowers set's review (`petal data review --out`) and
  `petal label` over 200 flowers photos with a fast-transfer model; DECISIONS decisions
  posted one after another as the page posts them; the time from sending one to its answer,
  which comes after review.csv / labels.csv has been replaced on disk (p50, p95, max);
- retraining: a data folder of 10 photos a class plus 50 labelled through `petal label`'s
  folder format (links), `petal train --data NEW --recipe fast-transfer` as the page's next
  step says, with its defaults (a small set: 5-fold cross-validation, then a final model on
  every photo) and with `--folds 0`; the features of every photo already cached.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
from common import FLOWERS, PETAL, ROOT, linked, record, train

DECISIONS = 200


def page_server(*args: str) -> tuple[subprocess.Popen, str, str]:
    """`petal ARGS --port 0` started; (process, base address, token)."""
    process = subprocess.Popen([PETAL, *args, "--port", "0"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        found = re.search(r"open (http://\S+)/\?token=(\S+)", line)
        if found:
            return process, found.group(1), found.group(2)
    raise RuntimeError("the page did not start")


def decision_times(base: str, token: str, bodies: list[dict]) -> dict:
    """Milliseconds from sending each decision to its answer (on disk by then)."""
    times = []
    with httpx.Client(headers={"X-Petal-Token": token}) as client:
        for body in bodies:
            start = time.perf_counter()
            client.post(f"{base}/api/decide", json=body).raise_for_status()
            times.append(1000 * (time.perf_counter() - start))
    times.sort()
    return {"decisions": len(times), "p50_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * len(times))], 2), "max_ms": round(times[-1], 2)}


def review_decisions(out: Path) -> dict:
    review = out / "review"
    if not (review / "review.json").is_file():
        subprocess.run([PETAL, "data", "review", str(FLOWERS), "--out", str(review),
                        "--no-progress"], check=True, stdout=subprocess.DEVNULL)
    process, base, token = page_server("review", str(review))
    try:
        items = httpx.get(f"{base}/api/items", headers={"X-Petal-Token": token}).json()["items"]
        actions = ["keep", "exclude", "relabel", ""]
        bodies = [{"key": items[n % len(items)]["key"], "action": actions[n % 4],
                   "label": items[n % len(items)]["suggested"] or "daisy"}
                  for n in range(DECISIONS)]
        return {"rows": len(items), **decision_times(base, token, bodies)}
    finally:
        process.terminate()
        process.wait()


def label_decisions(out: Path, model: Path) -> dict:
    photos = linked(FLOWERS, out / "unlabelled", per_class=40)
    new = out / "labelled"
    shutil.rmtree(new, ignore_errors=True)
    process, base, token = page_server("label", str(photos), "--model", str(model), "--out",
                                       str(new), "--no-progress")
    try:
        items = httpx.get(f"{base}/api/items", headers={"X-Petal-Token": token}).json()["items"]
        bodies = [{"key": items[n % len(items)]["key"], "action": ("label", "none", "")[n % 3],
                   "label": items[n % len(items)]["suggested"]} for n in range(DECISIONS)]
        return {"photos": len(items), **decision_times(base, token, bodies)}
    finally:
        process.terminate()
        process.wait()


def retraining(out: Path) -> dict:
    """Seconds to retrain on 10 photos a class plus 50 more, linked as `petal label` links."""
    data = out / "after_a_batch"
    shutil.rmtree(data, ignore_errors=True)
    linked(FLOWERS, data, per_class=10)
    for folder in sorted(FLOWERS.iterdir()):
        for photo in sorted(folder.iterdir())[300:310]:  # 10 more a class: 50 labels
            (data / folder.name / f"new-{photo.name}").symlink_to(photo.resolve())
    figures = {}
    for name, options in {"defaults": [], "folds_0": ["--folds", "0"]}.items():
        run = out / f"retrained-{name}"
        shutil.rmtree(run, ignore_errors=True)
        figures[name] = round(train(data, run, "fast-transfer", *options), 1)
    return {"photos": 100, "seconds": figures}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "data_loop")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    model = args.out / "model-100"
    if not (model / "model" / "model.json").is_file():
        train(linked(FLOWERS, args.out / "train-100", per_class=20), model, "fast-transfer")
    result = {"retraining": retraining(args.out),
              "review": review_decisions(args.out), "label": label_decisions(args.out, model)}
    print(json.dumps(result, indent=2))
    if args.json:
        record(args.json, result, "time of a decision on the review page and in the labelling "
               "queue, and of retraining on 50 + 50 photos with cached features")
    return 0


if __name__ == "__main__":
    sys.exit(main())
