"""What a trained network says of photos, as inference will compute it: logits and
penultimate features, from which the end of training fits the novelty score
(petal.inference.novelty) and the temperature (petal.train.calibration); and what
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
from petal.fsutil import atomic_write_bytes, read_limited
from petal.models.features import AnswerWithFeatures
from petal.models.spec import InputSpec
from petal.train.batches import eval_loader
from petal.train.module import ClassifierModule

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
            inputs = inputs.to(device)
            if images_in:
                inputs = module.normalised(inputs)
            elif inputs.dim() == 5:  # (N, views, C, H, W): the image, then its mirror
                inputs = inputs[:, 0]
            said = answer(inputs)
            logits.append(said[0].float().cpu().numpy())
            features.append(said[1].float().cpu().numpy())
            labels.append(np.asarray(targets))
    return np.concatenate(logits), np.concatenate(features), np.concatenate(labels)


@dataclass(frozen=True)
class OutOfFold:
    """What cross-validation's models said of the photos they did not train on, one row per
    photo: the ground on which a final model trained on every photo fits its unknown
    threshold and its temperature."""

    logits: np.ndarray  # (N, classes), before any calibration
    labels: np.ndarray  # (N,) class indices
    novelty: np.ndarray  # (N,) distance to the k-th nearest photo of the fold's training set

    def save(self, path: Path) -> None:
        atomic_write_bytes(path, save({"logits": self.logits.astype(np.float32),
                                       "labels": self.labels.astype(np.int64),
                                       "novelty": self.novelty.astype(np.float32)}))

    @classmethod
    def load(cls, path: Path) -> OutOfFold:
        """The arrays `save` wrote; PetalError for a missing or inconsistent file."""
        try:
            arrays = load(read_limited(path, MAX_OUT_OF_FOLD_BYTES))
        except (OSError, SafetensorError) as exc:
            raise PetalError(f"cannot read the out-of-fold predictions {path}: {exc}") from exc
        found = cls(arrays.get("logits", np.zeros((0, 0))), arrays.get("labels", np.zeros(0)),
                    arrays.get("novelty", np.zeros(0)))
        n = len(found.labels)
        if (found.logits.ndim != 2 or found.logits.shape[0] != n or found.novelty.shape != (n,)
                or not n or not np.isfinite(found.logits).all()
                or not np.isfinite(found.novelty).all()):
            raise PetalError(f"{path} does not hold the out-of-fold predictions petal wrote")
        return found
