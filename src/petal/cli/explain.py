"""Show where a model looked: for each image, one PNG of the photo as the model sees it, the
class activation map of its top class (or of --class) over it, and its top-3 labels."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from petal.cli.common import add_engine, add_rejection, apply_rejection, load_classifier
from petal.errors import PetalError


def add_commands(verbs: argparse._SubParsersAction) -> None:
    explain = verbs.add_parser("explain", help="where the model looked: a heat map per image",
                               description=__doc__)
    explain.add_argument("model", help="run folder, model folder or exported .onnx file")
    explain.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    explain.add_argument("--class", dest="label", metavar="LABEL",
                         help="explain this class instead of each image's top class")
    explain.add_argument("--out", default="explanations",
                         help="folder for IMAGE_NAME.png (default explanations); images of "
                         "the same name get IMAGE_NAME-2.png, -3, ...")
    add_rejection(explain)
    add_engine(explain)
    explain.set_defaults(func=cmd_explain)


def figure_names(images: list[str], out: Path) -> list[Path]:
    """OUT/NAME.png for each image, NAME its file name without the extension; a name taken
    by an earlier image gets -2, -3, ... so that no figure of one command replaces another
    (img/daisy.jpg, img2/daisy.jpg, img/daisy.png: daisy, daisy-2, daisy-3)."""
    taken: set[str] = set()
    names = []
    for image in images:
        stem = Path(image).stem
        name, n = stem, 1
        while name.lower() in taken:  # a file system may not tell Daisy from daisy
            n += 1
            name = f"{stem}-{n}"
        taken.add(name.lower())
        names.append(out / f"{name}.png")
    return names


def cmd_explain(args: argparse.Namespace) -> int:
    from petal.api import explain
    from petal.data.image import ImageLoadError

    classifier = apply_rejection(load_classifier(args.model, args.engine, args.device), args)
    written = 0
    for path, figure in zip(map(Path, args.images), figure_names(args.images, Path(args.out))):
        try:
            explanation = explain(classifier, path, label=args.label, out=figure)
        except ImageLoadError as exc:
            print(f"skipped {path}: {exc.message}", file=sys.stderr)
            continue
        print(f"{explanation.summary()} -> {figure}")
        written += 1
    if not written:
        raise PetalError(f"no image could be explained: all {len(args.images)} were skipped")
    return 0
