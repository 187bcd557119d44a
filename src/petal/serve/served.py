"""The models a server answers for, each under a unique name.

A model's name is its run folder's name: `runs/rose-r9` and `runs/rose-r9/model` and
`runs/rose-r9/model/model.onnx` are all "rose-r9"; a model folder or file not named
"model" is named after itself. `NAME=PATH` names a model explicitly. Repeated names get
"-2", "-3", ... in the order given.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from petal.errors import PetalError
from petal.inference.classifier import Classifier, load


@dataclass(frozen=True)
class ServedModel:
    name: str
    classifier: Classifier

    def describe(self) -> dict:
        """What GET /api/models tells about this model."""
        card = self.classifier.card
        return {"name": self.name, "architecture": card.architecture.get("name"),
                "classes": self.classifier.classes, "input": self.classifier.spec.to_json(),
                "accuracy": card.accuracy, "val_acc": card.metrics.get("val_acc"),
                "n_val": card.metrics.get("n_val"),
                "val_interval": card.metrics.get("val_interval"),
                "engine": self.classifier.engine, "novelty": self._novelty()}

    def _novelty(self) -> dict | None:
        """The novelty score as served: method, share of known photos kept, threshold."""
        score = self.classifier.novelty
        if score is None:
            return None
        return {"method": score.method, "keep": score.keep, "threshold": round(score.threshold, 6)}


def default_name(path: Path) -> str:
    """The run folder's name for a run folder, its model folder or a file in that folder."""
    path = path.resolve()
    if path.is_file():
        if path.parent.name != "model":
            return path.stem
        path = path.parent
    return path.parent.name if path.name == "model" else path.name


def split_name(argument: str) -> tuple[str | None, Path]:
    """`NAME=PATH` -> (NAME, PATH); a plain path -> (None, PATH)."""
    name, sep, path = argument.partition("=")
    if sep and name and "/" not in name:
        return name, Path(path)
    return None, Path(argument)


def unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    if len(set(result)) != len(result):
        raise PetalError(f"model names {result} are not unique: name them with NAME=PATH")
    return result


def load_models(arguments: list[str], engine: str | None = None,
                device: str | None = None) -> list[ServedModel]:
    """Load each `PATH` or `NAME=PATH` with `petal.load` on `device`, named as described
    above."""
    parsed = [split_name(argument) for argument in arguments]
    names = unique([name or default_name(path) for name, path in parsed])
    return [ServedModel(name, load(path, engine=engine, device=device))
            for name, (_, path) in zip(names, parsed)]
