"""Export a trained model to ONNX or TorchScript, with its model card inside the file and beside it.

    petal export runs/my-run                        # -> runs/my-run/model/model.onnx (+ .json)
    petal export runs/my-run --format torchscript   # -> runs/my-run/model/model.pt (+ .json)

The exported graph is the network as inference runs it: input "input", float32 (N, 3,
size, size) RGB, already normalised ((pixel / 255 - mean) / std, values in the card's
input spec), any batch size N; outputs "logits", float32 (N, classes), before softmax and
already divided by the model's calibration temperature, and "features", float32 (N, D),
what the classifier head reads, for the novelty score (its arrays are copied beside the
file as FILE.novelty.safetensors; petal.inference.novelty computes it), and, where the
network has them, "class_maps", float32 (N, classes, h, w), the class activation maps
petal.inference.explain draws (petal.models.features). For a model whose spec says
`mirror`, the graph averages each image with its mirror inside and its logits are the log
of the averaged probabilities (petal.models.mirror). Normalisation stays outside the graph
so that every engine receives the same tensor from the same NumPy preprocessing
(`petal.inference.preprocess`) and their outputs can be compared directly.

`--quantize` writes an int8 copy instead (model.int8.onnx), called the same way
(petal.inference.quantize).

The model card (classes, input spec, metrics, plus an "export" section describing the
tensors) is embedded (ONNX metadata_props["petal.card"], TorchScript extra file
"model.json") and written beside the file as FILE.json. The files are written atomically,
that card last: it records the digests of the file and of its novelty file, so an export cut
short or pieced together from two is never taken for a current one
(petal.inference.auto_engine). The export is run once on a random batch and compared with
torch before it is written.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from petal.errors import PetalError
from petal.fsutil import (
    NotARegularFile,
    atomic_write_bytes,
    atomic_write_json,
    check_writable_file,
    read_limited,
)
from petal.inference.model_folder import ModelCard, model_digest, model_of
from petal.inference.novelty import MAX_FILE_BYTES as MAX_NOVELTY_BYTES
from petal.inference.novelty import NOVELTY_FILE
from petal.inference.onnx_engine import (
    CARD_KEY,
    FEATURES_NAME,
    FILE_DIGEST,
    INPUT_NAME,
    MAPS_NAME,
    NOVELTY_DIGEST,
    ONNX_FILE,
    OUTPUT_NAME,
    novelty_path,
    sidecar_path,
)
from petal.inference.quantize import (
    INT8_FILE,
    calibration_inputs,
    calibration_photos,
    quantize_onnx,
)
from petal.models import cam_layers
from petal.models.features import AnswerWithFeatures
from petal.models.spec import InputSpec
from petal.paths import refuse_inside_model_data
from petal.run_folder import find_model_folder
from petal.version import __version__

FORMATS = {"onnx": ONNX_FILE, "torchscript": "model.pt"}
TORCHSCRIPT_CARD = "model.json"
CHECK_BATCH = 2  # > 1, so the dynamic batch axis is exercised by the check


class ExportFailed(PetalError):
    """The exporter could not turn a valid model into a graph."""


@dataclass(frozen=True)
class Export:
    """An exported file (`petal.export`), usable as its path (os.PathLike), with the card
    written beside it and how closely it matches torch."""

    path: Path
    sidecar: Path
    max_abs_diff: float  # on logits and features: the exported model vs torch, a random batch
    # int8 (--quantize): of the calibration photos, how many it labels as float32 does
    agreement: tuple[int, int] | None = None

    def __fspath__(self) -> str:
        return str(self.path)

    def summary(self) -> str:
        if self.agreement is None:
            return (f"{self.path} (model card: {self.sidecar}); max |logit difference| from "
                    f"torch on a random batch: {self.max_abs_diff:.2e}")
        same, n = self.agreement
        return (f"{self.path} (int8; model card: {self.sidecar}); float32's label for {same} "
                f"of {n} calibration photos: evaluate it on photos it did not calibrate on")

    def _repr_html_(self) -> str:
        from html import escape

        return f"<p>Exported {escape(self.summary())}</p>"


def _export_card(card: ModelCard, fmt: str, has_maps: bool) -> dict:
    """The model card plus how to call the exported file."""
    size = card.input.size
    maps = {"class_maps": {"name": MAPS_NAME, "dtype": "float32",
                           "shape": ["N", len(card.classes), "h", "w"],
                           "meaning": "class activation maps of the last feature map"}}
    return {**card.to_json(), "export": {
        "format": fmt, "torch_version": torch.__version__,
        "petal_version": __version__,
        "input": {"name": INPUT_NAME, "dtype": "float32", "shape": ["N", 3, size, size],
                  "layout": "NCHW RGB", "normalised": "(pixel / 255 - mean) / std"},
        "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": ["N", len(card.classes)],
                   "meaning": "logits; softmax gives class probabilities, in order of classes"
                              + (" (averaged over the image and its mirror)"
                                 if card.input.mirror else "")
                              + (f"; already divided by the calibration temperature "
                                 f"{card.temperature:g}" if card.temperature != 1.0 else "")},
        "features": {"name": FEATURES_NAME, "dtype": "float32", "shape": ["N", "D"],
                     "meaning": "the classifier head's input, for the novelty score "
                                "(petal.inference.novelty, with FILE.novelty.safetensors)"},
        **(maps if has_maps else {}),
    }}


@contextlib.contextmanager
def _exporter_quiet() -> Iterator[None]:
    """Keep the exporter's own log quiet: it logs each attempt to convert to an opset below
    its own (18), a traceback when one fails; petal checks and says the outcome itself."""
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnxscript", "onnx_ir")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _onnx_bytes(model: torch.nn.Module, example: torch.Tensor, card: dict,
                opset: int | None, outputs: list[str]) -> tuple[bytes, dict]:
    """The serialised ONNX model, and the card with the opset the exporter chose added."""
    # The torch.export-based exporter (the default since torch 2.9; the TorchScript-based
    # one is deprecated). Only the batch axis is dynamic: the spatial size is fixed by the
    # input spec, so TF-"same" padding (EfficientNet-Lite) is resolved at export time.
    try:
        with _exporter_quiet():
            program = torch.onnx.export(
                model, (example,), input_names=[INPUT_NAME], output_names=outputs,
                dynamic_shapes=({0: torch.export.Dim("batch", min=1)},), opset_version=opset,
                dynamo=True, verbose=False)
    except Exception as exc:  # the exporter raises many types; all mean "cannot export"
        raise ExportFailed(f"ONNX export failed: {exc}") from exc
    proto = program.model_proto
    used = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    if opset is not None and used != opset:
        raise ExportFailed(f"--opset {opset}: the exporter could not convert this model to it "
                           f"(it wrote opset {used}); leave --opset out")
    card = {**card, "export": {**card["export"], "opset": used}}
    metadata = {CARD_KEY: json.dumps(card), "classes": json.dumps(card["classes"]),
                "input_spec": json.dumps(card["input"])}
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString(), card


def _max_opset() -> int:
    """The newest opset the installed onnx package defines (the exporter's conversion's)."""
    import onnx

    return onnx.defs.onnx_opset_version()


def _onnx_outputs(data: bytes, inputs: np.ndarray, batch: int = 32) -> list[np.ndarray]:
    """Every output of ONNX model `data` for `inputs`, run `batch` at a time."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own types
        raise ExportFailed(f"ONNX Runtime cannot run the exported graph: {exc}") from exc
    parts = [session.run(None, {INPUT_NAME: inputs[i:i + batch]})
             for i in range(0, len(inputs), batch)]
    return [np.concatenate(outputs) for outputs in zip(*parts)]


