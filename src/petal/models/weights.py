"""Pretrained weights: what the user asked for, reading a local file safely, loading strictly."""

from __future__ import annotations

import os
from pathlib import Path

import safetensors.torch
import torch
from torch import Tensor, nn

from petal.errors import PetalError

IMAGENET = "imagenet"
# None: random initialisation; IMAGENET: the family's published ImageNet weights; a Path:
# a local state-dict file for the architecture with its original (ImageNet) head.
Weights = Path | str | None


def parse_weights(weights: str | os.PathLike | None) -> Weights:
    """Turn `None`/"none", "imagenet" or a path into a `Weights` value; a path must exist."""
    if weights is None or str(weights).lower() == "none":
        return None
    if str(weights).lower() == IMAGENET:
        return IMAGENET
    path = Path(weights).expanduser()
    if not path.is_file():
        raise PetalError(f"weights file {path} not found: pass 'imagenet', 'none' or the path of a "
                         "state-dict file (.pth, .pt or .safetensors)")
    return path


def load_state_file(path: Path) -> dict[str, Tensor]:
    """Read a state dict saved by torch.save or safetensors. Never runs pickled code."""
    try:
        if path.suffix == ".safetensors":
            state = safetensors.torch.load_file(path, device="cpu")
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # each reader has its own error types for a damaged or unsafe file
        raise PetalError(f"cannot read weights file {path}: it is damaged, or it holds pickled "
                         "Python objects besides tensors, which petal refuses (it never runs code "
                         "from a weights file). Save a plain state dict: "
                         "torch.save(model.state_dict(), path)") from exc
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise PetalError(f"{path} holds a {type(state).__name__}, not a state dict (parameter "
                         "names mapped to tensors): save one with "
                         "torch.save(model.state_dict(), path)")
    return state


def _some(keys: list[str], limit: int = 3) -> str:
    more = f" and {len(keys) - limit} more" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def load_strict(model: nn.Module, state: dict[str, Tensor], source: str, arch: str) -> None:
    """Load every tensor of `state` into `model`, or say in one line what does not fit."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    misshaped = [f"{k} {tuple(state[k].shape)} (needs {tuple(v.shape)})"
                 for k, v in expected.items() if k in state and state[k].shape != v.shape]
    found = {"missing": missing, "unexpected": unexpected, "wrong shape": misshaped}
    problems = [f"{what}: {_some(keys)}" for what, keys in found.items() if keys]
    if problems:
        raise PetalError(f"the weights in {source} do not fit {arch} ({'; '.join(problems)}): "
                         f"pass weights saved from {arch} with its original ImageNet head")
    model.load_state_dict(state, strict=True)


def download_error(arch: str, exc: OSError) -> PetalError:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return PetalError(f"could not download the ImageNet weights of {arch} ({reason}). Without "
                      "internet, pass --weights PATH (a state-dict file copied to this machine) "
                      "or use efficientnet_lite0/1/2, whose ImageNet weights come installed")
