"""`petal evaluate`, `petal predict`, `petal compare`."""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from petal.cli.common import add_cache_dir, add_progress, wants_progress
from petal.errors import PetalError

if TYPE_CHECKING:
    from petal.predict import Classifier, Prediction


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def _load(model: str, engine: str | None) -> Classifier:
    """petal.load with --engine when given, else petal.load's own choice for the path."""
    import petal

    return petal.load(model, engine=engine) if engine else petal.load(model)


# --- evaluate --------------------------------------------------------------------------------

def cmd_evaluate(args: argparse.Namespace) -> int:
    from petal.evaluate import evaluate, format_summary

    metrics = evaluate(args.model, data=args.data, split_file=args.split,
                       class_map=args.class_map, tta=args.tta, out=args.out, part=args.part,
                       top_k=args.top_k, cache_dir=args.cache_dir, progress=wants_progress(args),
                       include_training=args.include_training)
    for item in metrics["skipped"]:
        print(f"skipped {Path(metrics['data']) / item['path']}: {item['message']}",
              file=sys.stderr)
    print(json.dumps(metrics, indent=2) if args.json else format_summary(metrics))
    return 0


# --- predict ---------------------------------------------------------------------------------

def input_files(paths: Sequence[str]) -> list[Path]:
    """The files named, with folders walked recursively in sorted order."""
    files = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            files.extend(Path(dirpath) / name for name in sorted(filenames))
    return files


def predict_batches(classifier: Classifier, files: Sequence[Path], top_k: int,
                    progress: bool = False) -> Iterator[list[Prediction]]:
    """Predictions batch by batch; unreadable files are reported on stderr and left out."""
    import numpy as np
    from tqdm import tqdm

    from petal.data.image import ImageLoadError

    step = classifier.batch_size
    with tqdm(total=len(files), desc="Predicting", unit="img", leave=False,
              disable=not progress) as bar:
        for start in range(0, len(files), step):
            arrays, sources = [], []
            for path in files[start:start + step]:
                try:
                    arrays.append(classifier.prepare(path))
                    sources.append(str(path))
                except ImageLoadError as exc:
                    bar.write(f"skipped {path}: {exc.message}", file=sys.stderr)
            bar.update(min(step, len(files) - start))
            if arrays:
                yield classifier.top_k(classifier.probabilities(np.stack(arrays)), sources, top_k)


def _table_row(prediction: Prediction, widths: tuple[int, int]) -> str:
    rest = "  ".join(f"{label} {p:.1%}" for label, p in
                     zip(prediction.labels[1:], prediction.probabilities[1:]))
    return (f"{prediction.source:<{widths[0]}}  {prediction.label:<{widths[1]}} "
            f"{prediction.probability:>7.1%}  {rest}").rstrip()


def cmd_predict(args: argparse.Namespace) -> int:
    classifier = _load(args.model, args.engine)
    classifier.batch_size = args.batch_size
    files = input_files(args.paths)
    if not files:
        raise PetalError(f"no files in {', '.join(args.paths)}")
    widths = (max(len(str(f)) for f in files),
              max(len(c) for c in classifier.classes + ["label"]))
    writer = csv.writer(sys.stdout) if args.format == "csv" else None
    predictions: list[Prediction] = []
    for batch in predict_batches(classifier, files, args.top_k, wants_progress(args)):
        if not predictions:  # the header once something is to follow it
            if writer:
                writer.writerow(["path", "rank", "label", "probability"])
            elif args.format == "table":
                print(f"{'path':<{widths[0]}}  {'label':<{widths[1]}} {'prob':>7}  "
                      f"others (top-{args.top_k})")
        predictions += batch
        for prediction in batch:
            if writer:
                writer.writerows([prediction.source, rank, label, f"{p:.6f}"] for rank, (label, p)
                                 in enumerate(zip(prediction.labels, prediction.probabilities), 1))
            elif args.format == "table":
                print(_table_row(prediction, widths), flush=True)
    if not predictions:
        raise PetalError(f"no image could be predicted: all {len(files)} file(s) were skipped")
    if args.format == "json":
        print(json.dumps([p.to_json() for p in predictions], indent=2))
    summary = f"Predicted {len(predictions)} image(s), skipped {len(files) - len(predictions)}"
    if args.figure:
        _prediction_figure(predictions, Path(args.figure))
        summary += f"; figure: {args.figure}"
    print(summary, file=sys.stdout if args.format == "table" else sys.stderr)
    return 0


