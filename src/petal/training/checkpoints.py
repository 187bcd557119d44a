"""Lightning checkpoints that are safe to write and to read back (`--resume`).

Lightning's own CheckpointIO writes through fsspec, which stages the file in the system's
temporary folder and then moves it: across file systems that move is a copy, and a full
disk left a truncated `best.ckpt` in place of the good one. Here the file is staged beside
its final path and renamed over it (`atomic_write_bytes`). Reading uses torch's
`weights_only` unpickler, which rebuilds tensors, numbers, strings and containers and
refuses anything else, so a crafted `last.ckpt` cannot run code.
"""

from __future__ import annotations

import io
import os
import pickle
from typing import Any

import torch
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

from petal.errors import PetalError
from petal.fsutil import atomic_write_bytes


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """A checkpoint's contents on the CPU; PetalError when it is damaged or holds objects
    other than tensors, numbers, strings and containers of them."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        raise PetalError(
            f"cannot resume from {path}: it is damaged, or it holds Python objects besides "
            "tensors and numbers, which petal does not load (they could run code). Start the "
            "run again in a new --out folder") from exc
    if not isinstance(state, dict) or not {"epoch", "global_step", "state_dict"} <= set(state):
        raise PetalError(f"{path} is not a Lightning checkpoint: start the run again in a new "
                         "--out folder")
    return state


class SafeCheckpointIO(TorchCheckpointIO):
    """Atomic writes beside the target, reads that never unpickle code (module docstring)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | os.PathLike,
                        storage_options: Any | None = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())

    def load_checkpoint(self, path: str | os.PathLike, map_location: Any = None,
                        weights_only: bool | None = None) -> dict[str, Any]:
        return read_checkpoint(path)
