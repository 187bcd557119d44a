"""Where ONNX Runtime's time goes on this CPU, and what int8 buys: the settings petal runs
its exported models with, against the alternatives, next to the CPU's bound.

1. Session settings at batch 32: intra-op threads (1, all cores), graph optimisation level
   (basic, extended, all: "all" adds the NCHWc layout transforms) and thread spinning
   (petal turns it off: idle threads otherwise take the cores that decode photos).
2. Batch size 1 to 64 with petal's settings.
3. Preprocessing outside the graph (uint8 -> normalised float32, `to_input`) per image,
   against the graph's own time.
4. With `--model RUN` (a trained run whose photos are here): the int8 export
   (`petal export RUN --quantize`), its images/s and its accuracy on the run's validation
   photos next to float32's.

The bound is inference_throughput.py's: peak matmul GFLOP/s / GFLOP per image.

    .venv/bin/python benchmarks/onnx_profile.py --model runs/ft \\
        --json benchmarks/results/onnx_profile.json
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from common import record
from inference_throughput import gflops_per_image, peak_gflops, pretrained_model_folder

import petal
from petal.data.split import Split
from petal.fsutil import read_json
from petal.inference.export import export
from petal.inference.preprocess import to_input
from petal.run_folder import CONFIG_FILE, SPLIT_FILE
from petal.system import usable_cores

LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL}


def session(path: Path, threads: int, level: str, spinning: bool) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.graph_optimization_level = LEVELS[level]
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def rate(run: ort.InferenceSession, inputs: np.ndarray, batch: int, rounds: int) -> float:
    """Best images/s of `rounds` passes over `inputs` in batches of `batch`."""
    run.run(None, {"input": inputs[:batch]})
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        for i in range(0, len(inputs), batch):
            run.run(None, {"input": inputs[i:i + batch]})
        best = min(best, time.perf_counter() - start)
    return len(inputs) / best


def validation_accuracy(model: Path, run: Path) -> tuple[int, int, int]:
    """(correct, photos, called unknown) of `model` (an .onnx file) on `run`'s validation
    photos (the unknown threshold is the float32 model's, set on its validation photos)."""
    classifier = petal.load(model, engine="onnx")
    data = Path(read_json(run / CONFIG_FILE)["data"])
    items = Split.load(run / SPLIT_FILE).val
    arrays = np.stack([classifier.prepare(data / item.path) for item in items])
    labels = np.array([classifier.classes.index(item.label) for item in items])
    answer = classifier.answer(arrays)
    unknown = (0 if answer.novelty is None or classifier.novelty is None
               else int((answer.novelty > classifier.novelty.threshold).sum()))
    return int((answer.probabilities.argmax(1) == labels).sum()), len(items), unknown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a trained run (default: the ImageNet "
                        "EfficientNet-Lite0, without the int8 accuracy)")
    parser.add_argument("--images", type=int, default=128, help="images per pass")
    parser.add_argument("--rounds", type=int, default=3, help="passes per setting; best counts")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()

    cores = usable_cores()
    results: dict = {"settings": [], "batches": [], "int8": None}
    with tempfile.TemporaryDirectory(prefix="petal-onnx-profile-") as scratch:
        model = args.model or pretrained_model_folder(Path(scratch) / "model")
        fp32 = export(model, out=Path(scratch) / "model.onnx").path
        spec = petal.load(fp32, engine="onnx").spec
        gflops = gflops_per_image(model)
        bound = peak_gflops() / gflops
        pixels = np.random.default_rng(0).integers(0, 256, (args.images, spec.size, spec.size, 3),
                                                   dtype=np.uint8)
        inputs = to_input(pixels, spec)
        print(f"{spec.size} px, {gflops:.3f} GFLOP an image, bound {bound:.0f} images/s on "
              f"{cores} cores\n\n{'threads':>7} {'level':>9} {'spinning':>8} {'images/s':>9} "
              f"{'of bound':>8}")
        for threads in sorted({1, cores}):
            for level in LEVELS:
                for spinning in (False, True):
                    measured = rate(session(fp32, threads, level, spinning), inputs, 32,
                                    args.rounds)
                    results["settings"].append({"threads": threads, "level": level,
                                                "spinning": spinning,
                                                "images_per_second": measured})
                    print(f"{threads:>7} {level:>9} {str(spinning):>8} {measured:>9.1f} "
                          f"{measured / bound:>8.1%}", flush=True)
        petal_settings = session(fp32, cores, "all", False)
        print(f"\n{'batch':>5} {'images/s':>9} {'of bound':>8}")
        for batch in (1, 8, 32, 64):
            measured = rate(petal_settings, inputs, batch, args.rounds)
            results["batches"].append({"batch": batch, "images_per_second": measured})
            print(f"{batch:>5} {measured:>9.1f} {measured / bound:>8.1%}", flush=True)
        start = time.perf_counter()
        for i in range(0, len(pixels), 32):
            to_input(pixels[i:i + 32], spec)
        preprocess_ms = 1000 * (time.perf_counter() - start) / len(pixels)
        graph_ms = 1000 / results["batches"][2]["images_per_second"]
        results["preprocess_ms_per_image"], results["graph_ms_per_image"] = (preprocess_ms,
                                                                              graph_ms)
        print(f"\npreprocessing outside the graph {preprocess_ms:.2f} ms an image, the graph "
              f"{graph_ms:.2f} ms ({preprocess_ms / graph_ms:.1%})")
        if args.model:
            int8 = export(model, out=Path(scratch) / "model.int8.onnx", quantize=True).path
            fast = rate(session(int8, cores, "all", False), inputs, 32, args.rounds)
            accuracy = {name: validation_accuracy(path, args.model)
                        for name, path in (("fp32", fp32), ("int8", int8))}
            results["int8"] = {"images_per_second": fast, "speedup": fast * graph_ms / 1000,
                               "accuracy": accuracy}
            print(f"\nint8: {fast:.1f} images/s ({results['int8']['speedup']:.2f}x float32 at "
                  f"batch 32); validation accuracy float32 {accuracy['fp32'][0]} of "
                  f"{accuracy['fp32'][1]}, int8 {accuracy['int8'][0]} of {accuracy['int8'][1]}; "
                  f"called unknown: float32 {accuracy['fp32'][2]}, int8 {accuracy['int8'][2]}")
    if args.json:
        record(args.json, {
            "model": str(args.model or "efficientnet_lite0 (ImageNet)"), "input_size": spec.size,
            "gflop_per_image": gflops, "bound_images_per_second": bound, **results},
            "ONNX Runtime's images/s by threads, optimisation level, spinning and batch size; "
            "preprocessing's share; int8 against float32 (images/s, validation accuracy, "
            "photos called unknown)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
