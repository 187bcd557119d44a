"""When new photos differ: how often petal's shift check (petal.inference.shift) raises a
false alarm on photos like the held-out ones, and how early it fires on photos that differ.

    .venv/bin/python benchmarks/shift.py --json benchmarks/results/shift.json

A fast-transfer model of the flowers set (default split; trained into --run unless it is
there), on ONNX Runtime as `petal predict` runs it. Its 431 validation photos are split at
random into two halves, --draws times: one half plays the held-out photos behind the card
(their novelty sets the threshold that keeps 95 %), batches from the other half are the new
photos. Batches of those photos as they are measure the false alarms; the same photos
changed as later photos can be (blurred, dark, low resolution, heavy JPEG) or mixed with
photos that are not flowers (one in ten, one in five: open_set.py's 37 far-OOD photos)
measure how often, and from how many photos, the check fires. For each change: the
model's accuracy and mean top probability on the 431 photos changed so, and the share it
calls unknown, to say what the alarm is worth.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
from common import FLOWERS, ROOT, record, train, validation_photos
from open_set import far_ood_folder
from PIL import Image, ImageEnhance, ImageFilter

import petal
from petal.inference.novelty import threshold_for
from petal.inference.shift import ALPHA, check_shift


def _jpeg(image: Image.Image, quality: int) -> Image.Image:
    import io

    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


CHANGES: dict[str, Callable[[Image.Image], Image.Image]] = {
    "blurred (radius 3)": lambda im: im.filter(ImageFilter.GaussianBlur(3)),
    "dark (x0.3)": lambda im: ImageEnhance.Brightness(im).enhance(0.3),
    "low resolution (40 px)": lambda im: im.resize((40, 40)).resize(im.size),
    "JPEG quality 5": lambda im: _jpeg(im, 5),
}
MIXES = {"1 in 10 not flowers": 0.1, "1 in 5 not flowers": 0.2}


def scores_and_answers(classifier: petal.Classifier, images: list[Image.Image]
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Novelty and probabilities of `images`, as `petal predict` computes them."""
    arrays = np.stack([classifier.prepare(image) for image in images])
    answer = classifier.answer(arrays)
    return answer.novelty, answer.probabilities


def alarm_rates(reference_pool: np.ndarray, batches: Callable[[np.random.Generator, np.ndarray,
                int], np.ndarray], sizes: list[int], draws: int, seed: int = 0) -> dict:
    """For each batch size: the share of draws on which the check fires, and the unknown
    count it needs at that size (median over draws)."""
    rng = np.random.default_rng(seed)
    rates = {}
    for size in sizes:
        fired, needs = 0, []
        for _ in range(draws):
            order = rng.permutation(len(reference_pool))
            half, other = order[: len(order) // 2], order[len(order) // 2:]
            reference = reference_pool[half]
            threshold = threshold_for(reference, 0.95)
            check = check_shift(batches(rng, other, size), reference, threshold)
            fired += check.shifted
            needs.append(check.needs if check.needs is not None else size + 1)
        rates[size] = {"alarm_rate": round(fired / draws, 4),
                       "needs_unknown": int(np.median(needs))}
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--run", type=Path, default=ROOT / "runs" / "shift-ft",
                        help="a fast-transfer run of the data (trained here when missing)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 20, 50, 100, 200])
    parser.add_argument("--draws", type=int, default=1000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if not (args.run / "model" / "model.json").is_file():
        train(args.data, args.run)
    classifier = petal.load(args.run)
    held_out = validation_photos(args.run)
    photos = [Image.fromarray(square) for square in held_out.squares]
    labels = held_out.targets
    not_flowers = [Image.open(p).convert("RGB") for p in
                   sorted((far_ood_folder(ROOT / "runs" / "shift-far") / "not_flowers").iterdir())]

    clean, clean_probs = scores_and_answers(classifier, photos)
    far_scores, _ = scores_and_answers(classifier, not_flowers)
    changed = {name: scores_and_answers(classifier, [change(p) for p in photos])
               for name, change in CHANGES.items()}
    threshold = classifier.novelty.threshold

    def effect(scores: np.ndarray, probs: np.ndarray) -> dict:
        right = probs.argmax(axis=1) == labels
        return {"accuracy": round(float(right.mean()), 4),
                "mean_top_probability": round(float(probs.max(axis=1).mean()), 4),
                "called_unknown": round(float((scores > threshold).mean()), 4)}

    def drawn(scores: np.ndarray) -> Callable[[np.random.Generator, np.ndarray, int],
                                              np.ndarray]:
        """Batches of n of the other half's photos (each at most once), scored as `scores`."""
        return lambda rng, other, n: scores[rng.choice(other, n, replace=False)]

    scenarios: dict[str, dict] = {"alike (false alarms)": {
        "effect": effect(clean, clean_probs),
        "rates": alarm_rates(clean, drawn(clean), args.sizes, args.draws)}}
    for name, (scores, probs) in changed.items():
        scenarios[name] = {"effect": effect(scores, probs),
                           "rates": alarm_rates(clean, drawn(scores), args.sizes, args.draws)}
    for name, share in MIXES.items():
        def mixed(rng: np.random.Generator, other: np.ndarray, n: int,
                  share: float = share) -> np.ndarray:
            strangers = rng.binomial(n, share)
            return np.r_[clean[rng.choice(other, n - strangers, replace=False)],
                         far_scores[rng.choice(len(far_scores), strangers)]]
        scenarios[name] = {"effect": None, "rates": alarm_rates(clean, mixed, args.sizes,
                                                                 args.draws)}

    stored = check_shift(clean, classifier.novelty.val_scores, threshold)
    print(f"the {len(photos)} validation photos through predict against the novelty stored "
          f"when the model was trained: {stored.message()}")
    print(f"alarm rate (alpha {ALPHA}) over {args.draws} draws; batch sizes {args.sizes}")
    print(f"{'photos':<24}" + "".join(f"{n:>8}" for n in args.sizes)
          + "   accuracy  top prob  unknown")
    for name, found in scenarios.items():
        cells = "".join(f"{100 * found['rates'][n]['alarm_rate']:>7.1f}%" for n in args.sizes)
        said = found["effect"]
        tail = (f"   {100 * said['accuracy']:>7.1f}%  {100 * said['mean_top_probability']:>7.1f}%"
                f"  {100 * said['called_unknown']:>6.1f}%" if said else "")
        print(f"{name:<24}{cells}{tail}")
    needs = scenarios["alike (false alarms)"]["rates"]
    print("unknown photos needed to fire: "
          + ", ".join(f"{needs[n]['needs_unknown']} of {n}" for n in args.sizes))
    if args.json:
        record(args.json, {"model": str(held_out.folder), "n_val": len(photos),
                           "n_not_flowers": len(not_flowers), "draws": args.draws,
                           "alpha": ALPHA, "stored_against_predict": stored.to_json(),
                           "scenarios": scenarios},
               about="the shift check: false alarms on alike photos, alarm rate on changed "
                     "ones, by batch size")


if __name__ == "__main__":
    sys.exit(main())
