"""How petal speaks: through the `petal` logger (each module logs as `petal.MODULE`), never
by printing, so that a notebook or a program can quiet it, capture it or route it.

    logging.getLogger("petal").setLevel(logging.WARNING)   # only warnings and errors

What a person is told as work goes on (the epoch table, what was fitted, where files went)
is logged at INFO. The command line shows it line for line on standard output
(petal.cli.terminal); the public API (petal.api) shows it on standard output too when
nobody has configured logging, as Lightning does for its own lines. A side note (a model
exported on first use) carries `extra=SIDE_NOTE` and is shown on standard error, away from
output such as JSON or CSV.
"""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("petal")
SIDE_NOTE = {"side_note": True}


class ConsoleHandler(logging.Handler):
    """Each line on whatever sys.stdout is when it is written (a notebook cell, a test or
    `contextlib.redirect_stdout` may have replaced it since); a side note, a warning or an
    error on sys.stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.write(self.format(record), to_stderr=getattr(record, "side_note", False)
                       or record.levelno >= logging.WARNING)
        except Exception:  # noqa: BLE001 - logging's own policy: report, never raise
            self.handleError(record)

    def write(self, text: str, to_stderr: bool) -> None:
        stream = sys.stderr if to_stderr else sys.stdout
        stream.write(text + "\n")
        stream.flush()


def show_by_default() -> None:
    """Give the `petal` logger a plain handler on standard output, at INFO, unless logging
    is configured already (a handler on `petal` or on the root logger)."""
    if logger.handlers or logging.getLogger().handlers:
        return
    handler = ConsoleHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.INFO)
