"""The `petal` command: parse arguments, call the library, print. Nothing else lives here.

Each module of this package adds the verbs of one area. Heavy libraries (torch,
Lightning) are imported inside the commands that need them, so `petal --help` and the
data commands start quickly.
"""

from __future__ import annotations

import argparse
import sys
import time

from petal.cli import data, results, run, serve, train
from petal.errors import PetalError

AREAS = (run, data, train, results, serve)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petal",
        description="Transfer-learning image classifier: check data, train, evaluate, predict.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for area in AREAS:
        area.add_commands(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    args = build_parser().parse_args(argv)
    args.started = start  # elapsed times in a run folder count from here
    try:
        return args.func(args)
    except PetalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted after {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
