"""The number format training computes in: `--precision auto` (the default) picks bfloat16
mixed precision where the hardware has native bfloat16 arithmetic, else float32.

Measured on a 2-core Intel Xeon with AMX (benchmarks/train_step.py, docs/RESULTS.md): the
fast-resnet9 step ran 2.1 times faster in bf16-mixed, channels-last, with the same accuracy
over three splits and three seeds (0.26 points lower on average, within the spread). Without
AMX, PyTorch emulates bf16 convolutions on the CPU, which is slower than float32, so such
CPUs keep float32. Training on stored trunk features (cached mode) trains one small head,
where a narrower format saves nothing: it stays float32.
"""

from __future__ import annotations

from petal.errors import PetalError

# torch is imported inside the functions: the command line reads AUTO and CHOICES at start-up
AUTO = "auto"
CHOICES = (AUTO, "32-true", "bf16-mixed", "16-mixed", "64-true")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bfloat16 matrices in hardware (Intel AMX tiles)."""
    import torch

    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def uses_cuda(accelerator: str) -> bool:
    """Whether Lightning's `accelerator` lands on a CUDA GPU here ("auto" picks one if any)."""
    import torch

    return accelerator in {"gpu", "cuda"} or (accelerator == AUTO and torch.cuda.is_available())


def training_precision(requested: str, accelerator: str, images_in: bool) -> str:
    """The Lightning precision to train at: `requested`, or for "auto" bf16-mixed on a GPU or
    CPU with native bfloat16 when images go in (full mode), else 32-true."""
    import torch

    if requested == "16-mixed" and not uses_cuda(accelerator):
        raise PetalError("precision 16-mixed needs a GPU (float16 has no fast path on a CPU, "
                         "where Lightning would switch to bf16-mixed): use bf16-mixed or 32-true")
    if requested != AUTO:
        return requested
    if not images_in:
        return "32-true"
    if uses_cuda(accelerator):
        return "bf16-mixed" if torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if accelerator in {AUTO, "cpu"} and cpu_has_fast_bf16() else "32-true"


def describe_training(accelerator: str, precision: str) -> str:
    """One line for the start of a training: where it runs and in what format."""
    import torch

    if uses_cuda(accelerator):
        where = f"GPU ({torch.cuda.get_device_name()})"
    else:
        where = f"CPU ({torch.get_num_threads()} threads)"
    formats = {"32-true": "float32", "bf16-mixed": "bfloat16 mixed precision",
               "16-mixed": "float16 mixed precision", "64-true": "float64"}
    return f"Training on {where}, {formats.get(precision, precision)}"
