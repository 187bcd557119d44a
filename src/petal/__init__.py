"""petal: a transfer-learning image classifier, from Python as from the command line.

    import petal
    run = petal.train("photos/", out="runs/mine")   # a Run: .accuracy, .history, .plot()
    petal.evaluate(run)                             # an Evaluation
    petal.load(run).predict("photo.jpg").label

The verbs (check, split, pack, train, lr_find, evaluate, predict, review, compare, explain,
export, run, load) are petal.api's; the types they return are named here too. Importing petal loads
neither numpy nor torch: each name is imported when first used (PEP 562).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from petal.errors import PetalError, PetalWarning
from petal.version import __version__

if TYPE_CHECKING:
    from petal.api import (  # noqa: F401
        check,
        compare,
        evaluate,
        explain,
        export,
        load,
        lr_find,
        pack,
        predict,
        review,
        run,
        split,
        train,
    )
    from petal.data.check import DataCheck  # noqa: F401
    from petal.data.shards import Packed  # noqa: F401
    from petal.data.split import Split  # noqa: F401
    from petal.inference.classifier import Classifier, Prediction  # noqa: F401
    from petal.inference.export import Export  # noqa: F401
    from petal.jobs.compare import Comparison  # noqa: F401
    from petal.jobs.evaluate import Evaluation  # noqa: F401
    from petal.jobs.explain import Explanation  # noqa: F401
    from petal.jobs.main_job import MainJob  # noqa: F401
    from petal.jobs.predict import PredictionFile  # noqa: F401
    from petal.jobs.review import Review  # noqa: F401
    from petal.jobs.run import Run  # noqa: F401
    from petal.training.lr_range import LRFinding  # noqa: F401

_WHERE = {
    **dict.fromkeys(("check", "split", "pack", "train", "lr_find", "evaluate", "predict",
                     "review", "compare", "explain", "export", "run", "load"), "petal.api"),
    "Explanation": "petal.jobs.explain",
    "Classifier": "petal.inference.classifier", "Prediction": "petal.inference.classifier",
    "DataCheck": "petal.data.check", "Split": "petal.data.split", "Packed": "petal.data.shards",
    "Export": "petal.inference.export",
    "Comparison": "petal.jobs.compare", "Evaluation": "petal.jobs.evaluate",
    "MainJob": "petal.jobs.main_job", "PredictionFile": "petal.jobs.predict",
    "Review": "petal.jobs.review", "Run": "petal.jobs.run",
    "LRFinding": "petal.training.lr_range",
}

__all__ = ["PetalError", "PetalWarning", "__version__", *_WHERE]


def __getattr__(name: str) -> object:
    """The public names, each imported when first asked for."""
    if name in _WHERE:
        return getattr(import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'petal' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
