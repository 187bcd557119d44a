"""`petal review DIR` and `petal label PHOTOS`: the local pages that fix and grow the data."""

from __future__ import annotations

import argparse
import socket
from pathlib import Path

from petal.cli.common import add_engine, add_progress, wants_progress


def add_port(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=0,
                        help="port on 127.0.0.1 (default 0: any free one; the address is "
                        "printed, with its token)")


def add_commands(verbs: argparse._SubParsersAction) -> None:
    review = verbs.add_parser(
        "review", help="decide on a data review's findings in the browser (keep, exclude, "
        "relabel)")
    review.add_argument("dir", help="the folder `petal data review DATA --out DIR` wrote")
    add_port(review)
    review.set_defaults(func=cmd_review)

    label = verbs.add_parser(
        "label", help="label new photos in the browser, the most useful first")
    label.add_argument("photos", help="folder of unlabelled photos (sub-folders too); "
                       "never written")
    label.add_argument("--model", required=True, help="run or model folder (or .onnx file) "
                       "whose guesses and doubts order the queue")
    label.add_argument("--out", required=True, help="new data folder: a class sub-folder of "
                       "links per label, and labels.csv (made if new; reopened to go on)")
    label.add_argument("--data", help="when --out is made, also link this data folder's "
                       "photos into it (the folder the model was trained on), so that --out "
                       "holds the old photos and the new labels")
    label.add_argument("--review", metavar="FILE", help="with --data: apply this review file "
                       "(from `petal data review --out`) to the photos linked in: those marked "
                       "exclude are left out, those marked relabel go under their new class")
    label.add_argument("--copy", action="store_true",
                       help="copy the photos into --out instead of linking them")
    add_engine(label)
    add_port(label)
    add_progress(label)
    label.set_defaults(func=cmd_label)


def cmd_review(args: argparse.Namespace) -> int:
    from petal.serve.local_page import listen

    serve_review(args.dir, listen(args.port))
    return 0


def serve_review(folder: str, sock: socket.socket) -> None:
    """The review page over review folder `folder`, held by this process while it serves
    (a second page on it would lose one page's decisions)."""
    from petal.run_folder import writing
    from petal.serve.local_page import create_decision_app, serve_page
    from petal.serve.review_app import ReviewFolder

    source = ReviewFolder(folder)
    with writing(Path(folder)):
        source.tidy()
        serve_page(create_decision_app(source), sock, f"Review page for {source.root}")


def cmd_label(args: argparse.Namespace) -> int:
    from petal.data.new_labels import LABELS_CSV
    from petal.run_folder import writing
    from petal.serve.label_app import LabelQueue
    from petal.serve.local_page import create_decision_app, listen, serve_page

    sock = listen(args.port)  # before scoring: a busy port fails fast
    out = Path(args.out)
    if args.data and (out / LABELS_CSV).is_file():
        print(f"{out} was made before: --data {args.data} is not linked in again (its "
              "photos are there already if it was given then)")
    with writing(out):
        queue = LabelQueue(args.photos, args.model, out, copy=args.copy, original=args.data,
                           review=args.review, engine=args.engine, device=args.device,
                           progress=wants_progress(args))
        if queue.rejected:
            print(f"{len(queue.rejected)} file(s) under {args.photos} are not usable images "
                  f"and are left out (first: {queue.rejected[0].path}: "
                  f"{queue.rejected[0].message})")
        serve_page(create_decision_app(queue), sock,
                   f"Labelling queue of {len(queue.images)} photos")
    return 0
