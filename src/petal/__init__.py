"""petal: a transfer-learning image classifier.

    import petal
    classifier = petal.load("runs/my-run")
    classifier.predict("photo.jpg").label

`petal.load`, `petal.Classifier` and `petal.Prediction` are the public API; importing petal
loads neither numpy nor torch until one of them is used.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from petal.version import __version__

if TYPE_CHECKING:
    from petal.inference.classifier import Classifier, Prediction

__all__ = ["Classifier", "Prediction", "__version__", "load"]


def load(path: str | os.PathLike, engine: str | None = None, threads: int | None = None,
         device: str | None = None) -> Classifier:
    """A ready-to-predict Classifier from a run folder, a model folder or an exported .onnx
    file; engine "torch" or "onnx", chosen from the path when not given; device "auto"
    (None: a GPU when one can be used), "cpu", "cuda" or "cuda:N"."""
    from petal.inference.classifier import load as load_classifier

    return load_classifier(path, engine=engine, threads=threads, device=device)


def __getattr__(name: str) -> object:
    """petal.Classifier and petal.Prediction, imported when first asked for (PEP 562)."""
    if name in ("Classifier", "Prediction"):
        from petal.inference import classifier

        return getattr(classifier, name)
    raise AttributeError(f"module 'petal' has no attribute {name!r}")
