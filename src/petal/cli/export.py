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
    export.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's, 18; "
                        "an older one where the exporter can convert the model, else refused)")
    export.add_argument("--quantize", action="store_true",
                        help="an int8 ONNX file (default MODEL_FOLDER/model.int8.onnx): about "
                        "twice as fast on a CPU, calibrated on 200 of the run's training photos")
    export.add_argument("--calibration", metavar="FOLDER",
                        help="with --quantize: calibrate on these photos instead (for a model "
                        "folder outside its run)")
    export.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from petal.api import export

    result = export(args.model, format=args.format, out=args.out, opset=args.opset,
                    quantize=args.quantize, calibration=args.calibration)
    if result.agreement is None:
        print(f"Exported {args.format}: {result.path} (model card: {result.sidecar}); max "
              f"|logit difference| from torch on a random batch: {result.max_abs_diff:.2e}")
    else:
        same, n = result.agreement
        print(f"Exported int8 ONNX: {result.path} (model card: {result.sidecar}); it gives "
              f"float32's label to {same} of {n} usable calibration photos. Check its accuracy "
              f"on photos it did not calibrate on before using it: `petal evaluate "
              f"{result.path}` (add --data DIR for a file outside its model folder)")
    return 0
