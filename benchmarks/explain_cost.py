"""What explanations cost: milliseconds per image added by the class activation maps.

    .venv/bin/python benchmarks/explain_cost.py --json benchmarks/results/explain_cost.json

For EfficientNet-Lite0 (224 px) and ResNet9 (the fast recipe's: width 0.25, 64 px, each image
averaged with its mirror), the forward pass with and without the maps as an output, in torch
and in ONNX Runtime, one image at a time and in batches of 32 (median of 30 runs after 3
warm-up runs); and drawing one explanation (the map resized, laid over the photo, PNG-encoded,
as `?explain=true` does). The maps come out of every forward pass petal runs, so the first
difference is what every prediction pays; the drawing is paid only when asked.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from common import record
from PIL import Image

from petal.inference.explain import overlay, resized_heat
from petal.models import build_model, cam_layers
from petal.models.features import AnswerWithFeatures

MODELS = {"efficientnet_lite0": {"input_size": 224},
          "resnet9": {"input_size": 64, "width": 0.25}}
RUNS, WARM_UP = 30, 3


def median_ms(run, batch: np.ndarray) -> float:
    for _ in range(WARM_UP):
        run(batch)
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        run(batch)
        times.append((time.perf_counter() - start) * 1000 / len(batch))
    return round(statistics.median(times), 3)


def onnx_session(model: torch.nn.Module, example: torch.Tensor, outputs: int
                 ) -> ort.InferenceSession:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(model, (example,), input_names=["input"],
                                    output_names=[f"out{i}" for i in range(outputs)],
                                    dynamic_shapes=({0: torch.export.Dim("batch", min=1)},),
                                    dynamo=True, verbose=False)
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(program.model_proto.SerializeToString(), options,
                                providers=["CPUExecutionProvider"])


def measure(name: str, options: dict) -> dict:
    network, spec = build_model(name, 5, weights=None, **options)
    network.eval()
    if name == "resnet9":
        spec = dataclasses.replace(spec, mirror=True)  # as fast-resnet9 answers
    size = spec.size
    plain = AnswerWithFeatures(network, spec)
    mapped = AnswerWithFeatures(network, spec, cam_layers(name, network))
    result = {"model": name, "input_size": size, "mirror": spec.mirror}
    for batch_size in (1, 32):
        batch = np.random.default_rng(0).standard_normal((batch_size, 3, size, size),
                                                         dtype=np.float32)
        with torch.inference_mode():
            for label, module in (("torch_without", plain), ("torch_with", mapped)):
                result[f"{label}_batch_{batch_size}"] = median_ms(
                    lambda b, m=module: m(torch.from_numpy(b)), batch)
        example = torch.from_numpy(batch[:2].copy()) if batch_size > 1 else \
            torch.from_numpy(np.repeat(batch, 2, axis=0))
        for label, module, outputs in (("onnx_without", plain, 2), ("onnx_with", mapped, 3)):
            session = onnx_session(module, example, outputs)
            result[f"{label}_batch_{batch_size}"] = median_ms(
                lambda b, s=session: s.run(None, {"input": b}), batch)
    photo = np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)
    with torch.inference_mode():
        maps = mapped(torch.from_numpy(np.zeros((1, 3, size, size), np.float32)))[2].numpy()

    def draw(_: np.ndarray) -> None:
        heat = resized_heat(np.maximum(maps[0, 0], 0), size)
        Image.fromarray(overlay(photo, heat)).save(io.BytesIO(), "PNG")

    result["draw_one_ms"] = median_ms(draw, np.zeros((1,)))
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    torch.set_num_threads(2)
    results = {"models": [measure(name, options) for name, options in MODELS.items()]}
    for r in results["models"]:
        print(f"{r['model']} ({r['input_size']} px): ms an image, without -> with maps")
        for engine in ("torch", "onnx"):
            for batch in (1, 32):
                print(f"  {engine:<5} batch {batch:>2}: {r[f'{engine}_without_batch_{batch}']:.2f}"
                      f" -> {r[f'{engine}_with_batch_{batch}']:.2f}")
        print(f"  drawing one explanation (PNG): {r['draw_one_ms']:.2f} ms")
    if args.json:
        record(args.json, results, "ms an image of the forward pass with and without class "
               "activation maps (torch and ONNX Runtime, alone and in batches of 32) and of "
               "drawing one explanation, for Lite0 and ResNet9")
    return 0


if __name__ == "__main__":
    sys.exit(main())
