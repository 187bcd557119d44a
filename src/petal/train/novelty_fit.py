"""Fit the novelty score (petal.inference.novelty) at the end of training: the trained network's
features of the training images as inference will see them, and the scores of the validation
images, from which the threshold is drawn."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.utils.data import Dataset

from petal.inference import novelty
from petal.models.features import AnswerWithFeatures
from petal.models.spec import InputSpec
from petal.train.batches import eval_loader
from petal.train.module import ClassifierModule


def collect_features(module: ClassifierModule, dataset: Dataset, spec: InputSpec,
                     batch_size: int) -> np.ndarray:
    """The penultimate features (N, D) of `dataset` as inference computes them.

    Images (full mode) are fed as `spec` says; stored trunk features (cached mode) go
    through the top alone, from the first stored view of each image.
    """
    images_in = module.normalise
    if not images_in:
        spec = dataclasses.replace(spec, mirror=False)  # a mirror needs the photo, not features
    answer = AnswerWithFeatures(module.network.eval(), spec)
    device = next(module.network.parameters()).device
    features = []
    with torch.inference_mode():
        for inputs, _ in eval_loader(dataset, batch_size):
            inputs = inputs.to(device)
            if images_in:
                inputs = module.normalised(inputs)
            elif inputs.dim() == 5:  # (N, views, C, H, W): the image, then its mirror
                inputs = inputs[:, 0]
            features.append(answer(inputs)[1].float().cpu().numpy())
    return np.concatenate(features)


def fit_novelty(module: ClassifierModule, reference_set: Dataset, val_set: Dataset,
                spec: InputSpec, batch_size: int) -> novelty.Novelty:
    """The novelty score, fitted on `reference_set` (the training images as inference sees
    them), its threshold on `val_set`."""
    return novelty.fit(collect_features(module, reference_set, spec, batch_size),
                       collect_features(module, val_set, spec, batch_size))
