"""An int8 copy of an exported ONNX model: `petal export RUN --quantize`.

ONNX Runtime's static quantisation (onnxruntime.quantization): weights int8 per output
channel, activations uint8 with ranges observed on calibration photos (min-max), in QDQ form
so that ONNX Runtime fuses each quantised pair into an integer convolution. The inputs and
outputs stay float32, so the file is called exactly as the float32 export is, and petal
loads it the same way (`petal predict RUN/model/model.int8.onnx`).

Calibration photos: by default CALIBRATION_PHOTOS of the run's own training photos (its
config.json and split.json say which), spread evenly over the split's order; with
`--calibration FOLDER`, that folder's photos (labels are not needed). Never the validation
photos the accuracy is reported on.

On the flowers fast-transfer model (docs/RESULTS.md), int8 ran about twice the images a
second of float32 and got one validation photo fewer right (410 of 431 against 411).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from petal.data.image import ImageLoadError, load_image
from petal.data.split import Split
from petal.errors import PetalError, PetalWarning
from petal.fsutil import read_json, walk_files
from petal.inference.onnx_engine import CARD_KEY, INPUT_NAME
from petal.inference.preprocess import image_to_array, to_input
from petal.models.spec import InputSpec
from petal.run_folder import CONFIG_FILE, SPLIT_FILE, find_model_folder, run_of_model

CALIBRATION_PHOTOS = 200
INT8_FILE = "model.int8.onnx"


def calibration_photos(model: str | os.PathLike, folder: str | os.PathLike | None,
                       count: int = CALIBRATION_PHOTOS) -> list[Path]:
    """Up to `count` photos to calibrate on, evenly spread: from `folder`, else the training
    photos of the run that holds the model."""
    if folder is not None:
        if not Path(folder).is_dir():
            raise PetalError(f"--calibration {folder}: not a folder of photos")
        photos = walk_files([folder])
    else:
        run = run_of_model(find_model_folder(model))
        if not (run / CONFIG_FILE).is_file() or not (run / SPLIT_FILE).is_file():
            raise PetalError(f"{model} is not in a run folder, so its training photos are "
                             "unknown: give --calibration FOLDER (a few hundred photos like "
                             "the ones it will see)")
        data = Path(read_json(run / CONFIG_FILE)["data"])
        if not data.is_dir():
            raise PetalError(f"the photos {run} trained on are no longer at {data}: give "
                             "--calibration FOLDER (a few hundred photos like them)")
        photos = [data / item.path for item in Split.load(run / SPLIT_FILE).train]
    step = max(1, len(photos) // count)
    return photos[::step][:count]


def calibration_inputs(photos: list[Path], spec: InputSpec) -> tuple[np.ndarray, int]:
    """(N, 3, size, size) float32 model inputs of the usable `photos` (prepared as petal's
    Classifier prepares a photo), and how many were skipped as unusable."""
    arrays, skipped = [], 0
    for photo in photos:
        try:
            arrays.append(image_to_array(load_image(photo, min_size=spec.resize_size), spec))
        except (ImageLoadError, OSError):
            skipped += 1
    if skipped:
        warnings.warn(f"{skipped} of {len(photos)} calibration photos are not usable images "
                      "and were left out", PetalWarning, stacklevel=3)
    if len(arrays) < 10:
        raise PetalError(f"only {len(arrays)} usable calibration photos (of {len(photos)}): "
                         "int8 ranges need at least 10, a few hundred to be reliable")
    return to_input(np.stack(arrays), spec), skipped


def quantize_onnx(source: bytes, inputs: np.ndarray, card: dict) -> bytes:
    """The int8 file for float32 ONNX `source`, calibrated on `inputs`, with `card`
    embedded."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches: Iterator[np.ndarray] = iter(np.split(inputs, len(inputs)))

        def get_next(self) -> dict[str, np.ndarray] | None:
            batch = next(self.batches, None)
            return None if batch is None else {INPUT_NAME: batch}

    # scratch files in the system's temporary folder: a killed run leaves none in the model's
    with tempfile.TemporaryDirectory(prefix="petal-quantize-") as scratch:
        original = Path(scratch) / "float32.onnx"
        original.write_bytes(source)
        prepared, quantized = Path(scratch) / "prepared.onnx", Path(scratch) / "int8.onnx"
        try:
            quant_pre_process(str(original), str(prepared), skip_symbolic_shape=True)
            quantize_static(str(prepared), str(quantized), Reader(),
                            quant_format=QuantFormat.QDQ, per_channel=True,
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        except Exception as exc:  # ORT's quantiser raises many types
            raise PetalError(f"int8 quantisation failed: {exc}") from exc
        proto = onnx.load(str(quantized))
    kept = [p for p in proto.metadata_props if p.key != CARD_KEY]
    del proto.metadata_props[:]
    proto.metadata_props.extend(kept)
    proto.metadata_props.add(key=CARD_KEY, value=json.dumps(card))
    return proto.SerializeToString()
