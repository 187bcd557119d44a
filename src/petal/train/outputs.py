"""What a trained network says of a set of photos, as inference will compute it: logits and
penultimate features, from which the end of training fits the novelty score
(petal.inference.novelty) and the temperature (petal.train.calibration)."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch
from torch.utils.data import Dataset

from petal.models.features import AnswerWithFeatures
from petal.models.spec import InputSpec
from petal.train.batches import eval_loader
from petal.train.module import ClassifierModule


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
