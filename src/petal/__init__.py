"""petal: a transfer-learning image classifier.

    import petal
    classifier = petal.load("runs/my-run")
    classifier.predict("photo.jpg").label
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

__version__ = "0.2.0"

if TYPE_CHECKING:
    from petal.predict import Classifier


def load(path: str | os.PathLike, engine: str | None = None, threads: int | None = None
         ) -> Classifier:
    """A ready-to-predict Classifier from a run folder, a model folder or an exported .onnx
    file; engine "torch" or "onnx", chosen from the path when not given (see petal.predict)."""
    from petal.predict import load as load_classifier

    return load_classifier(path, engine=engine, threads=threads)
