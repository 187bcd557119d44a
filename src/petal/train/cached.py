"""Cached-feature training: run a frozen trunk once over every view of every image, store its
outputs, then train only the top on them (recipe mode "cached").

Views of an image (all crops of the model's input size out of the decoded square):
  0: the central crop (what evaluation and `predict` see)
  1: the central crop, mirrored
  k >= 2: a random crop, mirrored half the time, fixed by (image hash, k)
Training picks one stored view of each image per epoch; validation uses view 0 (and 1
with tta_flip).

Stored features live under `<cache root>/features/<key>/view<k>/`, one RowStore per view,
rows keyed by image hash. The key hashes the architecture, the cut, the input spec and the
trunk's weights, so a different backbone, cut or weights file never reuses stale tensors;
the view number is part of the path and the image hash is the row key.

The trunk runs under ONNX Runtime by default (engine "onnx"): on the 2-core CPU this
project is measured on it ran EfficientNet-Lite0 2-3x faster than torch (see
docs/RESULTS.md). The ONNX file is exported once per key and kept with the features.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm import tqdm

from petal.data.store import RowStore
from petal.errors import PetalError, PetalWarning
from petal.fsutil import atomic_write_bytes
from petal.models.spec import InputSpec
from petal.preprocess import to_input
from petal.system import usable_cores

FEATURE_FORMAT = 1  # bump when the meaning of stored features changes
BATCH = 32


def view_crop(square: np.ndarray, size: int, view: int, key: str) -> np.ndarray:
    """View `view` (see module docstring) of one decoded (S, S, 3) image."""
    side = square.shape[0]
    if view < 2:
        offset = (side - size) // 2
        crop = square[offset:offset + size, offset:offset + size]
        return crop[:, ::-1] if view == 1 else crop
    rng = np.random.default_rng([int(key[:16], 16), view])
    top, left = rng.integers(0, side - size + 1, size=2)
    crop = square[top:top + size, left:left + size]
    return crop[:, ::-1] if rng.random() < 0.5 else crop


def features_key(architecture: dict, cut: str, spec: InputSpec, trunk: nn.Module) -> str:
    digest = hashlib.sha256(json.dumps(
        {"format": FEATURE_FORMAT, "architecture": architecture, "cut": cut,
         "input": spec.to_json()}, sort_keys=True).encode())
    for name, tensor in trunk.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:20]


def _export_trunk(trunk: nn.Module, example: torch.Tensor, path: Path) -> None:
    # The TorchScript-based exporter: 0.9 s for the Lite0 trunk here, against 14 s for
    # the torch.export-based one that `petal export` uses; this file is a cache
    # artifact, re-made whenever its key changes, so its export time is on the clock.
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter
        torch.onnx.export(trunk, example, buffer, input_names=["input"],
                          output_names=["output"], dynamic_axes={"input": {0: "batch"}},
                          dynamo=False)
    atomic_write_bytes(path, buffer.getvalue())


def _onnx_runner(trunk: nn.Module, example: torch.Tensor, path: Path) -> Callable:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cores()
    if not path.exists():
        _export_trunk(trunk, example, path)
    try:
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT's own types: a damaged cache file
        warnings.warn(f"the cached trunk {path} is damaged ({str(exc)[:200]}): exported again",
                      PetalWarning, stacklevel=2)
        _export_trunk(trunk, example, path)
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda batch: session.run(None, {"input": batch})[0]


def _torch_runner(trunk: nn.Module) -> Callable:
    trunk = trunk.to(memory_format=torch.channels_last)

    def run(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).contiguous(memory_format=torch.channels_last)
            return trunk(inputs).float().numpy()
    return run


class FeatureCache:
    """Trunk outputs of every view of every image, computed once (see module docstring)."""

    def __init__(self, root: str | os.PathLike, trunk: nn.Module, key: str, spec: InputSpec,
                 engine: str = "onnx") -> None:
        if engine not in {"onnx", "torch"}:
            raise PetalError(f"trunk engine {engine!r}: use onnx or torch")
        self.dir = Path(root) / "features" / key
        self.spec = spec
        example = torch.zeros(1, 3, spec.size, spec.size)
        with torch.inference_mode():
            self.row_shape = tuple(trunk(example).shape[1:])
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = (_onnx_runner(trunk, example, self.dir / "trunk.onnx") if engine == "onnx"
                    else _torch_runner(trunk))

    def view(self, view: int, pixels: np.ndarray, keys: list[str], progress: bool = True
             ) -> np.ndarray:
        """(N, *row_shape) float16 features of view `view` of the images `pixels` (N, S, S, 3)."""
        store = RowStore(self.dir / f"view{view}", self.row_shape, np.float16)
        position = {key: i for i, key in enumerate(keys)}

        def compute(missing: list[str]) -> Iterator[np.ndarray]:
            bar = tqdm(total=len(missing), desc=f"Trunk features, view {view}", unit="img",
                       disable=not progress, leave=False)
            for start in range(0, len(missing), BATCH):
                chunk = missing[start:start + BATCH]
                crops = np.stack([view_crop(pixels[position[k]], self.spec.size, view, k)
                                  for k in chunk])
                yield from self.run(to_input(crops, self.spec)).astype(np.float16)
                bar.update(len(chunk))
            bar.close()

        return store.ensure(keys, compute)


class CachedViews(Dataset):
    """Stored features as a dataset.

    Training keys (index, seed) pick a random stored view and, with `flip`, mirror a
    spatial feature map (C, H, W) left-right half the time: the trunk's maps of a mirrored
    photo are close to mirrored maps, and on the flowers set this free augmentation did as
    well as storing the mirrored view (docs/RESULTS.md). Evaluation keys are indices and
    give view 0, or views 0 and 1 stacked when `tta`.
    """

    def __init__(self, views: list[np.ndarray], labels: np.ndarray, flip: bool = False,
                 tta: bool = False) -> None:
        self.views, self.labels = [np.asarray(v) for v in views], labels
        self.flip, self.tta = flip, tta

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, int]:
        if isinstance(key, tuple):
            index, seed = key
            rng = np.random.default_rng(seed)
            row = self.views[rng.integers(len(self.views))][index]
            if self.flip and row.ndim == 3 and rng.random() < 0.5:
                row = row[:, :, ::-1]
        else:
            index = key
            row = np.stack([v[index] for v in self.views[:2]]) if self.tta else self.views[0][index]
        return torch.from_numpy(row.astype(np.float32)), int(self.labels[index])
