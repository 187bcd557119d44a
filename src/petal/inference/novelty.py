"""Novelty: how unlike a model's training photos an image is, and the threshold above which
petal answers "unknown" instead of naming a class. NumPy only: torch, ONNX Runtime and the
server compute it the same way, from the penultimate features of each image
(petal.models.features).

The score is the distance from the image's L2-normalised features to those of its k-th
nearest training image, k = 10 (Sun et al. 2022, "Out-of-distribution detection with deep
nearest neighbors"); the training features are stored as float16. benchmarks/open_set.py
compared it with the maximum softmax probability, energy and relative Mahalanobis distance
(docs/RESULTS.md): on photos that are not flowers it let through a third as many as the
best of them with 95 % of known photos kept; on flower species never trained on, no method
was clearly better (the five left-out classes differ more than the methods do). It is the
only method petal ships.

The threshold keeps a chosen share (`keep`, default 95 %) of the validation images: their
scores are stored, so another share is a quantile away, with no retraining.

A model folder holds the method's arrays in novelty.safetensors and its settings in
model.json's `novelty`; both are checked before use, and nothing is unpickled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from petal.errors import PetalError

NOVELTY_FILE = "novelty.safetensors"
METHOD = "knn"
DEFAULT_KEEP = 0.95
KNN_K = 10
MAX_REFERENCE = 20_000  # training images kept for knn (a deterministic subsample beyond)
CHUNK = 512  # images scored at once: bounds the (images x references) distance matrix
MAX_FILE_BYTES = 512 * 2**20  # 20,000 float16 references of width 12,800


def l2_normalised(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


def knn_distance(features: np.ndarray, reference: np.ndarray, k: int) -> np.ndarray:
    """Distance of each normalised feature row to its k-th nearest reference row."""
    queries, k = l2_normalised(features), min(k, len(reference))
    out = []
    for start in range(0, len(queries), CHUNK):
        similarity = queries[start:start + CHUNK] @ reference.T
        kth = -np.partition(-similarity, k - 1, axis=1)[:, k - 1]
        out.append(np.sqrt(np.clip(2 - 2 * kth, 0, None)))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


@dataclass(frozen=True)
class Novelty:
    """A fitted novelty score and its threshold."""

    reference: np.ndarray  # (M, D) L2-normalised features of the training images
    val_scores: np.ndarray  # of the validation images: thresholds for any share
    keep: float = DEFAULT_KEEP
    k: int = KNN_K
    method: str = METHOD

    @property
    def threshold(self) -> float:
        return threshold_for(self.val_scores, self.keep)

    def keeping(self, keep: float) -> Novelty:
        """The same score with the threshold that keeps `keep` of the validation images."""
        check_keep(keep)
        return replace(self, keep=keep)

    def score(self, features: np.ndarray) -> np.ndarray:
        """Novelty of each image (higher = more unlike the training photos)."""
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != self.reference.shape[1]:
            raise PetalError(f"the novelty score was fitted on features of width "
                             f"{self.reference.shape[1]}, but the network gives "
                             f"{features.shape[1:]}: the model's files do not belong together")
        return knn_distance(features, self.reference, self.k)

    def settings(self) -> dict:
        """model.json's `novelty`."""
        return {"method": self.method, "keep": self.keep, "k": self.k,
                "threshold": round(self.threshold, 6), "n_val": int(len(self.val_scores)),
                "file": NOVELTY_FILE}

    def tensors(self) -> dict[str, np.ndarray]:
        """novelty.safetensors."""
        return {"reference": self.reference.astype(np.float16),
                "val_scores": self.val_scores.astype(np.float32)}


def check_keep(keep: float) -> None:
    if isinstance(keep, bool) or not isinstance(keep, (int, float)) or not 0 < keep <= 1:
        raise PetalError(f"keep {keep!r}: give the share of known images to keep, "
                         "above 0 and at most 1 (e.g. 0.95)")


def threshold_for(val_scores: np.ndarray, keep: float) -> float:
    """The score at or below which `keep` of the validation images lie."""
    if len(val_scores) == 0:
        return math.inf
    return float(np.quantile(val_scores, keep, method="higher"))


def reference_features(features: np.ndarray) -> np.ndarray:
    """The training features as stored: normalised, rounded to float16, at most
    MAX_REFERENCE of them (a fixed subsample beyond)."""
    if len(features) > MAX_REFERENCE:
        rows = np.random.default_rng(0).choice(len(features), MAX_REFERENCE, replace=False)
        features = features[np.sort(rows)]
    return l2_normalised(features).astype(np.float16).astype(np.float32)


