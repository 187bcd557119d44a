"""Evaluate a model: accuracy, top-k accuracy, per-class precision/recall/F1, confusion matrix,
ECE. Writes metrics.json, confusion_matrix.png (counts and row-normalised panels),
worst_mistakes.png and reliability.png into --out (default RUN/eval for the model's own
validation split, RUN/eval-NAME for --data NAME).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from petal.cli.common import add_cache_dir, add_progress, positive_int, wants_progress


def add_commands(verbs: argparse._SubParsersAction) -> None:
    evaluate = verbs.add_parser(
        "evaluate", help="metrics and figures on the validation split or another folder",
        description=__doc__)
    evaluate.add_argument("model", help="run folder or model folder, or an exported .onnx "
                          "file in one (model.int8.onnx)")
    evaluate.add_argument("--data", help="another image folder (one sub-folder per class) to "
                          "evaluate on; class folders are matched to the model's classes by "
                          "name, singular or plural, any case")
    evaluate.add_argument("--split", help="evaluate a part of this split file instead (of --data, "
                          "else of the model's data folder)")
    evaluate.add_argument("--part", default="val", choices=["train", "val", "test"],
                          help="the part of the split (--split, else the model's own) to "
                          "evaluate (default val)")
    evaluate.add_argument("--class-map", metavar="FILE_OR_PAIRS",
                          help="folder -> class: a JSON file {\"roses\": \"rose\"} or pairs "
                          "roses=rose,daisies=daisy")
    evaluate.add_argument("--tta", action="store_true", help="for a model without a mirrored "
                          "view of its own: average the probabilities of each "
                          "image and its horizontal mirror")
    evaluate.add_argument("--include-training", action="store_true",
                          help="also score photos the model was trained on (found by content; "
                          "left out by default, as they overstate accuracy)")
    evaluate.add_argument("--unknown", metavar="DIR", help="photos of none of the model's "
                          "classes (any layout): how well the model calls them unknown "
                          "(AUROC, FPR95, novelty.png)")
    evaluate.add_argument("--out", help="output folder (default RUN/eval or RUN/eval-NAME)")
    evaluate.add_argument("--top-k", type=positive_int, default=2,
                          help="k for top-k accuracy (default 2)")
    evaluate.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    add_cache_dir(evaluate)
    add_progress(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from petal.api import evaluate
    from petal.report.evaluation_text import format_summary

    metrics = evaluate(args.model, data=args.data, split=args.split, class_map=args.class_map,
                       tta=args.tta, out=args.out, part=args.part, top_k=args.top_k,
                       cache_dir=args.cache_dir, progress=wants_progress(args),
                       include_training=args.include_training, unknown=args.unknown).metrics
    for item in metrics["skipped"]:
        print(f"skipped {Path(metrics['data']) / item['path']}: {item['message']}",
              file=sys.stderr)
    print(json.dumps(metrics, indent=2) if args.json else format_summary(metrics))
    return 0
