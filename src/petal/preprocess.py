"""From a decoded image to a model input: the same steps in training, evaluation and prediction."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from petal.data.image import resize_and_center_crop
from petal.models.spec import InputSpec


def center_crop(square: np.ndarray, size: int) -> np.ndarray:
    """The central size x size part of an (S, S, 3) array."""
    offset = (square.shape[0] - size) // 2
    return square[offset:offset + size, offset:offset + size]


def image_to_array(image: Image.Image, spec: InputSpec) -> np.ndarray:
    """An RGB image as the model sees it at evaluation time: (size, size, 3) uint8.

    Identical to a decoded-cache row (resize the shorter side, central square) followed by
    the evaluation crop, so a photo predicted from disk matches the validation pixels.
    """
    square = np.asarray(resize_and_center_crop(image, spec.resize_size), dtype=np.uint8)
    return center_crop(square, spec.size)


def normalize(images: torch.Tensor, spec: InputSpec) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float32 normalised with the model's mean and std."""
    mean = torch.tensor(spec.mean, device=images.device).view(1, 3, 1, 1) * 255
    std = torch.tensor(spec.std, device=images.device).view(1, 3, 1, 1) * 255
    return (images.float() - mean) / std
