"""Open set: how well each novelty method tells photos of no trained class from known ones.

    .venv/bin/python benchmarks/open_set.py --json benchmarks/results/open_set.json

near-OOD, leave one class out: for each class of the flowers set, fast-transfer is trained
on the other classes (`petal train`, default split), and the left-out class's photos are the
unknowns; the known images are the model's validation images.
far-OOD: a fast-transfer model of all classes against 37 photos that are not flowers: 17
desktop-background photos from Debian's ukui-wallpapers, mate-backgrounds and
lomiri-wallpapers (flowers and abstract pictures left out by name, below), and the 20
sample images bundled with scikit-image (`pip install scikit-image`; a portrait, a cat,
coffee, a rocket, text, microscopy, the moon, ...).

Methods (higher = more novel), each fitted on the model's training images and scored on the
same forward passes (ONNX Runtime): petal's kNN distance (petal.inference.novelty; k = 10
ships, 1 and 50 show its sensitivity), and the baselines written out here: the maximum softmax
probability (msp), energy (-logsumexp of the logits, Liu et al. 2020) and the relative
Mahalanobis distance (rmd, Ren et al. 2021). Figures: AUROC (unknown vs known) and FPR95 (the
share of unknowns kept when 95 % of known images are kept), then the mean over the folds;
the known-class accuracy of the images kept at that threshold; the time to score an image
(alone, and in a batch of 32) and the size of novelty.safetensors in the model folder.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from common import FLOWERS, ROOT, linked, record, train

import petal
from petal.analysis.metrics import auroc
from petal.inference import novelty
from petal.inference.export import export
from petal.inference.onnx_engine import onnx_runner
from petal.inference.preprocess import to_input
from petal.jobs.evaluate import central_crops, decoded_squares, folder_set, split_set
from petal.stats import softmax

SHIPPED = f"knn k={novelty.KNN_K}"
WALLPAPERS = [  # photographs without flowers, by name (the packages hold flowers too)
    "Bridge_by_Sander_Klootwijk.jpg", "Kleiber_by_Lukas_Baubkus.jpg",
    "Picture_0B_by_freespace.jpg", "Picture_1A_by_freespace.jpg", "Wine_by_Jakkub_Mede.jpg",
    "aitzgorri_by_Aitzol_Berasategi.jpg", "friends_by_Aitzol_Berasategi.jpg",
    "life_by_Aitzol_Berasategi.jpg", "picosdeeuropa_by_Aitzol_Berasategi.jpg",
    "sunset_by_Aitzol_Berasategi.jpg", "mate/nature/Aqua.jpg", "mate/nature/Blinds.jpg",
    "mate/nature/Dune.jpg", "mate/nature/GreenMeadow.jpg", "mate/nature/RainDrops.jpg",
    "mate/nature/Storm.jpg", "mate/nature/Wood.jpg"]
SKIMAGE = ["astronaut.png", "brick.png", "camera.png", "cell.png", "chelsea.png",
           "clock_motion.png", "coffee.png", "coins.png", "grass.png", "gravel.png",
           "hubble_deep_field.jpg", "ihc.png", "microaneurysms.png", "moon.png",
           "motorcycle_left.png", "motorcycle_right.png", "page.png", "retina.jpg",
           "rocket.jpg", "text.png"]


def gaussian(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and pseudo-inverse covariance of feature rows."""
    mean = features.mean(axis=0)
    centred = features - mean
    return mean, np.linalg.pinv(centred.T @ centred / (len(features) - 1), hermitian=True)


