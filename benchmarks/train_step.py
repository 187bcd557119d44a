"""Training speed of one network on this CPU: eager vs torch.compile, channels-last or not,
float32 or bfloat16 mixed precision.

Times full training steps (forward, cross-entropy, backward, Adam) of a petal model on
one random batch, after two warm-up steps, and prints images/s for each variant, so the
choices in train/module.py (channels-last, no torch.compile) and train/precision.py (bf16
where the CPU has AMX) can be checked on another machine. Pin it to cores with taskset to
compare thread counts.

    .venv/bin/python benchmarks/train_step.py --json benchmarks/results/train_step.json
    .venv/bin/python benchmarks/train_step.py --model resnet9 --width 0.25 --size 64 \\
        --batch 64 --steps 20 --json benchmarks/results/train_step_fast_resnet9.json
    taskset -c 0 .venv/bin/python benchmarks/train_step.py \\
        --json benchmarks/results/train_step_one_core.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from common import record

from petal.models import build_model

VARIANTS = {  # name -> (channels-last, compiled, bf16 autocast)
    "eager, channels-last": (True, False, False),
    "eager, contiguous": (False, False, False),
    "torch.compile, channels-last": (True, True, False),
    "eager, channels-last, bf16-mixed": (True, False, True),
    "torch.compile, channels-last, bf16-mixed": (True, True, True),
}


def images_per_second(model_name: str, batch: int, size: int, steps: int, width: float | None,
                      channels_last: bool, compiled: bool, bf16: bool) -> tuple[float, float]:
    """(images/s over `steps` steps, seconds of the first step, compilation included)."""
    torch.manual_seed(0)
    options = {"width": width} if width is not None else {}
    network, _ = build_model(model_name, 5, weights="none", input_size=size, **options)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    network = network.to(memory_format=layout).train()
    optimizer = torch.optim.Adam(network.parameters(), 1e-4)
    forward = torch.compile(network) if compiled else network
    inputs = torch.randn(batch, 3, size, size).contiguous(memory_format=layout)
    labels = torch.randint(0, 5, (batch,))

    def step() -> None:
        optimizer.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = forward(inputs)
        torch.nn.functional.cross_entropy(logits.float(), labels).backward()
        optimizer.step()

    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - start), first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="efficientnet_lite0")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--width", type=float, help="resnet9's channel multiplier")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    print(f"{args.model}, batch {args.batch}, {args.size} px, {torch.get_num_threads()} threads")
    results = []
    for name, (channels_last, compiled, bf16) in VARIANTS.items():
        rate, first = images_per_second(args.model, args.batch, args.size, args.steps,
                                        args.width, channels_last, compiled, bf16)
        results.append({"variant": name, "images_per_s": round(rate, 1),
                        "first_step_s": round(first, 1)})
        print(f"{name:<42} {rate:6.1f} images/s  (first step {first:.1f} s)", flush=True)
    if args.json:
        record(args.json, {"model": args.model,
            "width": args.width, "batch": args.batch, "size": args.size,
            "threads": torch.get_num_threads(),
            "results": results}, f"bare {args.model} training steps, "
            f"{torch.get_num_threads()} threads: eager, contiguous, `torch.compile`, bf16")
    return 0


if __name__ == "__main__":
    sys.exit(main())
