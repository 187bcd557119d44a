"""Inference from a saved model: `petal.load(path).predict(...)`. Imports no training code.

    import petal
    clf = petal.load("runs/my-run")            # a run folder or its model/ folder
    clf.predict("rose.jpg")                    # Prediction(source, labels, probabilities)
    clf.predict([pil_image, rgb_array], top_k=3)

A model with a novelty score (petal.inference.novelty; every model since petal 0.2) marks an image
unlike its training photos as `unknown`, with the classes still ranked; `keeping(share)`
moves the threshold, `keeping(None)` turns rejection off.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from petal.data.image import ImageLoadError, load_image
from petal.errors import PetalError, PetalWarning
from petal.inference.engine import BatchRunner, GradientMaps
from petal.inference.model_folder import ModelCard
from petal.inference.novelty import Novelty
from petal.inference.preprocess import image_to_array, to_input
from petal.inference.shift import MIN_PHOTOS, ShiftCheck, check_shift
from petal.log import SIDE_NOTE
from petal.run_folder import find_model_folder
from petal.stats import softmax

log = logging.getLogger(__name__)

ImageInput = str | os.PathLike | bytes | Image.Image | np.ndarray


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


@dataclass(frozen=True)
class Answer:
    """What a model says of a batch of images."""

    probabilities: np.ndarray  # (N, classes)
    features: np.ndarray  # (N, D) penultimate features, what the novelty score reads
    novelty: np.ndarray | None  # (N,); None without a novelty score
    maps: np.ndarray | None  # (N, classes, h, w) class activation maps; None without

    def row(self, i: int) -> Answer:
        """The answer for image `i` alone (a batch of one)."""
        return Answer(*(None if v is None else v[i:i + 1] for v in
                        (self.probabilities, self.features, self.novelty, self.maps)))


class Classifier:
    """A trained model ready to predict, with its novelty score when it has one.

    The steps, for a caller who needs them apart: `prepare` (any image -> the array the model
    sees), `answer` (arrays -> probabilities, features, novelty, maps), `top_k` (an answer ->
    Predictions); `predict` does all three.
    """

    def __init__(self, card: ModelCard, run_batch: BatchRunner, engine: str,
                 novelty: Novelty | None = None, batch_size: int = 32,
                 gradient_maps: GradientMaps | None = None, device: str = "cpu") -> None:
        self.card, self.engine, self.batch_size = card, engine, batch_size
        self.device = device  # "cpu" or "cuda:N" (petal.inference.device)
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

    def answer(self, arrays: np.ndarray) -> Answer:
        """(N, size, size, 3) uint8 -> probabilities, features, novelty and class activation
        maps, run in batches of `batch_size`."""
        batches = [self._run_batch(to_input(arrays[start:start + self.batch_size], self.spec))
                   for start in range(0, len(arrays), self.batch_size)]
        if not batches:
            return Answer(np.zeros((0, len(self.classes)), np.float32), np.zeros((0, 0)),
                          None, None)
        logits, features = (np.concatenate([b[i] for b in batches]) for i in (0, 1))
        maps = np.concatenate([b[2] for b in batches]) if len(batches[0]) > 2 else None
        novelty = self.novelty.score(features) if self.novelty is not None else None
        return Answer(softmax(logits), features, novelty, maps)

    def top_k(self, answer: Answer, sources: Sequence[str], k: int) -> list[Prediction]:
        """The `k` most probable classes of each image of `answer`, named by `sources`, and
        whether it is unknown."""
        k = max(1, min(k, len(self.classes)))
        order = np.argsort(-answer.probabilities, axis=1, kind="stable")[:, :k]
        scores = ([None] * len(sources) if answer.novelty is None
                  else [float(v) for v in answer.novelty])
        threshold = self.novelty.threshold if self.novelty is not None else np.inf
        return [Prediction(source, [self.classes[i] for i in row], [float(p[i]) for i in row],
                           unknown=score is not None and score > threshold, novelty=score)
                for source, row, p, score in zip(sources, order, answer.probabilities, scores)]

    def predict(self, images: ImageInput | Sequence[ImageInput], top_k: int = 5
                ) -> Prediction | list[Prediction]:
        """Top-k labels with probabilities: one Prediction for one input, a list for a list.
        A list of MIN_PHOTOS or more that is less like the training photos than the held-out
        photos behind the card's figures (`shift`) warns so (PetalWarning)."""
        single = not isinstance(images, (list, tuple))
        batch = [images] if single else list(images)
        arrays = np.stack([self.prepare(image) for image in batch]) if batch else np.zeros(
            (0, self.spec.size, self.spec.size, 3), np.uint8)
        sources = [_describe(image, i) for i, image in enumerate(batch)]
        predictions = self.top_k(self.answer(arrays), sources, top_k)
        if single:
            return predictions[0]
        shift = self.shift(predictions) if len(predictions) >= MIN_PHOTOS else None
        if shift is not None and shift.shifted:
            warnings.warn(shift.message(), PetalWarning, stacklevel=2)
        return predictions

    @property
    def shift_unavailable(self) -> str | None:
        """Why `shift` cannot check this model's answers, in a line; None when it can."""
        if self.novelty is None:
            return "it calls nothing unknown (no novelty score, or --no-reject)"
        if self.card.novelty_from_other_models:
            return ("its held-out novelty scores come from its cross-validation's networks, "
                    "which see photos otherwise than the final network (a recipe that trains "
                    "the whole network)")
        return None

    def shift(self, predictions: Sequence[Prediction]) -> ShiftCheck | None:
        """Whether the photos of `predictions` are less like the training photos than the
        held-out photos behind the card's figures (petal.inference.shift): `.shifted`,
        `.message()`; None when the model rejects nothing (no novelty score, or keeping(None)),
        or when its held-out scores came from other networks (`shift_unavailable`)."""
        scores = [p.novelty for p in predictions if p.novelty is not None]
        if len(scores) < len(predictions):
            return None
        return self.shift_of(np.array(scores, np.float32))

    def shift_of(self, scores: np.ndarray) -> ShiftCheck | None:
        """`shift` of photos given by their novelty scores alone (a run too large to keep
        its predictions)."""
        if self.novelty is None or self.card.novelty_from_other_models:
            return None
        return check_shift(np.asarray(scores), self.novelty.val_scores, self.novelty.threshold)


