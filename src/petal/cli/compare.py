"""`petal compare`: one photo, several models' top classes side by side."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from petal.cli.common import (
    add_engine,
    add_rejection,
    positive_int,
)
from petal.errors import PetalError

if TYPE_CHECKING:
    pass


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


def cmd_compare(args: argparse.Namespace) -> int:
    from petal.api import compare

    if args.no_reject and args.keep_known is not None:
        raise PetalError("--keep-known and --no-reject contradict each other: give one")
    comparison = compare(args.image, args.models, top_k=args.top_k, out=args.out,
                         engine=args.engine, device=args.device, keep_known=args.keep_known,
                         reject=not args.no_reject)
    print(comparison.summary())
    print(f"Wrote {comparison.path}")
    return 0
