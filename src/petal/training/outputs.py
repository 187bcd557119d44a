"""What a trained network says of photos, as inference will compute it: logits and
penultimate features, from which the end of training fits the novelty score
(petal.inference.novelty) and the temperature (petal.training.calibration); and what
cross-validation's models said of the photos each did not train on (OutOfFold), from which
a final model trained on every photo fits them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.numpy import load, save
from torch.utils.data import Dataset

from petal.errors import PetalError
from petal.fsutil import atomic_write_bytes, read_json, read_limited
from petal.models.features import AnswerWithFeatures
from petal.models.spec import InputSpec
from petal.training.batches import eval_loader
from petal.training.module import ClassifierModule

MAX_OUT_OF_FOLD_BYTES = 256 * 2**20  # a million photos of 60 classes


def collect_outputs(module: ClassifierModule, dataset: Dataset, spec: InputSpec,
                    batch_size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(logits (N, classes), penultimate features (N, D), labels (N,)) of `dataset` as
    inference computes them, before any calibration.

    Images (full mode) are fed as `spec` says; stored trunk features (cached mode) go
    through the top alone, from the first stored view of each image.
    """
    images_in = module.normalise
    if not images_in:
        spec = dataclasses.replace(spec, mirror=False)  # a mirror needs the photo, not features
    answer = AnswerWithFeatures(module.network.eval(), spec)
    device = next(module.network.parameters()).device
    logits, features, labels = [], [], []
    with torch.inference_mode():
        for inputs, targets in eval_loader(dataset, batch_size):
            if isinstance(inputs, list):  # stored features of several trunks
                inputs = [part.to(device) for part in inputs]
            elif images_in:
                inputs = module.normalised(inputs.to(device))
            elif inputs.dim() == 5:  # (N, views, C, H, W): the image, then its mirror
                inputs = inputs[:, 0].to(device)
            else:
                inputs = inputs.to(device)
            said = answer(inputs)
            logits.append(said[0].float().cpu().numpy())
            features.append(said[1].float().cpu().numpy())
            labels.append(np.asarray(targets))
    return np.concatenate(logits), np.concatenate(features), np.concatenate(labels)


@dataclass(frozen=True)
class OutOfFold:
    """What cross-validation's models said of the photos they did not train on, one row per
    photo: the ground on which a final model trained on every photo fits its unknown
    threshold and its temperature, and on which two recipes are compared photo by photo."""

    logits: np.ndarray  # (N, classes), before any calibration
    labels: np.ndarray  # (N,) class indices
    novelty: np.ndarray  # (N,) distance to the k-th nearest photo of the fold's training set
    photos: np.ndarray  # (N,) each row's photo: its place among the split's photos by path

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, save({"logits": self.logits.astype(np.float32),
                                       "labels": self.labels.astype(np.int64),
                                       "novelty": self.novelty.astype(np.float32),
                                       "photos": self.photos.astype(np.int64)}))

    @classmethod
    def load(cls, path: Path, classes: int, photos: int) -> OutOfFold:
        """The arrays `save` wrote for `photos` photos of `classes` classes; PetalError for a
        missing, damaged or foreign file (nothing in it is trusted unchecked)."""
        try:
            arrays = load(read_limited(path, MAX_OUT_OF_FOLD_BYTES))
        except (OSError, SafetensorError) as exc:
            raise PetalError(f"cannot read the out-of-fold predictions {path}: {exc}") from exc
        found = cls(*(arrays.get(name, np.zeros(0)) for name in
                      ("logits", "labels", "novelty", "photos")))
        if not _consistent(found, classes, photos):
            raise PetalError(f"{path} does not hold the out-of-fold predictions petal wrote for "
                             f"this run's {photos} photos of {classes} classes: train again")
        return found


def _consistent(found: OutOfFold, classes: int, photos: int) -> bool:
    """Whether `found` has one finite row per photo, each photo once, labels of the classes
    and novelty scores that are distances between unit vectors (0 to 2)."""
    integers = all(np.issubdtype(a.dtype, np.integer) for a in (found.labels, found.photos))
    return (integers and found.logits.shape == (photos, classes)
            and found.labels.shape == found.novelty.shape == found.photos.shape == (photos,)
            and bool(np.isfinite(found.logits).all()) and bool(np.isfinite(found.novelty).all())
            and bool(((found.labels >= 0) & (found.labels < classes)).all())
            and bool(((found.novelty >= 0) & (found.novelty <= 2.01)).all())
            and np.array_equal(np.sort(found.photos), np.arange(photos)))


def read_cross_validation(path: Path, photos: int) -> dict:
    """cross_validation.json as cross_validate wrote it for `photos` photos; PetalError for
    anything else. Its counts are checked against each other; its rates are not read but
    computed again from them (accuracy_of)."""
    try:
        data = read_json(path)
        folds, correct, sizes = data["folds"], data["correct"], data["n_val"]
        sound = (type(folds) is int and folds >= 2 and len(correct) == len(sizes) == folds
                 and all(type(c) is int and type(n) is int and 0 <= c <= n > 0
                         for c, n in zip(correct, sizes))
                 and sum(sizes) == photos and data["pooled"]["n_images"] == photos
                 and data["pooled"]["correct"] == sum(correct))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PetalError(f"{path} is not the cross-validation petal wrote ({exc!r}): train "
                         "again") from exc
    if not sound:
        raise PetalError(f"{path} is not the cross-validation petal wrote for this run's "
                         f"{photos} photos: train again")
    return data