def load(path: str | os.PathLike, engine: str | None = None, threads: int | None = None,
         device: str | None = None) -> Classifier:
    """A Classifier from a run folder or model folder (engine "torch"), or from an exported
    ONNX file on ONNX Runtime, without torch (engine "onnx"; a folder means its model.onnx).

    With no engine, a path ending in .onnx runs on ONNX Runtime, and a folder on ONNX
    Runtime too, through its own export, made on first use (petal.inference.auto_engine);
    a network explained by Grad-CAM, or one whose export cannot be made, runs on torch.
    `device`: "auto" (None), "cpu", "cuda" or "cuda:N" (petal.inference.device); on a GPU
    that ONNX Runtime cannot drive, the default engine is torch.
    """
    from petal.inference.device import CPU, describe_device, resolve_device

    is_onnx_file = Path(path).suffix.lower() == ".onnx"
    device = resolve_device(device, "onnx" if is_onnx_file else engine)
    if not is_onnx_file:
        path = find_model_folder(path)  # once: every step below is handed the folder
    if engine is None and not is_onnx_file:
        from petal.inference.auto_engine import chosen_engine

        engine, path = chosen_engine(path, device)
    engine = engine or "onnx"
    if engine == "torch" and is_onnx_file:
        raise PetalError(f"{path} is an ONNX file: load it with engine onnx")
    if is_onnx_file:
        from petal.inference.auto_engine import warn_if_stale

        warn_if_stale(Path(path))
    gradient_maps = None
    if engine == "torch":  # each engine imported only when used: ONNX Runtime needs no torch
        from petal.inference.torch_engine import torch_novelty, torch_runner

        card, run_batch, gradient_maps = torch_runner(path, threads, device)
        novelty = torch_novelty(path, card)
    elif engine == "onnx":
        from petal.inference.onnx_engine import onnx_novelty, onnx_runner

        card, run_batch = onnx_runner(path, threads, device)
        novelty = onnx_novelty(path, card)
    else:
        raise PetalError(f"unknown engine {engine!r}: use torch or onnx")
    if device != CPU:  # a CPU is what a user expects; anything else is said
        log.info(f"Running {path} on {describe_device(device)} ({engine})", extra=SIDE_NOTE)
    return Classifier(card, run_batch, engine, novelty, gradient_maps=gradient_maps,
                      device=device)