def fit(train_features: np.ndarray, val_features: np.ndarray, keep: float = DEFAULT_KEEP,
        k: int = KNN_K) -> Novelty:
    """A novelty score fitted on the training images, its threshold on the validation ones."""
    check_keep(keep)
    reference = reference_features(train_features)
    k = min(k, len(reference))  # a training set of fewer images than k
    return Novelty(reference, knn_distance(val_features, reference, k).astype(np.float32),
                   keep, k)


def with_scores(train_features: np.ndarray, val_scores: np.ndarray, keep: float = DEFAULT_KEEP,
                k: int = KNN_K) -> Novelty:
    """A novelty score whose reference is `train_features` and whose threshold comes from
    scores computed elsewhere: out-of-fold ones, each photo scored by a model that never
    trained on it (petal.training.cross_validate)."""
    check_keep(keep)
    reference = reference_features(train_features)
    return Novelty(reference, np.asarray(val_scores, np.float32), keep, min(k, len(reference)))


def unknown_share(n: int, keep: float, draws: int = 200_000) -> tuple[float, float, float]:
    """The share of new photos of the known classes that a threshold set to keep `keep` of
    `n` held-out photos calls unknown: (expected, 95 % interval low, high).

    The threshold is the k-th smallest of n scores (threshold_for); for a new photo of the
    same kind the chance of scoring above it is Beta(n + 1 - k, k) distributed, whatever the
    scores' distribution (order statistics), with mean (n + 1 - k) / (n + 1). Its quantiles
    are drawn rather than computed: NumPy has the Beta distribution, not its inverse.
    """
    if n == 0:
        return 0.0, 0.0, 0.0
    k = int(np.ceil(keep * (n - 1))) + 1  # np.quantile(method="higher")'s rank, from 1
    draws_of = np.random.default_rng(0).beta(n + 1 - k, k, draws)
    low, high = np.quantile(draws_of, [0.025, 0.975])
    return (n + 1 - k) / (n + 1), float(low), float(high)


def load(path: Path, settings: dict) -> Novelty:
    """The novelty score in `path` (a model folder's novelty.safetensors, or the one beside
    an exported file), with model.json's `novelty` settings; PetalError unless both describe
    a usable score."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    method, keep, k = settings.get("method"), settings.get("keep"), settings.get("k")
    if method != METHOD or not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise PetalError(f"{path}: the model card's novelty {settings!r} is not one petal wrote")
    check_keep(keep)
    try:
        if not path.is_file() or path.stat().st_size > MAX_FILE_BYTES:
            raise PetalError(f"{path} is missing, not a regular file, or over "
                             f"{MAX_FILE_BYTES // 2**20} MiB: not a novelty score petal wrote")
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise PetalError(f"cannot read the novelty score {path}: {exc}") from exc
    if (set(tensors) != {"reference", "val_scores"} or tensors["reference"].ndim != 2
            or tensors["val_scores"].ndim != 1 or not len(tensors["reference"])):
        raise PetalError(f"{path} does not hold a novelty score petal wrote "
                         f"(found {', '.join(sorted(tensors)) or 'nothing'})")
    reference = tensors["reference"].astype(np.float32)
    val_scores = tensors["val_scores"].astype(np.float32)
    _check_arrays(path, reference, val_scores, k)
    return Novelty(reference, val_scores, float(keep), k)


def _check_arrays(path: Path, reference: np.ndarray, val_scores: np.ndarray, k: int) -> None:
    """PetalError unless the arrays are what `fit` writes: finite reference rows of unit
    length (or zero; float16's rounding allowed), validation scores that are distances
    between such rows, and at least k reference rows.
    A NaN would make every score NaN (never unknown, and not JSON); a k past the reference,
    or a reference of other lengths, every photo unknown."""
    norms = np.linalg.norm(reference, axis=1)
    unnormalised = (np.abs(norms - 1) > 1e-2) & (norms != 0)  # an all-zero feature stays zero
    if not np.isfinite(reference).all() or unnormalised.any():
        raise PetalError(f"{path}: the reference features are not the unit-length, finite "
                         "features petal stores: not a novelty score petal wrote")
    if not np.isfinite(val_scores).all() or (val_scores < 0).any() or (val_scores > 2.01).any():
        raise PetalError(f"{path}: the validation scores are not distances between unit "
                         "vectors (finite, 0 to 2): not a novelty score petal wrote")
    if k > len(reference):
        raise PetalError(f"{path}: k = {k} nearest of {len(reference)} reference images: the "
                         "model card and its novelty file do not belong together")
