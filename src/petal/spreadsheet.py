"""CSV cells a spreadsheet opens as text, never as a formula.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before looking) is a formula to Excel and LibreOffice: a class folder
named `=cmd|' -C calc'!A0` would run a program on the machine of whoever opens petal's CSV.
OWASP's advice ("CSV Injection") is to prefix such a cell with a single quote, which the
spreadsheet shows as text; petal does that, and also prefixes a cell that itself starts
with a quote, so that `unescape_cell(escape_cell(text)) == text` for every text and a file
petal wrote reads back unchanged. (The csv module already quotes cells that hold a comma,
a quote or a line break.) Numbers petal writes are not text cells and are left alone.

`csv_writer` ends lines with CRLF, as RFC 4180 does: the csv module quotes a cell holding a
character of the line ending, so with a bare `\n` a carriage return in a file name went
unquoted and split the row on reading.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from typing import Any, TextIO

from petal.errors import PetalError

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"
MAX_COLUMNS = 64  # the seven a review file holds, and room for a person's own


def escape_cell(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows as text."""
    return QUOTE + text if text.startswith((*FORMULA_STARTS, QUOTE)) else text


def unescape_cell(cell: str) -> str:
    """The text of a cell `escape_cell` wrote; any other cell unchanged."""
    if cell.startswith(QUOTE) and cell[1:].startswith((*FORMULA_STARTS, QUOTE)):
        return cell[1:]
    return cell


def csv_writer(text: TextIO) -> Any:
    """A csv writer whose rows end with CRLF, so that a cell holding `\r` or `\n` is quoted."""
    return csv.writer(text, lineterminator="\r\n")


def read_records(path: str | os.PathLike, data: bytes, what: str = "review file"
                 ) -> Iterator[tuple[int, list[str]]]:
    """(line, cells) of each non-blank record, the header first, decoded as it is read: the
    memory it takes is the file's bytes and one record of at most MAX_COLUMNS cells."""
    # a byte that is not UTF-8 stays itself (as the file system's names do: os.fsdecode),
    # so that a photo's name read back is the name it was written as
    text = io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape",
                            newline="")
    reader = csv.reader(text)
    try:
        for cells in reader:
            if len(cells) > MAX_COLUMNS:
                raise PetalError(f"{what} {path}, line {reader.line_num}: "
                                 f"{len(cells)} columns, more than the {MAX_COLUMNS} petal "
                                 f"reads: is it the {what}?")
            if any(cells):
                yield reader.line_num, cells
    except csv.Error as exc:
        raise PetalError(f"{what} {path} is not a CSV file: {exc}") from exc
