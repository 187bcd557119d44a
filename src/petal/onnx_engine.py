"""Run an exported ONNX model on ONNX Runtime: engine "onnx" of `petal.load`. Imports no torch.

An exported file takes what `Classifier` feeds every engine: float32 (N, 3, size, size)
RGB, normalised as the model card's input spec says, and returns logits (N, classes).
The model card travels inside the file (metadata_props[CARD_KEY]) and beside it
(`FILE.json`); the embedded copy is read first, as it cannot drift from the weights.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from petal.errors import PetalError
from petal.fsutil import read_json
from petal.modelio import ModelCard, find_model_folder

ONNX_FILE = "model.onnx"
INPUT_NAME = "input"
OUTPUT_NAME = "logits"
CARD_KEY = "petal.card"


def sidecar_path(path: str | Path) -> Path:
    """The JSON model card written beside an exported file: `FILE.json`."""
    path = Path(path)
    return path.with_name(path.name + ".json")


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
            return ModelCard.from_json(json.loads(metadata[CARD_KEY]), path)
        if sidecar.is_file():
            return ModelCard.from_json(read_json(sidecar), sidecar)
    except ValueError as exc:
        raise PetalError(f"the model card of {path} is not valid JSON: {exc}") from exc
    raise PetalError(f"{path} carries no petal model card (metadata {CARD_KEY!r}) and has no "
                     f"{sidecar.name} beside it: export it with `petal export`")


def onnx_runner(path: str | Path, threads: int | None = None
                ) -> tuple[ModelCard, Callable[[np.ndarray], np.ndarray]]:
    """(card, run_batch) for an ONNX file, or for the model.onnx of a run or model folder."""
    import onnxruntime as ort

    path = onnx_file(path)
    options = ort.SessionOptions()
    # ORT's threads otherwise spin between runs, taking the cores that decode the images
    # (turned off, `petal serve` answered over twice the requests/s on 2 cores).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types (InvalidProtobuf, Fail, ...)
        raise PetalError(f"ONNX Runtime cannot load {path}: {exc}") from exc
    card = read_onnx_card(path, session.get_modelmeta().custom_metadata_map)
    input_name = session.get_inputs()[0].name

    def run_batch(batch: np.ndarray) -> np.ndarray:
        return session.run(None, {input_name: batch})[0]

    return card, run_batch
