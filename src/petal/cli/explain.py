"""Show where a model looked: for each image, one PNG of the photo as the model sees it, the
class activation map of its top class (or of --class) over it, and its top-3 labels."""

from __future__ import annotations

import argparse

from petal.cli.common import add_engine, add_rejection
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


def cmd_explain(args: argparse.Namespace) -> int:
    from petal.api import explain

    if args.no_reject and args.keep_known is not None:
        raise PetalError("--keep-known and --no-reject contradict each other: give one")
    for explanation in explain(args.model, args.images, label=args.label, out=args.out,
                               engine=args.engine, device=args.device,
                               keep_known=args.keep_known, reject=not args.no_reject):
        print(f"{explanation.summary()} -> {explanation.path}")
    return 0
