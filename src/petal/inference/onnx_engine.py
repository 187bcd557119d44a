"""Run an exported ONNX model on ONNX Runtime: engine "onnx" of `petal.load`. Imports no torch.

An exported file takes what `Classifier` feeds every engine: float32 (N, 3, size, size)
RGB, normalised as the model card's input spec says, and returns logits (N, classes), the
penultimate features (N, D) the novelty score reads (that score's arrays travel beside the
file, `FILE.novelty.safetensors`) and, for networks that have them, class activation maps
(N, classes, h, w).
The model card travels inside the file (metadata_props[CARD_KEY]) and beside it
(`FILE.json`); the embedded copy is read first, as it cannot drift from the weights.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from petal.errors import PetalError, PetalWarning
from petal.fsutil import parse_json, read_json
from petal.inference import novelty
from petal.inference.device import CPU, onnx_providers
from petal.inference.engine import BatchRunner
from petal.inference.model_folder import ModelCard
from petal.run_folder import find_model_folder

if TYPE_CHECKING:
    import onnxruntime as ort

ONNX_FILE = "model.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
FEATURES_NAME = "features"
MAPS_NAME = "class_maps"
CARD_KEY = "petal.card"
# what the card beside an export (not the one inside it) records of the files it describes
FILE_DIGEST, NOVELTY_DIGEST = "file_sha256", "novelty_sha256"


def sidecar_path(path: str | Path) -> Path:
    """The JSON model card written beside an exported file: `FILE.json`."""
    path = Path(path)
    return path.with_name(path.name + ".json")


def novelty_path(path: str | Path) -> Path:
    """The novelty score written beside an exported file: `FILE.novelty.safetensors`."""
    path = Path(path)
    return path.with_name(f"{path.name}.{novelty.NOVELTY_FILE}")


def onnx_novelty(path: str | Path, card: ModelCard) -> novelty.Novelty | None:
    """The novelty score beside an exported file; None, with a warning, when the file was
    copied without it, and for a model trained without one."""
    if card.novelty is None:
        return None
    scores = novelty_path(onnx_file(path))
    if not scores.exists():
        warnings.warn(f"{scores.name} is not beside {scores.name.split('.novelty')[0]}: "
                      "photos of none of the classes will not be called unknown (copy it "
                      "from the export)", PetalWarning, stacklevel=3)
        return None
    return novelty.load(scores, card.novelty)


def onnx_file(path: str | Path) -> Path:
    """The ONNX file for `path`: the file itself, or model.onnx in a run or model folder."""
    path = Path(path)
    if path.is_file():
        return path
    if path.suffix.lower() == ".onnx":
        raise PetalError(f"ONNX file {path} does not exist: make it with `petal export`")
    candidate = find_model_folder(path) / ONNX_FILE
    if not candidate.is_file():
        raise PetalError(f"{path} has no exported {ONNX_FILE}: run `petal export {path}` first")
    return candidate


def read_onnx_card(path: Path, metadata: dict[str, str]) -> ModelCard:
    """The model card embedded in an ONNX file's metadata, else the one in its sidecar."""
    sidecar = sidecar_path(path)
    try:
        if CARD_KEY in metadata:
            return ModelCard.from_json(parse_json(metadata[CARD_KEY]), path)
        if sidecar.is_file():
            return ModelCard.from_json(read_json(sidecar), sidecar)
    except ValueError as exc:
        raise PetalError(f"the model card of {path} is not valid JSON: {exc}") from exc
    except OSError as exc:
        raise PetalError(f"cannot read {sidecar}: {exc}") from exc
    raise PetalError(f"{path} carries no petal model card (metadata {CARD_KEY!r}) and has no "
                     f"{sidecar.name} beside it: export it with `petal export`")


def check_shapes(path: Path, session: ort.InferenceSession, card: ModelCard) -> None:
    """PetalError when the graph's fixed input or output sizes contradict the model card."""
    size = card.input.size
    outputs = session.get_outputs()
    wanted = [("input", session.get_inputs()[:1], [None, 3, size, size]),
              ("output", outputs[:1], [None, len(card.classes)]),
              ("features", outputs[1:2], [None, None])]
    if len(outputs) < 2:
        raise PetalError(f"{path} has no features output (exported before petal 0.2): "
                         "export it again with `petal export`")
    for what, nodes, expected in wanted:
        shape = list(nodes[0].shape) if nodes else []
        fixed = [dim if isinstance(dim, int) else None for dim in shape]
        if len(fixed) != len(expected) or any(
                want is not None and got is not None and got != want
                for got, want in zip(fixed, expected)):
            raise PetalError(f"{path}: the graph's {what} shape {shape} does not fit its card "
                             f"({len(card.classes)} classes, {size} px input)")


def onnx_runner(path: str | Path, threads: int | None = None, device: str = CPU
                ) -> tuple[ModelCard, BatchRunner]:
    """(card, run_batch) for an ONNX file, or for the model.onnx of a run or model folder,
    on `device` ("cpu" or "cuda:N", petal.inference.device)."""
    import onnxruntime as ort

    path = onnx_file(path)
    options = ort.SessionOptions()
    # ORT's threads otherwise spin between runs, taking the cores that decode the images
    # (turned off, `petal serve` answered over twice the requests/s on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=onnx_providers(device))
    except PetalError:
        raise
    except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail, ...)
        raise PetalError(f"ONNX Runtime cannot load {path} (damaged or cut short? export it "
                         f"again with `petal export`): {exc}") from exc
    card = read_onnx_card(path, session.get_modelmeta().custom_metadata_map)
    check_shapes(path, session, card)
    input_name = session.get_inputs()[0].name

    def run_batch(batch: np.ndarray) -> tuple[np.ndarray, ...]:
        outputs = session.run(None, {input_name: batch})[:3]
        logits, features, *maps = outputs
        if (logits.ndim != 2 or logits.shape[1] != len(card.classes) or features.ndim != 2
                or any(m.ndim != 4 or m.shape[1] != len(card.classes) for m in maps)):
            raise PetalError(f"{path} gave outputs of shape {[o.shape for o in outputs]} for "
                             f"{len(card.classes)} classes: the file and its card disagree")
        return tuple(outputs)

    return card, run_batch
