"""review.csv as the review page edits it: one decision at a time, every other row and column
kept as written (a person's own columns too), the file replaced atomically each time.

A row's action is empty until someone decides (petal reads an empty action as `keep`), so the
page can say how many are decided. `petal.data.decisions` reads the file for training.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from petal.data.decisions import (
    ACTIONS,
    COLUMNS,
    MAX_REVIEW_BYTES,
)
from petal.errors import PetalError
from petal.fsutil import atomic_write_text, read_limited
from petal.spreadsheet import csv_writer, escape_cell, read_records, unescape_cell

UNDECIDED = ""


def relative_image_path(path: str) -> str:
    """`path` if it names a file inside a folder ('a/b.jpg'); PetalError for an absolute path
    or one that climbs out ('..'), whatever a file petal reads may say."""
    parts = PurePosixPath(path).parts
    if (not parts or PurePosixPath(path).is_absolute() or ".." in parts
            or "\\" in path or "\0" in path):
        raise PetalError(f"{path!r} is not a path inside the data folder")
    return path


@dataclass
class ReviewSheet:
    """The rows of a review file, cells as written (escaped for spreadsheets)."""

    path: Path
    header: list[str]
    rows: list[list[str]]

    @classmethod
    def read(cls, path: str | os.PathLike) -> ReviewSheet:
        try:
            data = read_limited(path, MAX_REVIEW_BYTES)
        except OSError as exc:
            raise PetalError(f"review file {path} cannot be read: {exc}") from exc
        records = read_records(path, data)
        _, header = next(records, (0, []))
        names = [name.strip().lower() for name in header]
        if not {"path", "action"} <= set(names):
            raise PetalError(f"review file {path} needs the columns path and action: write "
                             "one with `petal data review DIR --out DIR`")
        if "label" not in names:
            header.append("label")
        rows = [cells + [""] * (len(header) - len(cells)) for _, cells in records]
        return cls(Path(path), header, rows)

    def _column(self, name: str) -> int:
        names = [cell.strip().lower() for cell in self.header]
        name = name.strip().lower()
        return names.index(name) if name in names else -1

    def _cell(self, row: list[str], name: str) -> str:
        at = self._column(name)
        return unescape_cell(row[at]) if at >= 0 else ""

    def _own(self) -> list[int]:
        """The places of the columns a person added: every column but the first of each name
        petal reads (names compared as _column does), unnamed ones and repeats included."""
        petal = {self._column(name) for name in COLUMNS}
        return [at for at in range(len(self.header)) if at not in petal]

    def own_columns(self) -> list[str]:
        """The headers of the columns a person added, as written, in order."""
        return [self.header[at] for at in self._own()]

    def findings(self) -> list[dict]:
        """Each row as {path, finding, given, suggested, score, action, label} (text), and
        "own": its cells of own_columns()."""
        found = []
        own = self._own()
        for row in self.rows:
            item = {name: self._cell(row, name) for name in COLUMNS}
            item["own"] = [unescape_cell(row[at]) for at in own]
            item["action"] = item["action"].strip().lower()
            found.append(item)
        return found

    def decide(self, image: str, action: str, label: str = "") -> dict:
        """Set `image`'s action (UNDECIDED to take a decision back) and, for relabel, its
        label, in each of its rows; the row as findings() gives it. PetalError for an image
        not in the file."""
        if action not in (*ACTIONS, UNDECIDED):
            raise PetalError(f"action {action!r}: use one of {', '.join(ACTIONS)}")
        paths = [self._cell(row, "path") for row in self.rows]
        if image not in paths:
            raise PetalError(f"{image!r} is not a photo of this review")
        for row, path in zip(self.rows, paths):  # every row of it: none may contradict
            if path == image:
                row[self._column("action")] = action  # a label only for a relabel
                row[self._column("label")] = escape_cell(label) if action == "relabel" else ""
        return self.findings()[paths.index(image)]

    def save(self) -> None:
        text = io.StringIO()
        writer = csv_writer(text)
        writer.writerow(self.header)
        writer.writerows(self.rows)
        atomic_write_text(self.path, text.getvalue())