def mahalanobis(features: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> np.ndarray:
    centred = features - mean
    return np.einsum("nd,de,ne->n", centred, precision, centred)


def relative_mahalanobis(train: np.ndarray, labels: np.ndarray):
    """The rmd scorer fitted on training features: min over classes of the class-conditional
    distance (shared covariance) minus the distance to all training features as one Gaussian."""
    means = np.stack([train[labels == c].mean(axis=0) for c in np.unique(labels)])
    _, precision = gaussian(train - means[labels])
    background = gaussian(train)
    return lambda f: (np.stack([mahalanobis(f, m, precision) for m in means], axis=1).min(axis=1)
                      - mahalanobis(f, *background))


def energy(logits: np.ndarray) -> np.ndarray:
    peak = logits.max(axis=1)
    return -(peak + np.log(np.exp(logits - peak[:, None]).sum(axis=1)))


def scorers(train_features: np.ndarray, labels: np.ndarray) -> dict:
    """Method name -> score(logits, features), each fitted on the training images."""
    rmd = relative_mahalanobis(train_features, labels)
    found = {"msp": lambda logits, _: 1 - softmax(logits).max(axis=1),
             "energy": lambda logits, _: energy(logits),
             "rmd": lambda _, features: rmd(features)}
    for k in (1, novelty.KNN_K, 50):
        fitted = novelty.fit(train_features, train_features[:1], k=k)
        found[f"knn k={k}"] = lambda _, features, fitted=fitted: fitted.score(features)
    return found


def far_ood_folder(dest: Path) -> Path:
    """dest/not_flowers/: the far-OOD photos, linked from where their packages put them."""
    import skimage.data

    folder = dest / "not_flowers"
    folder.mkdir(parents=True, exist_ok=True)
    sources = [Path("/usr/share/backgrounds") / name for name in WALLPAPERS]
    sources += [Path(skimage.data.__file__).parent / name for name in SKIMAGE]
    for source in sources:
        if not source.is_file():
            raise SystemExit(f"{source} is missing: apt-get install ukui-wallpapers "
                             "mate-backgrounds lomiri-wallpapers; pip install scikit-image")
        link = folder / source.name
        if not link.exists():
            link.symlink_to(source)
    return dest


def trained(data: Path, run: Path) -> None:
    """fast-transfer trained on `data` into `run`, unless it is there from an earlier run."""
    if not (run / "model" / "model.json").is_file():
        train(data, run)


def outputs(onnx_file: Path, chosen) -> tuple[np.ndarray, np.ndarray]:
    """Logits and penultimate features of the `chosen` photos: the ONNX engine's raw outputs
    (the baselines need the logits, which a Classifier's answer turns into probabilities)."""
    card, run_batch = onnx_runner(onnx_file)
    squares = decoded_squares(chosen, card.input.resize_size, progress=False)
    batches = [run_batch(to_input(central_crops(squares[i:i + 32], card.input.size), card.input))
               for i in range(0, len(squares), 32)]
    return tuple(np.concatenate([batch[k] for batch in batches]) for k in (0, 1))


def fold(run: Path, unknown_set, label: str) -> dict:
    """Every method on one model: its training images, validation images and unknowns."""
    started = time.perf_counter()
    onnx_file = export(run, "onnx").path
    card = petal.load(onnx_file).card
    train_set = split_set(run / "split.json", Path(card.data), "train", card.classes, {}, False)
    val_set = split_set(run / "split.json", Path(card.data), "val", card.classes, {}, False)
    train_logits, train_features = outputs(onnx_file, train_set)
    val_logits, val_features = outputs(onnx_file, val_set)
    unknown_logits, unknown_features = outputs(onnx_file, unknown_set)
    labels = np.array([card.classes.index(label) for _, label, _ in train_set.items])
    val_labels = np.array([card.classes.index(label) for _, label, _ in val_set.items])
    right = val_logits.argmax(axis=1) == val_labels
    result = {"fold": label, "known": len(val_labels), "unknown": len(unknown_logits),
              "accuracy": round(float(right.mean()), 6), "methods": {}}
    for name, score in scorers(train_features, labels).items():
        known = score(val_logits, val_features)
        unknown = score(unknown_logits, unknown_features)
        threshold = novelty.threshold_for(known, 0.95)
        kept = known <= threshold
        result["methods"][name] = {
            "auroc": round(auroc(known, unknown), 4),
            "fpr95": round(float((unknown <= threshold).mean()), 4),
            "known_kept": round(float(kept.mean()), 4),
            "accuracy_kept": round(float(right[kept].mean()), 6)}
    result["cost"] = cost(run, val_features)
    result["seconds"] = round(time.perf_counter() - started, 1)
    print(f"{label}: " + ", ".join(f"{name} {m['auroc']:.3f}/{m['fpr95']:.3f}"
                                   for name, m in result["methods"].items()), flush=True)
    return result


def cost(run: Path, features: np.ndarray) -> dict:
    """Milliseconds to score an image with the shipped score (alone, and in a batch of 32;
    the median of 50 runs) and the bytes it adds to the model folder."""
    stored = run / "model" / novelty.NOVELTY_FILE
    card = petal.load(run).card
    fitted = novelty.load(stored, card.novelty)
    timings = {}
    for batch in (1, 32):
        runs = []
        for _ in range(50):
            start = time.perf_counter()
            fitted.score(features[:batch])
            runs.append((time.perf_counter() - start) * 1000 / batch)
        timings[f"ms_per_image_batch_{batch}"] = round(float(np.median(runs)), 3)
    return {**timings, "novelty_file_bytes": stored.stat().st_size,
            "references": len(fitted.reference), "width": fitted.reference.shape[1]}


def summary(folds: list[dict]) -> dict:
    return {name: {key: round(float(np.mean([f["methods"][name][key] for f in folds])), 4)
                   for key in ("auroc", "fpr95", "accuracy_kept")}
            for name in folds[0]["methods"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=FLOWERS)
    parser.add_argument("--out", type=Path, default=ROOT / "runs" / "open_set")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    classes = sorted(p.name for p in args.data.iterdir() if p.is_dir())
    near = []
    for left_out in classes:
        others = [c for c in classes if c != left_out]
        run = args.out / f"without-{left_out}"
        trained(linked(args.data, args.out / f"data-without-{left_out}", classes=others), run)
        unknown = linked(args.data, args.out / f"data-only-{left_out}", classes=[left_out])
        near.append(fold(run, folder_set(unknown, [left_out], {}, False), f"without {left_out}"))
    trained(args.data, args.out / "all")
    far_data = far_ood_folder(args.out / "far")
    far_set = folder_set(far_data, ["not_flowers"], {}, False)
    far = fold(args.out / "all", far_set, "far-OOD")
    results = {"near_ood": {"folds": near, "mean": summary(near)}, "far_ood": far}
    print(f"\n{'method':<10} {'near AUROC':>10} {'near FPR95':>10} {'far AUROC':>9} "
          f"{'far FPR95':>9}")
    for name, mean in results["near_ood"]["mean"].items():
        f = far["methods"][name]
        print(f"{name:<10} {mean['auroc']:>10.3f} {mean['fpr95']:>10.3f} {f['auroc']:>9.3f} "
              f"{f['fpr95']:>9.3f}" + ("  (petal's)" if name == SHIPPED else ""))
    print(f"cost ({far['cost']['references']} references of width {far['cost']['width']}): "
          f"{far['cost']['ms_per_image_batch_1']} ms an image alone, "
          f"{far['cost']['ms_per_image_batch_32']} in a batch of 32; "
          f"{far['cost']['novelty_file_bytes'] / 1e6:.1f} MB in the model folder")
    if args.json:
        record(args.json, results, "novelty methods on fast-transfer: leave-one-class-out "
               "near-OOD per fold and mean, far-OOD (photos that are not flowers), accuracy of "
               "the kept photos, the cost of the shipped score")
    return 0


if __name__ == "__main__":
    sys.exit(main())
