"""A trained model is a folder: `model.safetensors` (weights) + `model.json` (everything else).

Loading never unpickles anything; reading model.json needs no torch. model.json is checked
as a whole before anything is built from it, and the network it describes is built on the
"meta" device (no memory) and compared with the shapes in the weights file's header before
it is built for real: a hand-edited card can neither mislabel outputs nor make petal
allocate a network the weights do not hold. Saving writes a complete new folder beside the
old one and swaps it in with two renames; `run_folder.find_model_folder` recovers the previous
folder if a process died between them, so a good model is never replaced by a partial one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np

from petal.errors import PetalError
from petal.fsutil import atomic_write_json, file_sha256, name_problem, read_json
from petal.models.spec import InputSpec
from petal.run_folder import CARD_FILE, find_model_folder
from petal.version import __version__

if TYPE_CHECKING:  # torch is imported only where weights are read or written
    import torch

MODEL_FORMAT = "petal-model/1"
WEIGHTS_FILE = "model.safetensors"
MAX_CLASSES = 100_000  # ImageNet-21k has 21,843
# the temperatures petal fits (petal.training.calibration); NaN or 0 would ruin every answer
MIN_TEMPERATURE, MAX_TEMPERATURE = 0.05, 20.0


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
    novelty: dict | None = None  # the novelty score's settings (petal.inference.novelty), if fitted
    # temperature scaling (petal.training.calibration): temperature, fitted_on, n, ece before
    # and after; None for a model trained before petal 0.3 (temperature 1)
    calibration: dict | None = None
    petal_version: str = __version__
    format: str = MODEL_FORMAT
    created: str = field(
        default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))

    @property
    def accuracy(self) -> dict | None:
        """How well the model did on photos it did not train on, as its card states it:
        {how ("validation" or "cross-validated"), value, correct, n, interval}; built from
        the validation figures of a card written before petal 0.3; None without either."""
        if isinstance(self.metrics.get("accuracy"), dict):
            return self.metrics["accuracy"]
        if self.metrics.get("val_acc") is None or not self.metrics.get("n_val"):
            return None
        return {"how": "validation", "value": self.metrics["val_acc"],
                "correct": self.metrics.get("val_correct"), "n": self.metrics["n_val"],
                "interval": self.metrics.get("val_interval")}

    @property
    def novelty_from_other_models(self) -> bool:
        """Whether the held-out novelty scores (the threshold's ground) came from other
        networks than this one: out-of-fold scores of a final model trained on every photo,
        with a recipe that trains the whole network (the folds' networks see photos otherwise;
        a frozen trunk, as in the cached recipes, sees them the same)."""
        trained_on_all = "n_val" not in self.metrics and (self.accuracy or {}).get(
            "how") == "cross-validated"
        return trained_on_all and self.recipe.get("mode") != "cached"

    @property
    def temperature(self) -> float:
        """What every logit is divided by before the softmax (1: uncalibrated)."""
        return float(self.calibration["temperature"]) if self.calibration else 1.0

    def to_json(self) -> dict:
        data = asdict(self)
        data["input"] = self.input.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any, source: Path) -> ModelCard:
        if not isinstance(data, dict):
            raise PetalError(f"{source} is not a petal model card: it holds a JSON "
                             f"{type(data).__name__}, not an object")
        if data.get("format") != MODEL_FORMAT:
            raise PetalError(
                f"{source} was written by petal {data.get('petal_version', '?')} in format "
                f"{data.get('format')!r}; this petal ({__version__}) reads {MODEL_FORMAT!r}. "
                "Retrain the model or use a matching petal version."
            )
        if problem := card_problem(data):
            raise PetalError(f"{source} is not a valid petal model card: {problem}")
        values = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        values["input"] = InputSpec.from_json(data["input"])
        return cls(**values)




def _split_problem(split: Any) -> str | None:
    """`split` must name a file in the model folder or in the run folder holding it."""
    if split is None:
        return None
    parts = PurePosixPath(split).parts if isinstance(split, str) else ()
    if not (parts and name_problem(parts[-1]) is None and parts[:-1] in ((), ("..",))):
        return (f"split {split!r} must be a file name in the model folder or '../NAME' "
                "in its run folder")
    return None


def _calibration_problem(calibration: Any) -> str | None:
    if calibration is None:
        return None
    temperature = calibration.get("temperature") if isinstance(calibration, dict) else None
    if (isinstance(temperature, bool) or not isinstance(temperature, (int, float))
            or not MIN_TEMPERATURE <= temperature <= MAX_TEMPERATURE):
        return (f"calibration must be an object whose temperature is a number from "
                f"{MIN_TEMPERATURE} to {MAX_TEMPERATURE}")
    return None


def _accuracy_problem(accuracy: Any) -> str | None:
    """metrics.accuracy, what every reader of the card shows, must be what petal writes."""
    if accuracy is None:
        return None
    try:
        n, correct, low, high = (accuracy["n"], accuracy["correct"], *accuracy["interval"])
        sound = (accuracy["how"] in ("validation", "cross-validated")
                 and type(n) is int and 0 < n <= 10**9 and type(correct) is int
                 and 0 <= correct <= n and abs(accuracy["value"] - correct / n) < 1e-6
                 and all(isinstance(v, (int, float)) and 0 <= v <= 1 for v in (low, high))
                 and low <= high)
        if accuracy["how"] == "cross-validated":
            sound = sound and type(accuracy["folds"]) is int and 2 <= accuracy["folds"] <= n
    except (KeyError, TypeError, ValueError):
        sound = False
    return None if sound else ("metrics.accuracy must be the object petal writes: how, value, "
                               "correct of n photos, interval (and folds when cross-validated)")


def card_problem(data: dict) -> str | None:
    """What makes model.json unusable, or None: every field that inference relies on."""
    classes, architecture = data.get("classes"), data.get("architecture")
    if not isinstance(classes, list) or not all(isinstance(c, str) and c for c in classes):
        return "classes must be a list of non-empty names"
    # a class name becomes a folder name (petal label): none may climb out of a folder
    if problem := next(filter(None, map(name_problem, classes)), None):
        return f"class {problem}: a class name must be usable as a folder name"
    if not 1 <= len(classes) <= MAX_CLASSES or len(set(classes)) != len(classes):
        return f"classes must be 1 to {MAX_CLASSES:,} distinct names"
    if not isinstance(architecture, dict) or not isinstance(architecture.get("name"), str):
        return "architecture must be an object with a model name"
    if architecture.get("num_classes") != len(classes):
        return (f"the architecture has {architecture.get('num_classes')!r} outputs but "
                f"{len(classes)} class names are given")
    if not isinstance(architecture.get("options", {}), dict):
        return "architecture options must be an object"
    if not isinstance(data.get("input"), dict):
        return "input must be an object (size, mean, std, crop_pct)"
    for name, kind in (("recipe", dict), ("metrics", dict), ("data", str)):
        if name in data and not isinstance(data[name], kind):
            return f"{name} must be a JSON {'object' if kind is dict else 'string'}"
    if data.get("novelty") is not None and not isinstance(data["novelty"], dict):
        return "novelty must be a JSON object or null"
    if (problem := _calibration_problem(data.get("calibration"))) is not None:
        return problem
    if (problem := _accuracy_problem(data.get("metrics", {}).get("accuracy"))) is not None:
        return problem
    return _split_problem(data.get("split"))


def model_digest(folder: Path) -> str:
    """SHA-256 over a model folder's weights and card as they are now: what an export records
    of the model it was made from (petal.inference.auto_engine)."""
    digest = hashlib.sha256()
    for name in (WEIGHTS_FILE, CARD_FILE):
        digest.update(file_sha256(folder / name).encode())
    return digest.hexdigest()


def read_card(path: str | os.PathLike) -> ModelCard:
    """The model card of a run or model folder."""
    return card_of(find_model_folder(path))


def card_of(folder: Path) -> ModelCard:
    """The model card of model folder `folder` (found already: run_folder.find_model_folder)."""
    try:
        data = read_json(folder / CARD_FILE)
    except ValueError as exc:
        raise PetalError(f"{folder / CARD_FILE} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise PetalError(f"cannot read {folder / CARD_FILE}: {exc}") from exc
    return ModelCard.from_json(data, folder / CARD_FILE)


def save_model_folder(folder: str | os.PathLike, model: torch.nn.Module, card: ModelCard,
                      arrays: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """Write weights + card (+ `arrays`: file name -> NumPy tensors, as safetensors) into
    `folder`, atomically replacing any model already there."""
    from safetensors import SafetensorError
    from safetensors.numpy import save_file as save_arrays
    from safetensors.torch import save_model as save_safetensors

    folder = Path(folder)
    partial = folder.with_name(folder.name + ".partial")
    previous = folder.with_name(folder.name + ".previous")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        # force_contiguous: weights trained channels-last are stored in the standard layout
        save_safetensors(model, str(partial / WEIGHTS_FILE), metadata={"format": "pt"},
                         force_contiguous=True)
        for name, tensors in (arrays or {}).items():
            save_arrays({k: np.ascontiguousarray(v) for k, v in tensors.items()},
                        str(partial / name))
        for name in [WEIGHTS_FILE, *(arrays or {})]:
            with open(partial / name, "rb") as handle:
                os.fsync(handle.fileno())
        atomic_write_json(partial / CARD_FILE, card.to_json())
    except SafetensorError as exc:  # its I/O errors (a full disk) are not OSErrors
        shutil.rmtree(partial, ignore_errors=True)
        raise PetalError(f"cannot write the model into {folder}: {exc}") from exc
    except BaseException:  # leave nothing half-written behind
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if folder.exists():
        shutil.rmtree(previous, ignore_errors=True)
        os.rename(folder, previous)
    os.rename(partial, folder)
    shutil.rmtree(previous, ignore_errors=True)
    return folder


def _stored_shapes(weights: Path) -> dict[str, tuple[int, ...]]:
    """Tensor name -> shape, from a safetensors file's header only (no tensor is read)."""
    from safetensors import SafetensorError, safe_open

    if not weights.is_file():  # a named pipe would block safetensors' open for ever
        raise PetalError(f"cannot load weights from {weights}: not a regular file")
    try:
        with safe_open(str(weights), framework="pt") as handle:
            return {key: tuple(handle.get_slice(key).get_shape()) for key in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise PetalError(f"cannot load weights from {weights}: {exc}") from exc


def _build(architecture: dict, on_meta: bool = False) -> torch.nn.Module:
    import torch

    from petal.models import rebuild_model

    try:
        with torch.device("meta" if on_meta else "cpu"):
            return rebuild_model(architecture)[0]
    except (KeyError, TypeError, ValueError) as exc:
        raise PetalError(f"the architecture in {CARD_FILE} cannot be built ({exc}): "
                         "save the model again with petal") from exc


def _shape_mismatch(expected: dict[str, tuple], stored: dict[str, tuple]) -> str | None:
    missing = sorted(set(expected) - set(stored))
    unexpected = sorted(set(stored) - set(expected))
    misshaped = sorted(k for k in set(expected) & set(stored) if expected[k] != stored[k])
    found = [f"{what} {', '.join(keys[:3])}{' ...' if len(keys) > 3 else ''}"
             for what, keys in (("missing", missing), ("unexpected", unexpected),
                                ("wrong shape", misshaped)) if keys]
    return "; ".join(found) or None


def load_model(path: str | os.PathLike) -> tuple[torch.nn.Module, ModelCard]:
    """Rebuild the network of a run or model folder from model.json and load
    model.safetensors; returns it in eval mode. What inference runs is
    `petal.models.mirror.answering(model, card.input)`."""
    return model_of(find_model_folder(path))


def model_of(folder: Path) -> tuple[torch.nn.Module, ModelCard]:
    """load_model of model folder `folder` (found already)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model as load_safetensors

    card = card_of(folder)
    weights = folder / WEIGHTS_FILE
    stored = _stored_shapes(weights)
    skeleton = _build(card.architecture, on_meta=True)
    expected = {key: tuple(value.shape) for key, value in skeleton.state_dict().items()}
    if mismatch := _shape_mismatch(expected, stored):
        raise PetalError(f"{weights} does not hold the network {CARD_FILE} describes "
                         f"({mismatch}): the two files do not belong together")
    model = _build(card.architecture)
    try:
        load_safetensors(model, str(weights), strict=True)
    except (SafetensorError, RuntimeError, OSError) as exc:
        raise PetalError(f"cannot load weights from {weights}: {exc}") from exc
    return model.eval(), card
