"""Where inference runs: `--device auto` (the default) uses a CUDA GPU when there is one and
an engine here can drive it, else the CPU; `cpu` and `cuda` / `cuda:N` ask for one.

ONNX Runtime drives a GPU through its CUDA provider, which only the onnxruntime-gpu package
has; torch through its CUDA build. With a GPU and no CUDA provider, the default engine is
torch on the GPU. Looking for a GPU costs nothing on a machine without one: the NVIDIA
driver is looked for before torch (seconds to import) is asked.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from petal.errors import PetalError

AUTO, CPU = "auto", "cpu"
NVIDIA_GPUS = Path("/proc/driver/nvidia/gpus")  # one entry per GPU the Linux driver sees


def onnx_has_cuda() -> bool:
    """Whether the installed ONNX Runtime has its CUDA provider (onnxruntime-gpu)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def torch_has_cuda() -> bool:
    """Whether torch is installed with CUDA and sees a GPU."""
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def driver_sees_gpu() -> bool:
    """A cheap first look: on Linux the NVIDIA driver lists its GPUs under /proc; elsewhere
    torch is asked."""
    if sys.platform.startswith("linux") and "CUDA_VISIBLE_DEVICES" not in os.environ:
        return NVIDIA_GPUS.is_dir() and any(NVIDIA_GPUS.iterdir())
    return torch_has_cuda()


def resolve_device(requested: str | None, engine: str | None = None) -> str:
    """"cpu" or "cuda:N" for `requested` (None or "auto": a GPU when `engine`, "onnx" or
    "torch", or either when None, can use one)."""
    if requested is not None and not isinstance(requested, str):
        raise PetalError(f"device {requested!r}: give a string, auto, cpu, cuda or cuda:N")
    text = AUTO if requested is None else requested.lower()
    if text == CPU:
        return CPU
    if text == AUTO:
        if not driver_sees_gpu():
            return CPU
        usable = {"onnx": onnx_has_cuda, "torch": torch_has_cuda}
        wanted = [usable[engine]] if engine in usable else list(usable.values())
        return "cuda:0" if any(has_cuda() for has_cuda in wanted) else CPU
    name, _, number = text.partition(":")
    if name != "cuda" or not (number == "" or number.isdigit()):
        raise PetalError(f"device {requested!r}: use auto, cpu, cuda or cuda:N")
    if not (torch_has_cuda() or onnx_has_cuda()):
        raise PetalError(f"device {requested!r}: no CUDA GPU can be used here (torch sees "
                         "none and ONNX Runtime has no CUDA provider); use the cpu")
    return f"cuda:{number or 0}"


def device_index(device: str) -> int:
    """N of "cuda:N"."""
    return int(device.partition(":")[2] or 0)


def onnx_providers(device: str) -> list:
    """ONNX Runtime's execution providers for `device`, the CPU's last as a fallback."""
    if device == CPU:
        return ["CPUExecutionProvider"]
    if not onnx_has_cuda():
        raise PetalError(f"ONNX Runtime here has no CUDA provider for {device}: install "
                         "onnxruntime-gpu, or use the torch engine (or the cpu)")
    return [("CUDAExecutionProvider", {"device_id": device_index(device)}),
            "CPUExecutionProvider"]


def describe_device(device: str) -> str:
    """"CPU", or "GPU cuda:0 (its name)" when torch can name it."""
    if device == CPU:
        return "CPU"
    if "torch" in sys.modules and torch_has_cuda():
        import torch

        return f"GPU {device} ({torch.cuda.get_device_name(device_index(device))})"
    return f"GPU {device}"
