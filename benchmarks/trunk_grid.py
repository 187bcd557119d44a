"""Which pretrained trunks to train fast-transfer on: a small grid, measured once.

    .venv/bin/python benchmarks/trunk_grid.py --json benchmarks/results/trunk_grid.json

For each configuration (EfficientNet-Lite0, 1, 2 alone, at their own input size and about
1.25 times it; Lite0+Lite2 and all three at their own sizes), fast-transfer is trained on
the flowers set with split seeds 0, 1 and 2 (`petal data split --seed S`) and reports:

- accuracy on each split's validation photos, their mean and spread, and the training
  time (`petal train`, the features of a trunk computed by its first run: the first split's
  time includes them, the others read the cache);
- ONNX inference: the exported model (`petal export`) timed on batches of 32 decoded
  photos with ONNX Runtime on every core, images/s;
- leave-one-class-out unknown AUROC (split seed 0 only; --loco picks the configurations):
  fast-transfer trained on four classes, petal's novelty score (kNN, as shipped) of its
  validation photos against the left-out class's photos, from the model's top on the cached
  trunk features (the same numbers inference computes, without rerunning each trunk);
- label review at 5 % flipped labels (benchmarks/label_noise.py's copy): precision and
  recall of `petal data review`'s flagged list, and precision among the first F of two
  rankings of every photo, F the number flipped: petal's (flagged first, by score) and
  cleanlab's "self-confidence" (the given label's out-of-fold probability, lowest first).

Run folders go to OUT/CONFIG-splitS; a finished one is read, not trained again.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import FLOWERS, ROOT, linked, record, split_file, train
from label_noise import flipped_copy

import petal
from petal.analysis.metrics import auroc
from petal.data.decoded_cache import DecodedCache
from petal.data.scan import scan_folder
from petal.inference import novelty
from petal.inference.export import export
from petal.inference.model_folder import load_model
from petal.jobs import review as review_job
from petal.jobs.evaluate import central_crops, decoded_squares, split_set
from petal.models.features import AnswerWithFeatures
from petal.paths import cache_root
from petal.run_folder import SPLIT_FILE
from petal.training.cut import cut_trunks
from petal.training.feature_cache import trunk_features

LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]
# name -> (model, recipe overrides); "@" sizes about 1.25 times each trunk's own
CONFIGS = {
    "lite0": ("efficientnet_lite0", []),
    "lite2": ("efficientnet_lite2", []),
    "lite0+lite2": ("efficientnet_lite0+efficientnet_lite2", []),
    "lite1": ("efficientnet_lite1", []),
    "lite0+lite1+lite2": ("+".join(LITE), []),
    "lite0@280": ("efficientnet_lite0", ["--set", "input_size=280"]),
    "lite2@324": ("efficientnet_lite2", ["--set", "input_size=324"]),
    "lite1@300": ("efficientnet_lite1", ["--set", "input_size=300"]),
}
SPLIT_SEEDS = (0, 1, 2)


def trained(data: Path, run: Path, model: str, options: list[str]) -> float | None:
    """fast-transfer of `model` into `run`; the wall seconds, None if it was there already."""
    if (run / "model" / "model.json").is_file():
        return None
    return train(data, run, "fast-transfer", "--model", model, *options)


def accuracy(run: Path) -> dict:
    card = petal.load(run).card
    figure = card.accuracy
    return {"accuracy": figure["value"], "correct": figure["correct"], "n": figure["n"],
            "train_seconds": card.metrics["train_seconds"]}


def onnx_speed(run: Path, photos: int = 256, batch: int = 32) -> float:
    """Images/s of the exported model on `photos` decoded validation photos."""
    exported = export(run, "onnx").path
    classifier = petal.load(exported)
    card = classifier.card
    chosen = split_set(run / SPLIT_FILE, Path(card.data), "val", card.classes, {}, False)
    squares = decoded_squares(chosen, card.input.resize_size, progress=False)[:photos]
    crops = central_crops(squares, card.input.size)
    classifier.batch_size = batch
    classifier.answer(crops[:batch])  # warm-up
    start = time.perf_counter()
    classifier.answer(crops)
    return len(crops) / (time.perf_counter() - start)


def top_outputs(run: Path, files: list[tuple[Path, str]]) -> tuple[np.ndarray, np.ndarray]:
    """(logits, features) of photos as the model at `run` computes them, from its top on the
    trunks' cached features (which its training stored)."""
    network, card = load_model(run)
    trunks, top = cut_trunks(network.eval(), card.recipe["train_from"])
    spec = card.input
    pixels = DecodedCache(cache_root(None), spec.resize_size).ensure(files, progress=False)
    keys = [sha for _, sha in files]
    stored = [trunk_features(cache_root(None), t, card.architecture, spec, len(trunks) > 1)
              .view(pixels, keys, progress=False) for t in trunks]
    answer = AnswerWithFeatures(top.eval(), spec, temperature=card.temperature)
    logits, features = [], []
    with torch.inference_mode():
        for start in range(0, len(files), 256):
            parts = [torch.from_numpy(np.asarray(s[start:start + 256], np.float32))
                     for s in stored]
            said = answer(parts if len(parts) > 1 else parts[0])
            logits.append(said[0].numpy())
            features.append(said[1].numpy())
    return np.concatenate(logits), np.concatenate(features)


def photo_files(folder: Path) -> list[tuple[Path, str]]:
    index = scan_folder(folder, progress=False)
    return [(index.root / r.path, r.sha256) for r in index.images]


