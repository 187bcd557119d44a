"""petal's log as the terminal shows it (petal.log): each INFO line on standard output, a
side note on standard error, `warning: ...` for a warning, written through tqdm so that a
progress bar on the terminal is not torn by a line printed over it."""

from __future__ import annotations

import logging
import sys

from tqdm.auto import tqdm

from petal.log import ConsoleHandler, logger


class TerminalHandler(ConsoleHandler):
    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return f"{record.levelname.lower()}: {text}" if record.levelno >= logging.WARNING \
            else text

    def write(self, text: str, to_stderr: bool) -> None:
        stream = sys.stderr if to_stderr else sys.stdout
        tqdm.write(text, file=stream)
        stream.flush()


def show_on_terminal() -> None:
    """Route the `petal` logger to the terminal alone, at INFO (the CLI's start)."""
    handler = TerminalHandler(logging.INFO)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
