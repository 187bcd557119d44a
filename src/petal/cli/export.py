"""Export a trained model. The file takes float32 (N, 3, size, size) RGB normalised with the
model's mean and std (see FILE.json) and returns logits. Default: model.onnx / model.pt inside
the model folder.
"""

from __future__ import annotations

import argparse


def add_commands(verbs: argparse._SubParsersAction) -> None:
    export = verbs.add_parser(
        "export", help="write a model as ONNX or TorchScript, with its model card",
        description=__doc__)
    export.add_argument("model", help="run folder or model folder")
    export.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    export.add_argument("--out", help="output file (default: MODEL_FOLDER/model.onnx or model.pt)")
    export.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from petal.inference.export import export

    result = export(args.model, fmt=args.format, out=args.out, opset=args.opset)
    print(f"Exported {args.format}: {result.path} (model card: {result.sidecar}); "
          f"max |logit difference| from torch on a random batch: {result.max_abs_diff:.2e}")
    return 0
