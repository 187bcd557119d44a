"""Inference from a saved model: `petal.load(path).predict(...)`. Imports no training code.

    import petal
    clf = petal.load("runs/my-run")            # a run folder or its model/ folder
    clf.predict("rose.jpg")                    # Prediction(source, labels, probabilities)
    clf.predict([pil_image, rgb_array], top_k=3)

A model with a novelty score (petal.novelty; every model petal 0.2 trains) marks an image
unlike its training photos as `unknown`, with the classes still ranked; `keeping(share)`
moves the threshold, `keeping(None)` turns rejection off.
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
from petal.novelty import Novelty
from petal.preprocess import image_to_array, to_input

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


# (N, 3, size, size) float32 input -> (logits (N, classes), penultimate features (N, D)) and,
# for a network that has them, class activation maps (N, classes, h, w)
BatchRunner = Callable[[np.ndarray], tuple[np.ndarray, ...]]
# (N, 3, size, size) float32 input, (N,) classes -> Grad-CAM maps (N, h, w) of those classes
GradientMaps = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class Prediction:
    """The top-k classes of one image, most probable first; `unknown` when the image looks
    like none of them (its `novelty` is above the model's threshold)."""

    source: str
    labels: list[str]
    probabilities: list[float]
    unknown: bool = False
    novelty: float | None = None  # None: the model has no novelty score, or it is off

    @property
    def label(self) -> str:
        return self.labels[0]

    @property
    def probability(self) -> float:
        return self.probabilities[0]

    def to_json(self) -> dict:
        return {"source": self.source, "unknown": self.unknown,
                "novelty": None if self.novelty is None else round(self.novelty, 6),
                "top_k": [{"label": label, "probability": round(p, 6)}
                          for label, p in zip(self.labels, self.probabilities)]}


def _describe(image: ImageInput, position: int) -> str:
    if isinstance(image, (str, os.PathLike)):
        return str(image)
    return f"<{type(image).__name__} {position}>"


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


@dataclass(frozen=True)
class Answer:
    """What a model says of a batch of images."""

    probabilities: np.ndarray  # (N, classes)
    novelty: np.ndarray | None  # (N,); None without a novelty score
    maps: np.ndarray | None  # (N, classes, h, w) class activation maps; None without


class Classifier:
    """A trained model ready to predict, with its novelty score when it has one."""

    def __init__(self, card: ModelCard, run_batch: BatchRunner, engine: str,
                 novelty: Novelty | None = None, batch_size: int = 32,
                 gradient_maps: GradientMaps | None = None) -> None:
        self.card, self.engine, self.batch_size = card, engine, batch_size
        self.classes: list[str] = list(card.classes)
        self.spec = card.input
        self.novelty = novelty
        self._fitted_novelty = novelty
        self._run_batch = run_batch
        # for networks without class activation maps in their forward pass (torch only)
        self.gradient_maps = gradient_maps

    def keeping(self, keep: float | None) -> Classifier:
        """Reject as unknown all but `keep` of the validation images' novelty (None: reject
        nothing); returns self."""
        if keep is None:
            self.novelty = None
        elif self._fitted_novelty is None:
            raise PetalError("this model has no novelty score (trained before petal 0.2): "
                             "train it again to reject unknown photos")
        else:
            self.novelty = self._fitted_novelty.keeping(keep)
        return self

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

    def outputs(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(N, size, size, 3) uint8 -> (logits (N, classes), features (N, D), class activation
        maps (N, classes, h, w) or None where the network has none), in batches."""
        batches = [self._run_batch(to_input(arrays[start:start + self.batch_size], self.spec))
                   for start in range(0, len(arrays), self.batch_size)]
        if not batches:
            return np.zeros((0, len(self.classes)), np.float32), np.zeros((0, 0)), None
        logits, features = (np.concatenate([b[i] for b in batches]) for i in (0, 1))
        maps = np.concatenate([b[2] for b in batches]) if len(batches[0]) > 2 else None
        return logits, features, maps

    def answer(self, arrays: np.ndarray) -> Answer:
        """(N, size, size, 3) uint8 -> probabilities, novelty and class activation maps."""
        logits, features, maps = self.outputs(arrays)
        novelty = (self.novelty.score(features) if self.novelty is not None and len(logits)
                   else None)
        return Answer(softmax(logits), novelty, maps)

    def assess(self, arrays: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(N, size, size, 3) uint8 -> ((N, classes) probabilities, (N,) novelty or None)."""
        answer = self.answer(arrays)
        return answer.probabilities, answer.novelty

    def probabilities(self, arrays: np.ndarray) -> np.ndarray:
        """(N, size, size, 3) uint8 -> (N, classes) probabilities, in batches."""
        return self.assess(arrays)[0]

    def top_k(self, probabilities: np.ndarray, sources: Sequence[str], k: int,
              novelty: np.ndarray | None = None) -> list[Prediction]:
        k = max(1, min(k, len(self.classes)))
        order = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
        scores = [None] * len(sources) if novelty is None else [float(v) for v in novelty]
        threshold = self.novelty.threshold if self.novelty is not None else np.inf
        return [Prediction(source, [self.classes[i] for i in row], [float(p[i]) for i in row],
                           unknown=score is not None and score > threshold, novelty=score)
                for source, row, p, score in zip(sources, order, probabilities, scores)]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5
                ) -> Prediction | list[Prediction]:
        """Top-k labels with probabilities: one Prediction for one input, a list for a list."""
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        arrays = np.stack([self.prepare(image) for image in batch]) if batch else np.zeros(
            (0, self.spec.size, self.spec.size, 3), np.uint8)
        sources = [_describe(image, i) for i, image in enumerate(batch)]
        probabilities, novelty = self.assess(arrays)
        predictions = self.top_k(probabilities, sources, top_k, novelty)
        return predictions[0] if single else predictions


def _torch_runner(path: Path, threads: int | None
                  ) -> tuple[ModelCard, BatchRunner, GradientMaps | None]:
    import torch

    from petal.modelio import load_model
    from petal.models import cam_layers, gradcam_layer
    from petal.models.features import AnswerWithFeatures

    if threads:
        torch.set_num_threads(threads)
    network, card = load_model(path)
    cam = cam_layers(card.architecture["name"], network)
    model = AnswerWithFeatures(network, card.input, cam).to(memory_format=torch.channels_last)

    def run_batch(batch: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return tuple(output.float().numpy() for output in model(inputs))

    layer = gradcam_layer(card.architecture["name"], network) if cam is None else None
    return card, run_batch, _gradcam(network, layer) if layer is not None else None


def _gradcam(network: object, layer: object) -> GradientMaps:
    """Grad-CAM at `layer` through torchcam. torchcam rather than pytorch-grad-cam: it needs
    nothing petal does not install already (the other brings OpenCV, scikit-learn and SciPy)
    and hooks only while a map is being made."""
    import torch
    from torchcam.methods import GradCAM

    def maps(batch: np.ndarray, classes: np.ndarray) -> np.ndarray:
        with GradCAM(network, target_layer=layer) as extractor, torch.enable_grad():
            scores = network(torch.from_numpy(batch))
            found = extractor([int(c) for c in classes], scores, normalized=False)[0]
        return found.detach().float().numpy()

    return maps


def _model_novelty(path: str | os.PathLike, card: ModelCard) -> Novelty | None:
    """The novelty score of a model folder, or None for a model trained without one."""
    from petal import novelty
    from petal.run_folder import find_model_folder

    if card.novelty is None:
        return None
    return novelty.load(find_model_folder(path) / novelty.NOVELTY_FILE, card.novelty)


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
    gradient_maps = None
    if engine == "torch":
        card, run_batch, gradient_maps = _torch_runner(Path(path), threads)
        novelty = _model_novelty(path, card)
    elif engine == "onnx":
        from petal.onnx_engine import onnx_novelty, onnx_runner

        card, run_batch = onnx_runner(path, threads)
        novelty = onnx_novelty(path, card)
    else:
        raise PetalError(f"unknown engine {engine!r}: use torch or onnx")
    return Classifier(card, run_batch, engine, novelty, gradient_maps=gradient_maps)