def _prediction_figure(predictions: Sequence[Prediction], path: Path) -> None:
    from petal.report.figures import GALLERY_MAX, plot_predictions, thumbnail

    shown = predictions[:GALLERY_MAX]
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_predictions([thumbnail(p.source) for p in shown], [p.label for p in shown],
                     [p.probability for p in shown], path, total=len(predictions))


# --- compare ---------------------------------------------------------------------------------

def model_title(model: str, classifier: Classifier) -> str:
    """The run (or model folder, or file) name and the architecture, for a figure title."""
    from petal.evaluate import run_folder
    from petal.modelio import find_model_folder

    path = Path(model).resolve()
    name = path.stem if path.is_file() else run_folder(find_model_folder(path)).name
    return f"{name} ({classifier.card.architecture.get('name', '?')})"


def cmd_compare(args: argparse.Namespace) -> int:
    from petal.data.image import ImageLoadError
    from petal.report.figures import Ranking, plot_comparison, thumbnail

    try:
        image = thumbnail(args.image, side=384)
    except ImageLoadError as exc:
        raise PetalError(f"cannot use {args.image}: {exc.message}") from exc
    rankings = []
    for model in args.models:
        classifier = _load(model, args.engine)
        prediction = classifier.predict(args.image, top_k=args.top_k)
        title = model_title(model, classifier)
        rankings.append(Ranking(title, prediction.labels, prediction.probabilities))
        print(f"{title}: " + ", ".join(f"{label} {p:.1%}" for label, p
                                       in zip(prediction.labels, prediction.probabilities)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(image, rankings, out)
    print(f"Wrote {out}")
    return 0


# --- the verbs -------------------------------------------------------------------------------

def _add_engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", help="inference engine, e.g. torch (default: chosen from "
                        "the model path)")


def add_commands(verbs: argparse._SubParsersAction) -> None:
    evaluate = verbs.add_parser(
        "evaluate", help="metrics and figures on the validation split or another folder",
        description="Evaluate a model: accuracy, top-k accuracy, per-class precision/recall/F1, "
        "confusion matrix, ECE. Writes metrics.json, confusion_matrix.png (counts and "
        "row-normalised panels), worst_mistakes.png and reliability.png into --out "
        "(default RUN/eval for the model's own validation split, RUN/eval-NAME for --data NAME).")
    evaluate.add_argument("model", help="run folder or model folder")
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
    evaluate.add_argument("--out", help="output folder (default RUN/eval or RUN/eval-NAME)")
    evaluate.add_argument("--top-k", type=_positive, default=2,
                          help="k for top-k accuracy (default 2)")
    evaluate.add_argument("--json", action="store_true", help="print metrics.json to stdout")
    add_cache_dir(evaluate)
    add_progress(evaluate)
    evaluate.set_defaults(func=cmd_evaluate)

    predict = verbs.add_parser("predict", help="classify image files or folders")
    predict.add_argument("model", help="run folder, model folder or exported .onnx file "
                         "(runs on ONNX Runtime, without torch)")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="image files or folders (walked recursively)")
    predict.add_argument("--top-k", type=_positive, default=5,
                         help="classes per image (default 5)")
    formats = predict.add_mutually_exclusive_group()
    formats.add_argument("--json", dest="format", action="store_const", const="json",
                         help="print a JSON list: {source, top_k: [{label, probability}]}")
    formats.add_argument("--csv", dest="format", action="store_const", const="csv",
                         help="print CSV, one row per image and rank: "
                         "path,rank,label,probability")
    predict.add_argument("--figure", metavar="OUT.png", help="also draw the images (the first "
                         "16) titled with their predicted label and probability")
    predict.add_argument("--batch-size", type=_positive, default=32, help="images per batch "
                         "(default 32)")
    _add_engine(predict)
    add_progress(predict)
    predict.set_defaults(func=cmd_predict, format="table")

    compare = verbs.add_parser("compare", help="one image, several models' top-k side by side")
    compare.add_argument("image", help="an image file")
    compare.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                         help="run folders, model folders or exported .onnx files")
    compare.add_argument("--out", default="compare.png", help="figure (default compare.png)")
    compare.add_argument("--top-k", type=_positive, default=3,
                         help="classes per model (default 3)")
    _add_engine(compare)
    compare.set_defaults(func=cmd_compare)
