"""A trained model is a folder: `model.safetensors` (weights) + `model.json` (everything else).

Loading never unpickles anything; reading model.json needs no torch. Saving writes a
complete new folder beside the old one and swaps it in with two renames;
`find_model_folder` recovers the previous folder if a process died between them, so a
good model is never replaced by a partial one.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from petal import __version__
from petal.errors import PetalError
from petal.fsutil import atomic_write_json, read_json
from petal.models.spec import InputSpec

if TYPE_CHECKING:  # torch is imported only where weights are read or written
    import torch

MODEL_FORMAT = "petal-model/1"
WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model.json"


@dataclass
class ModelCard:
    """The contents of model.json."""

    architecture: dict  # build_model arguments: name, num_classes, input_size, options
    classes: list[str]
    input: InputSpec
    recipe: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    data: str = ""
    split: str | None = None  # the split file, relative to this model folder
    petal_version: str = __version__
    format: str = MODEL_FORMAT
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    def to_json(self) -> dict:
        data = asdict(self)
        data["input"] = self.input.to_json()
        return data

    @classmethod
    def from_json(cls, data: dict, source: Path) -> ModelCard:
        if data.get("format") != MODEL_FORMAT:
            raise PetalError(
                f"{source} was written by petal {data.get('petal_version', '?')} in format "
                f"{data.get('format')!r}; this petal ({__version__}) reads {MODEL_FORMAT!r}. "
                "Retrain the model or use a matching petal version."
            )
        try:
            values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
            values["input"] = InputSpec.from_json(data["input"])
            return cls(**values)
        except (KeyError, TypeError) as exc:
            raise PetalError(f"{source} is not a valid petal model card: {exc}") from exc


def find_model_folder(path: str | os.PathLike) -> Path:
    """The model folder for `path`, which may be a model folder or a run folder holding model/."""
    path = Path(path)
    for candidate in (path, path / "model"):
        if (candidate / CARD_FILE).is_file():
            return candidate
        previous = candidate.with_name(candidate.name + ".previous")
        if not candidate.exists() and (previous / CARD_FILE).is_file():
            return previous  # a save died between its two renames: the old model is intact
    if not path.exists():
        raise PetalError(f"model path {path} does not exist")
    raise PetalError(f"{path} is neither a model folder (with {CARD_FILE}) nor a run folder "
                     "holding model/: pass the folder `petal train` wrote")


def read_card(path: str | os.PathLike) -> ModelCard:
    folder = find_model_folder(path)
    try:
        data = read_json(folder / CARD_FILE)
    except ValueError as exc:
        raise PetalError(f"{folder / CARD_FILE} is not valid JSON: {exc}") from exc
    return ModelCard.from_json(data, folder / CARD_FILE)


def save_model_folder(folder: str | os.PathLike, model: torch.nn.Module, card: ModelCard) -> Path:
    """Write weights + card into `folder`, atomically replacing any model already there."""
    from safetensors.torch import save_model as save_safetensors

    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    previous = folder.with_name(folder.name + ".previous")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    # force_contiguous: weights trained channels-last are stored in the standard layout
    save_safetensors(model, str(partial / WEIGHTS_FILE), metadata={"format": "pt"},
                     force_contiguous=True)
    with open(partial / WEIGHTS_FILE, "rb") as handle:
        os.fsync(handle.fileno())
    atomic_write_json(partial / CARD_FILE, card.to_json())
    if folder.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.rename(folder, previous)
    os.rename(partial, folder)
    shutil.rmtree(previous, ignore_errors=True)
    return folder


def load_model(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the network from model.json and load model.safetensors; returns it in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model as load_safetensors

    from petal.models import rebuild_model

    folder = find_model_folder(path)
    card = read_card(folder)
    model, _ = rebuild_model(card.architecture)
    try:
        load_safetensors(model, str(folder / WEIGHTS_FILE), strict=True)
    except (SafetensorError, RuntimeError, FileNotFoundError, OSError) as exc:
        raise PetalError(f"cannot load weights from {folder / WEIGHTS_FILE}: {exc}") from exc
    return model.eval(), card