def leave_one_class_out(model: str, options: list[str], out: Path) -> dict:
    """Mean AUROC of the shipped novelty score over the five left-out classes."""
    classes = sorted(p.name for p in FLOWERS.iterdir() if p.is_dir())
    aurocs = {}
    for left_out in classes:
        others = [c for c in classes if c != left_out]
        data = linked(FLOWERS, out / f"data-without-{left_out}", classes=others)
        run = out / f"without-{left_out}"
        trained(data, run, model, options)
        card = petal.load(run).card
        chosen = split_set(run / SPLIT_FILE, Path(card.data), "val", card.classes, {}, False)
        known = top_outputs(run, [(chosen.root / path, sha)
                                  for path, _, sha in chosen.items])[1]
        unknown_folder = linked(FLOWERS, out / f"data-only-{left_out}", classes=[left_out])
        unknown = top_outputs(run, photo_files(unknown_folder))[1]
        folder = run / "model"
        score = novelty.load(folder / novelty.NOVELTY_FILE, card.novelty)
        aurocs[left_out] = round(auroc(score.score(known), score.score(unknown)), 4)
    return {"folds": aurocs, "mean": round(float(np.mean(list(aurocs.values()))), 4)}


def precision_at(ranked: list[str], flipped: set[str], count: int) -> float:
    return len(set(ranked[:count]) & flipped) / count


def label_review(model: str, share: float = 0.05) -> dict:
    """The review on a copy with `share` of the labels flipped (see the module docstring)."""
    with tempfile.TemporaryDirectory(prefix="petal-grid-noise-") as scratch:
        flipped = flipped_copy(FLOWERS, share, Path(scratch))
        found = review_job.review(scratch, model=model, progress=False)
        index = scan_folder(scratch, progress=False)
        labels = np.array([index.classes.index(r.label) for r in index.images])
        files = [(index.root / r.path, r.sha256) for r in index.images]
        features = review_job.pooled_features(index.classes, files, model, None, False)
        probabilities = review_job.out_of_fold(features, labels, len(index.classes),
                                               review_job.FOLDS)
        paths = [r.path for r in index.images]
    flagged = [issue["path"] for issue in found.label_issues]
    given = probabilities[np.arange(len(labels)), labels]
    by_confidence = [paths[i] for i in np.argsort(given, kind="stable")]
    chosen = set(flagged)
    rest = [path for path in by_confidence if path not in chosen]
    hits = len(set(flagged) & flipped)
    count = len(flipped)
    return {"flipped": count, "flagged": len(flagged),
            "precision": round(hits / max(len(flagged), 1), 4),
            "recall": round(hits / count, 4),
            "petal_ranking_precision_at_f": round(precision_at(flagged + rest, flipped, count), 4),
            "self_confidence_precision_at_f": round(precision_at(by_confidence, flipped, count),
                                                    4),
            "self_confidence_recall_at_1_5f": round(
                len(set(by_confidence[:round(1.5 * count)]) & flipped) / count, 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--loco", nargs="*", default=["lite0", "lite2", "lite0+lite2",
                                                      "lite0+lite1+lite2"],
                        help="configurations whose leave-one-class-out AUROC is measured")
    parser.add_argument("--review", nargs="*", default=["lite0", "lite1", "lite2",
                                                        "lite0+lite2", "lite0+lite1+lite2"],
                        help="configurations whose label review is measured (own sizes)")
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "trunk_grid")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.json.read_text()) if args.json and args.json.is_file() else {}
    results = previous.get("configs", {})
    # the commands that measured what this one resumes, each with its stamp
    earlier = previous.get("earlier", []) + ([previous["recorded"]] if "recorded" in previous
                                             else [])
    for name in args.configs:
        model, options = CONFIGS[name]
        found = results.get(name, {"model": model, "options": options, "splits": {}})
        for seed in SPLIT_SEEDS:
            run = args.out / f"{name}-split{seed}"
            split = split_file(FLOWERS, args.out, seed)
            seconds = trained(FLOWERS, run, model, [*options, *(["--split", str(split)]
                                                                if split else [])])
            figures = {**found["splits"].get(str(seed), {}), **accuracy(run)}
            if seconds is not None:
                figures["wall_seconds"] = round(seconds, 1)
            found["splits"][str(seed)] = figures
            print(f"{name} split {seed}: {100 * figures['accuracy']:.2f} %, "
                  f"{figures.get('wall_seconds', '-')} s", flush=True)
        rates = [s["accuracy"] for s in found["splits"].values()]
        found["mean"], found["sd"] = round(statistics.mean(rates), 6), round(
            statistics.stdev(rates), 6)
        if "onnx_images_per_s" not in found:
            found["onnx_images_per_s"] = round(onnx_speed(args.out / f"{name}-split0"), 1)
        if name in args.loco and "loco_auroc" not in found:
            found["loco_auroc"] = leave_one_class_out(model, options, args.out / f"{name}-loco")
        if name in args.review and "label_review" not in found:
            found["label_review"] = label_review(model)
        results[name] = found
        print(f"{name}: mean {100 * found['mean']:.2f} % (sd {100 * found['sd']:.2f}), "
              f"ONNX {found['onnx_images_per_s']} images/s"
              + (f", LOCO AUROC {found['loco_auroc']['mean']}" if "loco_auroc" in found else "")
              + (f", review {found['label_review']}" if "label_review" in found else ""),
              flush=True)
        if args.json:  # after each configuration: a long measurement can be resumed
            record(args.json, {"configs": results, "earlier": earlier}, "fast-transfer on "
                   "EfficientNet-Lite trunks, sizes and pairs, split seeds 0-2: accuracy, "
                   "seconds, ONNX images/s; leave-one-class-out AUROC; the label review")
    return 0


if __name__ == "__main__":
    sys.exit(main())
