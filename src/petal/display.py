"""How petal's result objects show themselves in Jupyter, the parts that need nothing but the
standard library: headings, paragraphs and tables as HTML, and pandas where it is installed
(petal.report.notebook adds figures and photos)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

MAX_ROWS = 20  # rows of a table shown inline; to_pandas() has them all


def heading(text: str) -> str:
    return f"<h4>{escape(text)}</h4>"


def paragraph(text: str) -> str:
    return f"<p>{escape(text)}</p>"


def table_html(rows: Sequence[Sequence[object]], columns: Sequence[str],
               limit: int = MAX_ROWS) -> str:
    """A table of the first `limit` rows (and how many more there are)."""
    head = "".join(f"<th>{escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>"
                   for row in rows[:limit])
    more = (f"<p>... and {len(rows) - limit} more rows (.to_pandas() has them all)</p>"
            if len(rows) > limit else "")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def _cell(value: object) -> str:
    if value is None:
        return "-"  # undefined (0/0)
    if isinstance(value, float):
        return "" if value != value else f"{value:.4g}"  # NaN: an empty cell
    return str(value)


def pandas() -> Any:
    """pandas, which petal does not depend on; a PetalError that says how to add it."""
    try:
        import pandas
    except ImportError as exc:
        from petal.errors import PetalError

        raise PetalError("to_pandas() needs pandas: pip install pandas") from exc
    return pandas