def _torchscript_bytes(model: torch.nn.Module, example: torch.Tensor, card: dict) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # torch marks torch.jit deprecated; TorchScript is exported for runtimes that need it.
        warnings.simplefilter("ignore", FutureWarning)
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, buffer, _extra_files={TORCHSCRIPT_CARD: json.dumps(card)})
    return buffer.getvalue()


def _torchscript_outputs(data: bytes, batch: np.ndarray) -> list[np.ndarray]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(io.BytesIO(data))
    with torch.inference_mode():
        return [output.numpy() for output in module(torch.from_numpy(batch))]


def export(model_path: str | os.PathLike, fmt: str = "onnx", out: str | os.PathLike | None = None,
           opset: int | None = None, announce: Callable[[], None] | None = None,
           quantize: bool = False, calibration: str | os.PathLike | None = None
           ) -> Export:
    """Export the model of a run or model folder; returns where it went and a parity figure.
    `announce` is called once the model has loaded, before the (slower) export itself.
    `quantize`: an int8 ONNX file, calibrated on the run's training photos or on the photos
    in `calibration` (petal.inference.quantize)."""
    if fmt not in FORMATS:
        raise PetalError(f"unknown export format {fmt!r}: use {' or '.join(FORMATS)}")
    if opset is not None and fmt != "onnx":
        raise PetalError("--opset applies to ONNX only")
    if opset is not None and not 1 <= opset <= _max_opset():
        raise PetalError(f"--opset {opset}: ONNX defines opsets 1 to {_max_opset()}")
    if (quantize or calibration is not None) and fmt != "onnx":
        raise PetalError("--quantize and --calibration apply to ONNX only")
    if calibration is not None and not quantize:
        raise PetalError("--calibration sets the photos --quantize calibrates on: give both")
    photos = calibration_photos(model_path, calibration) if quantize else []
    folder = find_model_folder(model_path)  # once: every step below is handed the folder
    path = Path(out) if out else folder / (INT8_FILE if quantize else FORMATS[fmt])
    _check_writable(path)  # before minutes of work, not after
    network, card = model_of(folder)
    if out is not None:  # (the default, the model folder, is where the user trained it)
        refuse_inside_model_data(path, card.data)
    if announce is not None:
        announce()
    cam = cam_layers(card.architecture["name"], network)
    model = AnswerWithFeatures(network, card.input, cam, card.temperature).eval()
    size = card.input.size
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(CHECK_BATCH, 3, size, size, generator=generator)
    with torch.inference_mode():
        expected = [output.numpy() for output in model(example)]
    card_json = _export_card(card, fmt, has_maps=cam is not None)
    card_json["export"]["source"] = model_digest(folder)
    agreement = None
    if fmt == "onnx":
        names = [OUTPUT_NAME, FEATURES_NAME, *([MAPS_NAME] if cam is not None else [])]
        data, card_json = _onnx_bytes(model, example, card_json, opset, names)
        if quantize:
            data, card_json, agreement = _quantized(data, card_json, card.input, photos)
        actual = _onnx_outputs(data, example.numpy())
    else:
        data = _torchscript_bytes(model, example, card_json)
        actual = _torchscript_outputs(data, example.numpy())
    _write_export(path, data, card_json, folder / NOVELTY_FILE if card.novelty is not None
                  else None)
    difference = max(float(np.abs(a - e).max()) for a, e in zip(actual, expected, strict=True))
    return Export(path, sidecar_path(path), difference, agreement)


