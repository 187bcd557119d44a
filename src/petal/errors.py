"""Errors and warnings for things a user can fix: the CLI prints their message, no traceback."""

from __future__ import annotations

import errno

_OS_ERROR_HINTS = {
    errno.ENOSPC: "free some space, or write elsewhere (--out, --cache-dir)",
    errno.EDQUOT: "free some space, or write elsewhere (--out, --cache-dir)",
    errno.EFBIG: "the file system or a limit on file size refused it",
    errno.EROFS: "that file system is read-only: write elsewhere (--out, --cache-dir)",
    errno.EACCES: "check the permissions, or write elsewhere (--out, --cache-dir)",
}
OUT_OF_MEMORY = ("out of memory: use smaller batches (--batch-size, --set batch_size=N) or a "
                 "machine with more memory")


class PetalError(Exception):
    """A problem with the user's input (path, data, option); the message says what to do."""


class PetalWarning(UserWarning):
    """Something petal noticed and handled (e.g. a damaged cache rebuilt); the CLI prints
    `warning: MESSAGE`."""


def describe_os_error(exc: OSError) -> str:
    """`PATH: reason (what to do)` for an OSError from anywhere in petal."""
    where = f"{exc.filename}: " if exc.filename else ""
    reason = exc.strerror or str(exc)
    hint = _OS_ERROR_HINTS.get(exc.errno or 0)
    return f"{where}{reason}" + (f" ({hint})" if hint else "")
