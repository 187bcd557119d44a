"""From a decoded image to a model input: the same steps in training, evaluation and prediction.

NumPy only, so the ONNX Runtime path runs without torch.
"""

from __future__ import annotations

import numpy as np
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


def scale_and_shift(spec: InputSpec) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (scale, shift) with normalised = uint8 * scale + shift, shaped (1, 3, 1, 1)."""
    std = np.asarray(spec.std, dtype=np.float32) * 255
    mean = np.asarray(spec.mean, dtype=np.float32) * 255
    return (1 / std).reshape(1, 3, 1, 1), (-mean / std).reshape(1, 3, 1, 1)


def to_input(images: np.ndarray, spec: InputSpec) -> np.ndarray:
    """uint8 (N, H, W, 3) -> float32 (N, 3, H, W), normalised with the model's mean and std."""
    scale, shift = (a.reshape(3) for a in scale_and_shift(spec))
    planes = images.transpose(0, 3, 1, 2)
    # One channel plane at a time into a contiguous output: measured 15x faster on this CPU
    # than normalising the transposed array whole (which keeps the channels-last layout
    # and left ONNX Runtime waiting on preprocessing).
    out = np.empty(planes.shape, dtype=np.float32)
    for channel in range(3):
        np.multiply(planes[:, channel], scale[channel], out=out[:, channel], dtype=np.float32)
        out[:, channel] += shift[channel]
    return out