def _write_export(path: Path, data: bytes, card: dict, scores: Path | None) -> None:
    """The exported file, then its novelty file (a copy of `scores`), then the card beside
    them, which records both files' digests: written last, it marks the export whole, so a
    kill or a full disk midway leaves an export that auto_engine.export_section treats as
    not made (a card of an earlier export names other digests)."""
    atomic_write_bytes(path, data)
    digests = {FILE_DIGEST: hashlib.sha256(data).hexdigest()}
    if scores is not None:
        # bounded, and refused if not a regular file: a named pipe there must not hang
        novelty = read_limited(scores, MAX_NOVELTY_BYTES)
        atomic_write_bytes(novelty_path(path), novelty)
        digests[NOVELTY_DIGEST] = hashlib.sha256(novelty).hexdigest()
    atomic_write_json(sidecar_path(path), {**card, "export": {**card["export"], **digests}})


def _check_writable(path: Path) -> None:
    """ExportFailed unless the export's three files can be written at `path` and beside it:
    in a folder this process may write, each new or a regular file
    (fsutil.check_writable_file)."""
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError as exc:
        raise ExportFailed(f"cannot write into {folder}: it is not a folder") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportFailed(f"cannot write into {folder}: permission denied")
    for target in (path, sidecar_path(path), novelty_path(path)):
        try:
            check_writable_file(target)
        except NotARegularFile as exc:
            raise ExportFailed(str(exc)) from exc


def _quantized(data: bytes, card: dict, spec: InputSpec, photos: list[Path]
               ) -> tuple[bytes, dict, tuple[int, int]]:
    """The int8 file of float32 ONNX `data`, its card, and on how many calibration photos it
    gives float32's label."""
    inputs, skipped = calibration_inputs(photos, spec)
    card = {**card, "export": {**card["export"], "quantized": {
        "weights": "int8, per output channel", "activations": "uint8, min-max ranges",
        "calibration_photos": len(inputs), "unusable_skipped": skipped}}}
    quantized = quantize_onnx(data, inputs, card)
    full, small = (_onnx_outputs(model, inputs)[0].argmax(1) for model in (data, quantized))
    same = int((full == small).sum())
    return quantized, card, (same, len(inputs))
