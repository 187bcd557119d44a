"""Inference from a saved model: `petal.load(path).predict(...)`. Imports no training code.

    import petal
    clf = petal.load("runs/my-run")            # a run folder or its model/ folder
    clf.predict("rose.jpg")                    # Prediction(source, labels, probabilities)
    clf.predict([pil_image, rgb_array], top_k=3)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from petal.data.image import ImageLoadError, load_image
from petal.errors import PetalError
from petal.modelio import ModelCard
from petal.preprocess import image_to_array, to_input

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, most probable first."""

    source: str
    labels: list[str]
    probabilities: list[float]

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_json(self) -> dict:
        return {"source": self.source,
                "top_k": [{"label": label, "probability": round(p, 6)}
                          for label, p in zip(self.labels, self.probabilities)]}


def _describe(image: ImageInput, position: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return f"<{type(image).__name__} {position}>"


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class Classifier:
    """A trained model ready to predict; `run_batch` maps float32 NCHW inputs to logits."""

    def __init__(self, card: ModelCard, run_batch: Callable[[np.ndarray], np.ndarray],
                 engine: str, batch_size: int = 32) -> None:
        self.card, self.engine, self.batch_size = card, engine, batch_size
        self.classes: list[str] = list(card.classes)
        self.spec = card.input
        self._run_batch = run_batch

    def prepare(self, image: ImageInput) -> np.ndarray:
        """Any supported input -> the (size, size, 3) uint8 array the model sees.

        Raises ImageLoadError for a file or array that is not a usable RGB image.
        """
        if isinstance(image, np.ndarray):
            if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
                raise ImageLoadError("unsupported_array", "arrays must be H x W x 3 uint8 RGB, "
                                     f"got shape {image.shape} dtype {image.dtype}")
            image = Image.fromarray(image)
        return image_to_array(load_image(image, min_size=self.spec.resize_size), self.spec)

    def probabilities(self, arrays: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8 -> (N, classes) probabilities, in batches."""
        out = [_softmax(self._run_batch(to_input(arrays[i:i + self.batch_size], self.spec)))
               for i in range(0, len(arrays), self.batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.classes)), np.float32)

    def top_k(self, probabilities: np.ndarray, sources: Sequence[str], k: int) -> list[Prediction]:
        k = max(1, min(k, len(self.classes)))
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        return [Prediction(source, [self.classes[i] for i in row], [float(p[i]) for i in row])
                for source, row, p in zip(sources, order, probabilities)]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5
                ) -> Prediction | list[Prediction]:
        """Top-k labels with probabilities: one Prediction for one input, a list for a list."""
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        arrays = np.stack([self.prepare(image) for image in batch]) if batch else np.zeros(
            (0, self.spec.size, self.spec.size, 3), np.uint8)
        sources = [_describe(image, i) for i, image in enumerate(batch)]
        predictions = self.top_k(self.probabilities(arrays), sources, top_k)
        return predictions[0] if single else predictions


def _torch_runner(path: Path, threads: int | None) -> tuple[ModelCard, Callable]:
    import torch

    from petal.modelio import load_model
    from petal.models.mirror import answering

    if threads:
        torch.set_num_threads(threads)
    model, card = load_model(path)
    model = answering(model, card.input).to(memory_format=torch.channels_last)

    def run_batch(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return model(inputs).float().numpy()

    return card, run_batch


def load(path: str | os.PathLike, engine: str | None = None, threads: int | None = None
         ) -> Classifier:
    """A Classifier from a run folder or model folder (engine "torch"), or from an exported
    ONNX file on ONNX Runtime, without torch (engine "onnx"; a folder means its model.onnx).

    With no engine, a path ending in .onnx runs on ONNX Runtime and anything else on torch.
    """
    is_onnx_file = Path(path).suffix.lower() == ".onnx"
    engine = engine or ("onnx" if is_onnx_file else "torch")
    if engine == "torch" and is_onnx_file:
        raise PetalError(f"{path} is an ONNX file: load it with engine onnx")
    if engine == "torch":
        card, run_batch = _torch_runner(Path(path), threads)
    elif engine == "onnx":
        from petal.onnx_engine import onnx_runner

        card, run_batch = onnx_runner(path, threads)
    else:
        raise PetalError(f"unknown engine {engine!r}: use torch or onnx")
    return Classifier(card, run_batch, engine)
