"""`petal compare`: one photo, several models' top classes side by side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from petal.cli.common import (
    add_engine,
    add_rejection,
    apply_rejection,
    load_classifier,
    positive_int,
)
from petal.errors import PetalError

if TYPE_CHECKING:
    from petal.inference.classifier import Classifier


def add_commands(verbs: argparse._SubParsersAction) -> None:
    compare = verbs.add_parser("compare", help="one image, several models' top-k side by side")
    compare.add_argument("image", help="an image file")
    compare.add_argument("--models", nargs="+", required=True, metavar="MODEL",
                         help="run folders, model folders or exported .onnx files")
    compare.add_argument("--out", default="compare.png", help="figure (default compare.png)")
    compare.add_argument("--top-k", type=positive_int, default=3,
                         help="classes per model (default 3)")
    add_rejection(compare)
    add_engine(compare)
    compare.set_defaults(func=cmd_compare)


def model_title(model: str, classifier: Classifier) -> str:
    """The run (or model folder, or file) name and the architecture, for a figure title."""
    from petal.run_folder import find_model_folder, run_of_model

    path = Path(model).resolve()
    name = path.stem if path.is_file() else run_of_model(find_model_folder(path)).name
    return f"{name} ({classifier.card.architecture.get('name', '?')})"


def cmd_compare(args: argparse.Namespace) -> int:
    from petal.data.image import ImageLoadError
    from petal.fsutil import check_writable_file
    from petal.report.figures import Ranking, plot_comparison, thumbnail

    check_writable_file(args.out)  # before any model is loaded
    try:
        image = thumbnail(args.image, side=384)
    except ImageLoadError as exc:
        raise PetalError(f"cannot use {args.image}: {exc.message}") from exc
    rankings = []
    for model in args.models:
        classifier = apply_rejection(load_classifier(model, args.engine, args.device), args)
        prediction = classifier.predict(args.image, top_k=args.top_k)
        title = model_title(model, classifier)
        rankings.append(Ranking(title, prediction.labels, prediction.probabilities,
                                prediction.unknown))
        print(f"{title}: " + ("unknown, closest " if prediction.unknown else "")
              + ", ".join(f"{label} {p:.1%}" for label, p
                          in zip(prediction.labels, prediction.probabilities)))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_comparison(image, rankings, out)
    print(f"Wrote {out}")
    return 0
