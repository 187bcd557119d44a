"""CSV cells a spreadsheet opens as text, never as a formula.

A cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return, which some
spreadsheets skip before looking) is a formula to Excel and LibreOffice: a class folder
named `=cmd|' -C calc'!A0` would run a program on the machine of whoever opens petal's CSV.
OWASP's advice ("CSV Injection") is to prefix such a cell with a single quote, which the
spreadsheet shows as text; petal does that, and also prefixes a cell that itself starts
with a quote, so that `unescape_cell(escape_cell(text)) == text` for every text and a file
petal wrote reads back unchanged. (The csv module already quotes cells that hold a comma,
a quote or a line break.) Numbers petal writes are not text cells and are left alone.
"""

from __future__ import annotations

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def escape_cell(text: str) -> str:
    """`text` as a CSV cell a spreadsheet shows as text."""
    return QUOTE + text if text.startswith((*FORMULA_STARTS, QUOTE)) else text


def unescape_cell(cell: str) -> str:
    """The text of a cell `escape_cell` wrote; any other cell unchanged."""
    if cell.startswith(QUOTE) and cell[1:].startswith((*FORMULA_STARTS, QUOTE)):
        return cell[1:]
    return cell
