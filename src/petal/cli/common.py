"""Helpers shared by the command modules."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from petal.inference.classifier import Classifier


def add_review(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--review", metavar="FILE", help="apply a review file (from `petal data "
                        "review --out`): leave out the images marked exclude, give those "
                        "marked relabel their new label (the folder itself is not changed)")


def add_labels(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--labels", metavar="FILE", help="read the labels from this CSV file "
                        "(a row per photo: its path under the data folder, its label) instead "
                        "of class folders")
    parser.add_argument("--label-columns", metavar="PATH,LABEL", help="the labels file's "
                        "columns holding the photo and its label (default: detected from the "
                        "header, e.g. path/file/image/id and label/class/category)")


def labels_of(args: argparse.Namespace) -> dict:
    """The labels file options, as the API's keyword arguments."""
    return {"labels": args.labels, "label_columns": args.label_columns}


def add_cache_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cache-dir", help="cache folder (default: $PETAL_CACHE, else "
                        "$XDG_CACHE_HOME/petal, else ~/.cache/petal)")


def add_engine(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--engine", choices=("torch", "onnx"),
                        help="inference engine (default: onnx, through a model folder's own "
                        "export, made once and kept beside the weights; torch for a network "
                        "explained by Grad-CAM or one that cannot be exported)")
    add_device(parser)


def add_device(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto",
                        help="auto (the default: a CUDA GPU when there is one, else the CPU), "
                        "cpu, cuda or cuda:N")


def add_rejection(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-known", type=float, metavar="SHARE",
                        help="call a photo unknown unless it is as familiar as this share of "
                        "the validation photos (default: the model's, 0.95)")
    parser.add_argument("--no-reject", action="store_true",
                        help="never call a photo unknown; always name the closest class")


def apply_rejection(classifier: Classifier, args: argparse.Namespace) -> Classifier:
    """--keep-known / --no-reject on a loaded classifier."""
    from petal.errors import PetalError

    if args.no_reject and args.keep_known is not None:
        raise PetalError("--keep-known and --no-reject contradict each other: give one")
    if args.no_reject:
        return classifier.keeping(None)
    if args.keep_known is not None:
        return classifier.keeping(args.keep_known)
    return classifier


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, got {text}")
    return value


def load_classifier(model: str, engine: str | None, device: str = "auto") -> Classifier:
    """petal.load with --engine when given, else petal.load's own choice, on --device."""
    from petal.inference.classifier import load

    return load(model, engine=engine, device=device)


def add_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bars (default: only when the output is a terminal)")


def wants_progress(args: argparse.Namespace) -> bool:
    """--progress / --no-progress, else bars only on a terminal (a piped log stays clean)."""
    return args.progress if args.progress is not None else sys.stderr.isatty()


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError
