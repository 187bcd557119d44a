"""The `petal` command: parse arguments, call the library, print. Nothing else lives here.

Each module of this package adds one command, and is named after it. Heavy libraries (torch,
Lightning) are imported inside the commands that need them, so `petal --help` and the
data commands start quickly.
"""

from __future__ import annotations

import argparse
import errno
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
from petal.errors import PetalError, PetalWarning

# One module per command, in the order `petal --help` lists them.
COMMANDS = (run, data, decide, cache, train, lr_find, recipes, models, evaluate, predict, explain,
            compare, export, serve)

_OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space, or write elsewhere (--out, --cache-dir)",
    errno.EDQUOT: "free some space, or write elsewhere (--out, --cache-dir)",
    errno.EFBIG: "the file system or a limit on file size refused it",
    errno.EROFS: "that file system is read-only: write elsewhere (--out, --cache-dir)",
    errno.EACCES: "check the permissions, or write elsewhere (--out, --cache-dir)",
}


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
    args = build_parser().parse_args(argv)
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
        print("error: out of memory: use smaller batches (--batch-size, --set batch_size=N) "
              "or a machine with more memory", file=sys.stderr)
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


def describe_os_error(exc: OSError) -> str:
    """`PATH: reason (what to do)` for an OSError from anywhere below the CLI."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc)
    hint = _OS_ERROR_HINTS.get(exc.errno or 0)
    return f"{where}{reason}" + (f" ({hint})" if hint else "")


if __name__ == "__main__":
    sys.exit(main())
