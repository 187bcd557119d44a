"""`petal predict`: the top classes of image files or folders, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import json
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from petal.cli.common import (
    add_engine,
    add_progress,
    add_rejection,
    apply_rejection,
    load_classifier,
    positive_int,
    wants_progress,
)
from petal.errors import PetalError, PetalWarning
from petal.fsutil import check_writable_file
from petal.paths import refuse_inside_model_data

if TYPE_CHECKING:
    from petal.inference.classifier import Classifier, Prediction


def add_commands(verbs: argparse._SubParsersAction) -> None:
    predict = verbs.add_parser("predict", help="classify image files or folders")
    predict.add_argument("model", help="run folder, model folder or exported .onnx file "
                         "(runs on ONNX Runtime, without torch)")
    predict.add_argument("paths", nargs="+", metavar="PATH",
                         help="image files or folders (walked recursively), or WebDataset "
                         "shards: paths or http(s) URLs ending in .tar, brace ranges allowed "
                         "(shards/shard-{000000..000009}.tar)")
    predict.add_argument("--top-k", type=positive_int, default=5,
                         help="classes per image (default 5)")
    formats = predict.add_mutually_exclusive_group()
    formats.add_argument("--json", dest="format", action="store_const", const="json",
                         help="print a JSON list: {source, top_k: [{label, probability}]}")
    formats.add_argument("--csv", dest="format", action="store_const", const="csv",
                         help="print CSV, one row per image and rank: "
                         "path,rank,label,probability,unknown,novelty (a path or label that a "
                         "spreadsheet would take for a formula starts with ')")
    predict.add_argument("--figure", metavar="OUT.png", help="also draw the images (the first "
                         "16) titled with their predicted label and probability")
    predict.add_argument("--explain", action="store_true", help="in --figure, draw over each "
                         "image where the model looked for its top class")
    predict.add_argument("--batch-size", type=positive_int, default=32, help="images per batch "
                         "(default 32)")
    predict.add_argument("--out", metavar="FILE.csv", help="write the --csv rows to FILE as "
                         "they are made, for many photos: a killed run started again with "
                         "the same --out goes on after the last row written (FILE.progress "
                         "beside it says how far)")
    predict.add_argument("--workers", type=int, default=0, metavar="N", help="decode the "
                         "photos in N processes (default 0: in this one)")
    predict.add_argument("--skip-labelled", metavar="NEW", help="leave out the photos already "
                         "decided in NEW/labels.csv (the folder `petal label --out NEW` fills), "
                         "whatever their names")
    add_rejection(predict)
    add_engine(predict)
    add_progress(predict)
    predict.set_defaults(func=cmd_predict, format="table")


def _unlabelled(files: list[Path], labels: str) -> list[Path]:
    """`files` but those whose content was decided in LABELS/labels.csv. A file that cannot
    be read stays, for predict to report."""
    import hashlib

    from petal.data.image import ImageLoadError, read_image_file
    from petal.data.new_labels import labelled_hashes

    decided, kept = labelled_hashes(labels), []
    for path in files:
        try:
            if hashlib.sha256(read_image_file(path)).hexdigest() in decided:
                continue
        except ImageLoadError:
            pass
        kept.append(path)
    print(f"Left out {len(files) - len(kept)} photo(s) already decided in {labels}"
          + ("; none is left to predict" if not kept else ""), file=sys.stderr)
    return kept


def _said_skips(batches: Iterator[list[Prediction]], skipped: list[str]
                ) -> Iterator[list[Prediction]]:
    """`batches`, each file that could not be read said on standard error as it is found."""
    said = 0
    for batch in batches:
        for line in skipped[said:]:
            print(f"skipped {line}", file=sys.stderr)
        said = len(skipped)
        yield batch
    for line in skipped[said:]:
        print(f"skipped {line}", file=sys.stderr)


def _table_row(prediction: Prediction, widths: tuple[int, int]) -> str:
    rest = "  ".join(f"{label} {p:.1%}" for label, p in
                     zip(prediction.labels[1:], prediction.probabilities[1:]))
    if prediction.unknown:
        answer = (f"{'unknown':<{widths[1]}} (among its classes: {prediction.label} "
                  f"{prediction.probability:.1%})")
    else:
        answer = f"{prediction.label:<{widths[1]}} {prediction.probability:>7.1%}"
    return f"{prediction.source:<{widths[0]}}  {answer}  {rest}".rstrip()


def cmd_predict(args: argparse.Namespace) -> int:
    from petal.api import photos_named
    from petal.inference.shift import MIN_PHOTOS
    from petal.jobs.predict import COLUMNS, predicted_batches, rows_of

    if args.workers < 0:
        raise PetalError(f"--workers {args.workers}: 0 (decode in this process) or more")
    if args.explain and not args.figure:
        raise PetalError("--explain draws into the --figure: give --figure OUT.png too")
    classifier = apply_rejection(load_classifier(args.model, args.engine, args.device), args)
    if args.figure:
        check_writable_file(args.figure)
        refuse_inside_model_data(args.figure, classifier.card.data)
    classifier.batch_size = args.batch_size
    files = photos_named(args.paths)
    if args.skip_labelled and not isinstance(files, list):
        raise PetalError("--skip-labelled reads the photos of folders: not of shards")
    if args.skip_labelled:
        files = _unlabelled(files, args.skip_labelled)
        if not files:  # nothing left to label: not a failure
            if args.format == "json":
                print("[]")
            return 0
    if args.out:
        return _predict_to_file(classifier, files, args)
    widths = (max(len(str(f)) for f in files) if isinstance(files, list) else 60,
              max(len(c) for c in classifier.classes + ["unknown"]))
    writer = csv.writer(sys.stdout) if args.format == "csv" else None
    predictions: list[Prediction] = []
    skipped: list[str] = []
    for batch in _said_skips(predicted_batches(classifier, files, args.top_k, args.workers,
                                               wants_progress(args), skipped), skipped):
        if not predictions:  # the header once something is to follow it
            if writer:
                writer.writerow(COLUMNS)
            elif args.format == "table":
                print(f"{'path':<{widths[0]}}  {'label':<{widths[1]}} {'prob':>7}  "
                      f"others (top-{args.top_k})")
        predictions += batch
        for prediction in batch:
            if writer:
                writer.writerows(rows_of(prediction))
            elif args.format == "table":
                print(_table_row(prediction, widths), flush=True)
    if not predictions:
        raise PetalError(f"no image could be predicted: all {len(skipped)} were skipped")
    if args.format == "json":
        print(json.dumps([p.to_json() for p in predictions], indent=2))
    unknown = sum(p.unknown for p in predictions)
    summary = (f"Predicted {len(predictions)} image(s) ({unknown} unknown), skipped "
               f"{len(skipped)}")
    if args.figure:
        _prediction_figure(predictions, Path(args.figure), classifier if args.explain else None)
        summary += f"; figure: {args.figure}"
    stream = sys.stdout if args.format == "table" else sys.stderr
    print(summary, file=stream)
    shift = classifier.shift(predictions)
    if shift is not None and shift.shifted:
        warnings.warn(shift.message(), PetalWarning, stacklevel=1)
    elif shift is not None and shift.enough:
        said = shift.message()
        print(said[0].upper() + said[1:], file=stream)
    elif shift is None and len(predictions) >= MIN_PHOTOS:
        print("Whether these photos differ from the training photos is not checked: "
              f"{classifier.shift_unavailable}", file=stream)
    return 0


def _predict_to_file(classifier: Classifier, files: list[Path] | Iterator,
                     args: argparse.Namespace) -> int:
    """--out: the rows written as they are made, resumable (petal.jobs.predict)."""
    from petal.api import predict

    if args.format != "table" or args.figure:
        raise PetalError("--out writes the CSV rows to a file: leave out --json, --csv and "
                         "--figure")
    sources = files if isinstance(files, list) else args.paths  # shards: streamed again
    written = predict(classifier, sources, out=args.out, top_k=args.top_k, workers=args.workers,
                      batch_size=args.batch_size, progress=wants_progress(args))
    print(written.summary())
    shift = classifier.shift_of(written.novelty) if len(written.novelty) else None
    if shift is not None and shift.shifted:
        warnings.warn(shift.message(), PetalWarning, stacklevel=1)
    elif shift is not None and shift.enough:
        said = shift.message()
        print(said[0].upper() + said[1:])
    return 0 if written.photos else 1


def _prediction_figure(predictions: Sequence[Prediction], path: Path,
                       explaining: Classifier | None = None) -> None:
    """The first predictions as a gallery; with `explaining`, each image as that model sees
    it with its heat map over it (a second forward pass, for those images only)."""
    import numpy as np

    from petal.inference.explain import overlays
    from petal.report.figures import GALLERY_MAX, plot_predictions, thumbnail

    shown = predictions[:GALLERY_MAX]
    if explaining is None:
        images = [thumbnail(p.source) for p in shown]
    else:
        images = overlays(explaining, np.stack([explaining.prepare(p.source) for p in shown]))
    path.parent.mkdir(parents=True, exist_ok=True)
    plot_predictions(images, [p.label for p in shown],
                     [p.probability for p in shown], path, total=len(predictions),
                     unknown=[p.unknown for p in shown])
