"""The `petal` command: parse arguments, call the library, print. Nothing else lives here.

Each module of this package adds one command, and is named after it. Heavy libraries (torch,
Lightning) are imported inside the commands that need them, so `petal --help` and the
data commands start quickly.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from typing import TextIO

from petal.cli import (
    cache,
    compare,
    data,
    decide,
    evaluate,
    explain,
    export,
    lr_find,
    models,
    predict,
    recipes,
    run,
    serve,
    train,
)
from petal.cli.terminal import show_on_terminal
from petal.errors import OUT_OF_MEMORY, PetalError, PetalWarning, describe_os_error

# One module per command, in the order `petal --help` lists them.
COMMANDS = (run, data, decide, cache, train, lr_find, recipes, models, evaluate, predict, explain,
            compare, export, serve)

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="petal",
        description="Transfer-learning image classifier: check data, train, evaluate, predict.",
    )
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_commands(verbs)
    return parser


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv  # what was typed: an option given at its default value still counts
    show_on_terminal()
    args.started = start  # elapsed times in a run folder count from here
    with warnings.catch_warnings():
        warnings.showwarning = _show_warning
        return _run(args, start)


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: TextIO | None = None, line: str | None = None) -> None:
    """petal's own warnings as `warning: MESSAGE`; any other as Python shows it."""
    if issubclass(category, PetalWarning):
        print(f"warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def _run(args: argparse.Namespace, start: float) -> int:
    try:
        return args.func(args)
    except PetalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk, a read-only folder, a vanished file, ...
        print(f"error: {describe_os_error(exc)}", file=sys.stderr)
        return 1
    except MemoryError:
        print(f"error: {OUT_OF_MEMORY}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"\ninterrupted after {time.perf_counter() - start:.0f} s", file=sys.stderr)
        return 130
    except SystemExit as exc:
        # Lightning stops training on SIGTERM by raising SIGTERMException, a SystemExit
        # without a code: the process would exit 0 as if training had finished
        if exc.code is not None or not type(exc).__module__.startswith("lightning"):
            raise
        print(f"\nstopped by SIGTERM after {time.perf_counter() - start:.0f} s (`petal train "
              "--resume RUN` continues a run from its last epoch)", file=sys.stderr)
        return 143


if __name__ == "__main__":
    sys.exit(main())
