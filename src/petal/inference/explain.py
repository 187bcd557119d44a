"""Where a model looked: its class activation map for a class, drawn over the photo.

The maps come out of the network's forward pass (petal.models.features: the last feature map
weighted by the class's row of the linear head), from torch or from an exported ONNX file
alike; a network with another head is explained by Grad-CAM through torch
(`Classifier.gradient_maps`). Here the maps are cut to the positive evidence, scaled to
[0, 1] and resized to the model's input; NumPy and Pillow only, so explaining with an ONNX
file needs no torch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from PIL import Image

from petal.errors import PetalError
from petal.inference.classifier import Answer, Classifier
from petal.inference.preprocess import to_input


class NoMaps(PetalError):
    """The network has no class activation maps (or its export predates them)."""


OVERLAY_ALPHA = 0.5  # share of the heat map's colour over the photo where it is hottest


def class_index(classifier: Classifier, label: str | None) -> int | None:
    """The index of `label` among the model's classes (None: each image's top class)."""
    if label is None:
        return None
    if label not in classifier.classes:
        raise PetalError(f"unknown class {label!r}: the model's classes are "
                         f"{', '.join(classifier.classes)}")
    return classifier.classes.index(label)


@dataclass(frozen=True)
class Explained:
    """Images explained in one forward pass."""

    heat: np.ndarray  # (N, size, size) in [0, 1]: the explained class's map over each image
    explained: np.ndarray  # (N,) the class each map is of
    answer: Answer  # everything else the model said of them


def heat_maps(classifier: Classifier, arrays: np.ndarray, target: int | None = None
              ) -> Explained:
    """Model inputs (N, size, size, 3) uint8 explained; `target` None explains each image's
    top class. A network without maps in its forward pass is explained by Grad-CAM, through
    torch (`Classifier.gradient_maps`)."""
    answer = classifier.answer(arrays)
    if answer.maps is None and classifier.gradient_maps is not None and len(arrays):
        classes = _explained(answer, target)
        found = classifier.gradient_maps(to_input(arrays, classifier.spec), classes)
        maps = np.zeros((len(arrays), len(classifier.classes), *found.shape[1:]), np.float32)
        maps[np.arange(len(arrays)), classes] = found
        answer = dataclasses.replace(answer, maps=maps)
    return explain_answer(classifier, answer, target)


def _explained(answer: Answer, target: int | None) -> np.ndarray:
    """The class explained for each image: `target`, else its top class."""
    count = len(answer.probabilities)
    return answer.probabilities.argmax(axis=1) if target is None else np.full(count, target)


def explain_answer(classifier: Classifier, answer: Answer, target: int | None = None
                   ) -> Explained:
    """The heat maps of an answer already given (`target` None: each image's top class)."""
    if answer.maps is None:
        raise NoMaps(f"petal has no class activation map for "
                     f"{classifier.card.architecture.get('name')}: it does not end in global "
                     "pooling and a linear layer, and Grad-CAM (torch only) knows no layer "
                     "of it to read (an exported ONNX file carries maps only for networks "
                     "with a pooled linear head, exported by petal 0.2 or later)")
    explained = _explained(answer, target)
    size = classifier.spec.size
    heat = [resized_heat(np.maximum(answer.maps[i, c], 0), size) for i, c in enumerate(explained)]
    return Explained(np.stack(heat) if heat else np.zeros((0, size, size)), explained, answer)


def resized_heat(cam: np.ndarray, size: int) -> np.ndarray:
    """A map scaled to [0, 1] (a map with no positive evidence stays 0) and resized bilinearly."""
    peak = float(cam.max())
    scaled = cam / peak if peak > 0 else np.zeros_like(cam)
    image = Image.fromarray(scaled.astype(np.float32), mode="F")
    return np.asarray(image.resize((size, size), Image.Resampling.BILINEAR)).clip(0, 1)


def overlay(photo: np.ndarray, heat: np.ndarray) -> np.ndarray:
    """The photo (size, size, 3) uint8 with the heat map over it in matplotlib's "jet" colours,
    more opaque where hotter, so cold regions keep the photo visible."""
    from matplotlib import colormaps

    colours = colormaps["jet"](heat)[..., :3] * 255
    weight = OVERLAY_ALPHA * heat[..., None]
    return (photo * (1 - weight) + colours * weight).round().astype(np.uint8)


def overlays(classifier: Classifier, arrays: np.ndarray, target: int | None = None
             ) -> list[np.ndarray]:
    """Each input with the heat map of its explained class over it."""
    return [overlay(photo, heat) for photo, heat in
            zip(arrays, heat_maps(classifier, arrays, target).heat)]


def overlays_if_any(classifier: Classifier, arrays: np.ndarray) -> list[np.ndarray] | None:
    """`overlays` of each image's top class, or None for a model without maps."""
    try:
        return overlays(classifier, arrays)
    except NoMaps:
        return None
