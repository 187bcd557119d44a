"""Batch inference throughput, torch vs ONNX Runtime, next to this CPU's physical bound.

The model is a petal model folder: by default the ImageNet EfficientNet-Lite0 itself
(1000 classes, 224 px; petal's offline weights), saved as a model folder and exported
with `petal export`; `--model RUN` measures a trained run instead. Each engine is loaded
with `petal.load` in this one process and timed on `Classifier.probabilities`, the batch
path of `petal predict` (uint8 images -> normalised tensor -> network -> softmax), on
already decoded images, so the figure is the network's and not the JPEG decoder's.

The bound: the peak float32 GFLOP/s this machine reaches on a large matrix multiply
(torch.mm, all cores, best of several) divided by the GFLOPs one image costs (counted by
torch.utils.flop_counter: 2 per multiply-accumulate). No engine can beat it; depthwise
convolutions, which are memory-bound, keep real networks below it.

    .venv/bin/python benchmarks/inference_throughput.py \\
        --json benchmarks/results/inference_throughput.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from common import record
from torch.utils.flop_counter import FlopCounterMode

import petal
from petal.inference.classifier import Classifier
from petal.inference.device import onnx_has_cuda
from petal.inference.export import export
from petal.inference.model_folder import ModelCard, load_model, save_model_folder
from petal.models import architecture_config, build_model
from petal.system import usable_cores

PRETRAINED = "efficientnet_lite0"
MATMUL_SIDE = 2048


def peak_gflops(repeats: int = 10) -> float:
    """Best float32 GFLOP/s of a MATMUL_SIDE-square torch.mm on all cores."""
    a, b = torch.randn(MATMUL_SIDE, MATMUL_SIDE), torch.randn(MATMUL_SIDE, MATMUL_SIDE)
    torch.mm(a, b)  # warm-up
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * MATMUL_SIDE**3 / best / 1e9


def gflops_per_image(model_path: Path) -> float:
    model, card = load_model(model_path)
    image = torch.zeros(1, 3, card.input.size, card.input.size)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(image)
    return counter.get_total_flops() / 1e9


def pretrained_model_folder(folder: Path) -> Path:
    """The ImageNet EfficientNet-Lite0, 1000-class head kept, as a petal model folder."""
    model, spec = build_model(PRETRAINED, 1000, weights="imagenet")
    card = ModelCard(architecture=architecture_config(PRETRAINED, 1000),
                     classes=[f"imagenet_{i}" for i in range(1000)], input=spec,
                     data="ImageNet (pretrained weights, not trained by petal)")
    return save_model_folder(folder, model, card)


def images_per_second(classifier: Classifier, images: np.ndarray, rounds: int) -> float:
    """Best of `rounds` passes over `images` (after one warm-up batch)."""
    classifier.answer(images[:classifier.batch_size])
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        classifier.answer(images)
        best = min(best, time.perf_counter() - start)
    return len(images) / best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path,
                        help="run or model folder (default: the ImageNet EfficientNet-Lite0)")
    parser.add_argument("--images", type=int, default=256, help="images per pass (default 256)")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32, as petal predict")
    parser.add_argument("--rounds", type=int, default=3, help="passes per engine; best counts")
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N; the "
                        "bound is the CPU's either way")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="petal-throughput-") as scratch:
        model_path = args.model or pretrained_model_folder(Path(scratch) / "model")
        onnx_path = export(model_path, out=Path(scratch) / "model.onnx").path
        gflops = gflops_per_image(model_path)
        peak = peak_gflops()
        bound = peak / gflops
        engines = {"torch": petal.load(model_path, engine="torch", device=args.device)}
        if args.device == "cpu" or onnx_has_cuda():  # else ONNX Runtime cannot use the GPU
            engines["onnx"] = petal.load(onnx_path, engine="onnx", device=args.device)
        size = engines["torch"].spec.size
        images = np.random.default_rng(0).integers(0, 256, (args.images, size, size, 3),
                                                   dtype=np.uint8)
        results = {}
        for name, classifier in engines.items():
            classifier.batch_size = args.batch_size
            rate = images_per_second(classifier, images, args.rounds)
            results[name] = {"images_per_second": rate, "fraction_of_bound": rate / bound}

    architecture = engines["torch"].card.architecture["name"]
    print(f"{architecture} at {size} px: {gflops:.3f} GFLOP per image; peak matmul "
          f"{peak:.1f} GFLOP/s on {usable_cores()} cores -> bound {bound:.0f} images/s")
    print(f"{'engine':<7} {'images/s':>9} {'of bound':>9}")
    for name, result in results.items():
        print(f"{name:<7} {result['images_per_second']:>9.1f} "
              f"{result['fraction_of_bound']:>9.1%}")
    if args.json:
        record(args.json, {
            "model": str(args.model or f"{PRETRAINED} (ImageNet)"), "input_size": size,
            "device": args.device,
            "batch_size": args.batch_size, "images": args.images,
            "gflop_per_image": gflops, "peak_matmul_gflops": peak, "bound_images_per_second":
            bound, "engines": results}, "images/s of torch and ONNX Runtime against the "
            "CPU's bound")
    return 0


if __name__ == "__main__":
    sys.exit(main())
