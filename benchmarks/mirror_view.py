"""What the mirrored test-time view (recipe field tta_flip) gains and costs, on trained models.

For each run folder, scores its own validation split with the trained network alone and
with each image averaged with its mirror, and times both per image the way `petal
predict` runs torch (channels-last, batches of 32, decoded crops in memory, this process's
threads; best of three passes over the split), so the gain in images and the cost in
milliseconds come from the same models. Nothing is retrained: pass runs trained with and
without the view alike. Prints a line per run and the totals per recipe.

    .venv/bin/python benchmarks/tuning/seed_spread.py --recipe fast-resnet9 \\
        --split-seeds 0 1 2 --seeds 0 --jobs 2 --out runs/tta
    .venv/bin/python benchmarks/mirror_view.py runs/tta/fast-resnet9-* \\
        --json benchmarks/results/mirrored_view.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from common import record, validation_photos

from petal.inference.model_folder import load_model
from petal.inference.preprocess import to_input
from petal.jobs.evaluate import central_crops
from petal.models.mirror import MirrorAverage


def scored(network: torch.nn.Module, inputs: torch.Tensor, targets: np.ndarray
           ) -> tuple[int, float]:
    """(images right, best milliseconds per image over three passes) in batches of 32."""
    best, right = float("inf"), 0
    network = network.to(memory_format=torch.channels_last)  # as the torch engine runs it
    for _ in range(3):
        start, predicted = time.perf_counter(), []
        with torch.inference_mode():
            for batch in inputs.split(32):
                batch = batch.contiguous(memory_format=torch.channels_last)
                predicted.append(network(batch).argmax(1).numpy())
        best = min(best, time.perf_counter() - start)
        right = int((np.concatenate(predicted) == targets).sum())
    return right, 1000 * best / len(inputs)


def measure(run: Path) -> dict:
    photos = validation_photos(run)
    network, card = load_model(photos.folder)
    crops = central_crops(photos.squares, card.input.size)
    inputs = torch.from_numpy(to_input(crops, card.input))
    targets = photos.targets
    plain, plain_ms = scored(network, inputs, targets)
    mirrored, mirrored_ms = scored(MirrorAverage(network).eval(), inputs, targets)
    return {"run": str(run), "recipe": card.recipe.get("name"), "images": len(targets),
            "right": plain, "right_mirrored": mirrored, "ms": round(plain_ms, 2),
            "ms_mirrored": round(mirrored_ms, 2)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args()
    rows = []
    for run in args.runs:
        rows.append(row := measure(run))
        print(f"{run}: {row['right']} -> {row['right_mirrored']} of {row['images']} right, "
              f"{row['ms']} -> {row['ms_mirrored']} ms an image", flush=True)
    totals = {}
    for recipe in dict.fromkeys(r["recipe"] for r in rows):
        mine = [r for r in rows if r["recipe"] == recipe]
        totals[recipe] = {"gain_images": sum(r["right_mirrored"] - r["right"] for r in mine),
                          "images": sum(r["images"] for r in mine), "runs": len(mine),
                          "extra_ms": round(float(np.mean([r["ms_mirrored"] - r["ms"]
                                                           for r in mine])), 2)}
        print(f"{recipe}: the mirrored view {totals[recipe]['gain_images']:+d} of "
              f"{totals[recipe]['images']} images over {len(mine)} runs, "
              f"{totals[recipe]['extra_ms']:+.1f} ms an image")
    if args.json:
        record(args.json, {"runs": rows, "per_recipe": totals}, "the mirrored view "
               "(`tta_flip`) on trained models: images right and ms an image, with and "
               "without it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
