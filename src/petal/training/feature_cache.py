"""Cached-feature training: run a frozen trunk once over the central crop of every image, store
its outputs, then train only the top on them (recipe mode "cached").

Two views of an image are stored, each a central crop of the model's input size out of the
decoded square: view 0, the crop itself (what evaluation and `predict` see, and what
training sees, mirrored at random as a feature map), and view 1, its mirror (validation
with tta_flip only).

Stored features live under `<cache root>/features/<key>/view<k>/`, one RowStore per view,
rows keyed by image hash. The key hashes the architecture, the cut (the recipe's
`train_from`), the input spec and the trunk's weights, so a different backbone, cut or
weights file never reuses stale tensors. A model of several trunks has one cache per trunk,
keyed by that trunk, its input size and the shared crop's, so a model that adds a trunk to
another computes only the new trunk's features.

The trunk runs under ONNX Runtime: on 2 CPU cores it ran
EfficientNet-Lite0 about 4 times as fast as torch (131 against 32 images/s, "Inference
throughput" in docs/RESULTS.md). The ONNX file is exported once per key and kept with the
features. When training on a GPU, the trunk runs there: on ONNX Runtime's CUDA provider
where installed, else in torch.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from petal.data.decoded_cache import PhotoSquares
from petal.data.store import RowStore, RowView
from petal.errors import PetalWarning
from petal.fsutil import atomic_write_bytes
from petal.inference.device import CPU, onnx_has_cuda, onnx_providers
from petal.inference.preprocess import to_input
from petal.models.spec import InputSpec
from petal.system import usable_cores
from petal.training.cut import StoredTrunk

FEATURE_FORMAT = 1  # bump when the meaning of stored features changes
BATCH = 32


def view_crop(square: np.ndarray, size: int, mirrored: bool) -> np.ndarray:
    """The central `size` crop of one decoded (S, S, 3) image, mirrored if asked."""
    offset = (square.shape[0] - size) // 2
    crop = square[offset:offset + size, offset:offset + size]
    return crop[:, ::-1] if mirrored else crop


def features_key(architecture: dict, train_from: str, spec: InputSpec, trunk: nn.Module) -> str:
    digest = hashlib.sha256(json.dumps(
        {"format": FEATURE_FORMAT, "architecture": architecture, "cut": train_from,
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


def _runner(trunk: nn.Module, example: torch.Tensor, path: Path, device: str) -> Callable:
    """The trunk as a function of a float32 batch: on ONNX Runtime on the CPU, or on a GPU
    its CUDA provider drives; in torch on a GPU ONNX Runtime cannot drive."""
    if device != CPU and not onnx_has_cuda():
        trunk = trunk.to(device).eval()

        def run(batch: np.ndarray) -> np.ndarray:
            with torch.inference_mode():
                return trunk(torch.from_numpy(batch).to(device)).float().cpu().numpy()

        return run
    return _onnx_runner(trunk, example, path, device)


def _onnx_runner(trunk: nn.Module, example: torch.Tensor, path: Path, device: str) -> Callable:
    import onnxruntime as ort

    providers = onnx_providers(device)
    options = ort.SessionOptions()
    options.intra_op_num_threads = usable_cores()
    if not path.exists():
        _export_trunk(trunk, example, path)
    try:
        session = ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # ORT's own types: a damaged cache file
        warnings.warn(f"the cached trunk {path} is damaged ({str(exc)[:200]}): exported again",
                      PetalWarning, stacklevel=2)
        _export_trunk(trunk, example, path)
        session = ort.InferenceSession(str(path), options, providers=providers)
    return lambda batch: session.run(None, {"input": batch})[0]


class FeatureCache:
    """Trunk outputs of every view of every image, computed once (see module docstring)."""

    def __init__(self, root: str | os.PathLike, trunk: nn.Module, key: str, spec: InputSpec,
                 prepare: nn.Module | None = None, device: str = CPU) -> None:
        """`prepare` runs in torch before the trunk: the antialiased resize of one of several
        trunks (petal.models.multi_trunk), which the TorchScript-based exporter cannot export
        and which costs little next to the trunk. `device`: "cpu" or "cuda:N"."""
        self.dir = Path(root) / "features" / key
        self.spec, self.prepare = spec, prepare
        example = self._prepared(np.zeros((1, 3, spec.size, spec.size), np.float32))
        with torch.inference_mode():
            self.row_shape = tuple(trunk(torch.from_numpy(example)).shape[1:])
        self.dir.mkdir(parents=True, exist_ok=True)
        self.run = _runner(trunk, torch.from_numpy(example), self.dir / "trunk.onnx", device)

    def _prepared(self, batch: np.ndarray) -> np.ndarray:
        if self.prepare is None:
            return batch
        with torch.inference_mode():
            return self.prepare(torch.from_numpy(batch)).numpy()

    def view(self, pixels: np.ndarray | PhotoSquares, keys: list[str], mirrored: bool = False,
             progress: bool = True) -> np.ndarray:
        """(N, *row_shape) float16 features of the central crops of `pixels` (N, S, S, 3, or
        the photos themselves, decoded only where a feature is missing), or of their
        mirrors."""
        view = int(mirrored)
        store = RowStore(self.dir / f"view{view}", self.row_shape, np.float16)
        position = {key: i for i, key in enumerate(keys)}

        def compute(missing: list[str]) -> Iterator[np.ndarray]:
            bar = tqdm(total=len(missing), desc=f"Trunk features, view {view}", unit="img",
                       disable=not progress, leave=False)
            indices = [position[k] for k in missing]
            squares = (pixels.squares(indices) if isinstance(pixels, PhotoSquares)
                       else (pixels[i] for i in indices))
            while chunk := list(itertools.islice(squares, BATCH)):
                crops = np.stack([view_crop(square, self.spec.size, mirrored)
                                  for square in chunk])
                yield from self.run(self._prepared(to_input(crops, self.spec))).astype(np.float16)
                bar.update(len(chunk))
            bar.close()

        return store.ensure(keys, compute)


Features = np.ndarray | RowView


def trunk_features(root: str | os.PathLike, stored: StoredTrunk, architecture: dict,
                   spec: InputSpec, several: bool, device: str = CPU) -> FeatureCache:
    """The feature cache of one trunk of a cut model (petal.training.cut.cut_trunks): keyed by
    the model's `architecture`, or, for one of several trunks, by that trunk alone; its
    missing features computed on `device`."""
    described = {"trunk": stored.name} if several else architecture
    return FeatureCache(root, stored.trunk,
                        features_key(described, stored.cut, spec, stored.trunk), spec,
                        stored.prepare, device)


class CachedFeatures(Dataset):
    """Stored features as a dataset; of a model of several trunks, a tuple of each trunk's,
    which gives each item as a tuple (mirrored maps mirrored together).

    Training keys (index, seed) give a row and, with `flip`, mirror a spatial feature map
    (C, H, W) left-right half the time: the trunk's maps of a mirrored photo are close to
    mirrored maps, and on the flowers set this free augmentation did as well as storing the
    mirrored view (docs/TUNING.md). Evaluation keys are indices and give the row, stacked
    with the mirrored photo's row when `mirrored` features are given (tta_flip).
    """

    def __init__(self, features: Features | tuple[Features, ...], labels: np.ndarray,
                 flip: bool = False, mirrored: Features | None = None) -> None:
        # rows are read from the store when a batch asks for them, never all at once
        self.features, self.labels = features, labels
        self.flip = flip
        self.mirrored = mirrored

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key: int | tuple[int, int]
                    ) -> tuple[torch.Tensor | tuple[torch.Tensor, ...], int]:
        several = isinstance(self.features, tuple)
        stores = self.features if several else (self.features,)
        if isinstance(key, tuple):
            index, seed = key
            mirror = self.flip and np.random.default_rng(seed).random() < 0.5
            rows = [s[index] for s in stores]
            if mirror:
                rows = [row[:, :, ::-1] if row.ndim == 3 else row for row in rows]
        else:
            index = key
            rows = [s[index] if self.mirrored is None
                    else np.stack([s[index], self.mirrored[index]]) for s in stores]
        tensors = tuple(torch.from_numpy(row.astype(np.float32)) for row in rows)
        return (tensors if several else tensors[0]), int(self.labels[index])
