"""The review file: a person's decisions on `petal data review`'s findings, which
`petal data split`, `petal train` and `petal run` apply with `--review FILE`.

A CSV file, for a spreadsheet, a text editor or the review page (`petal review DIR`):
`petal data review --out DIR` writes DIR/review.csv with a row per photo found and an empty
action (not decided yet; read as `keep`). Set a row's action to `keep`, `exclude` (the image
is left out) or `relabel` (it counts as the class in the row's `label` column, filled in with
the suggested class). The data folder itself is never modified: the decisions apply to
petal's list of images, and the split file records them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import warnings
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from petal.data.scan import DatasetIndex
from petal.errors import PetalError, PetalWarning
from petal.fsutil import atomic_write_text, read_limited
from petal.spreadsheet import csv_writer, escape_cell, read_records, unescape_cell

REVIEW_CSV = "review.csv"
COLUMNS = ("path", "finding", "given", "suggested", "score", "action", "label")
ACTIONS = ("keep", "relabel", "exclude")
MAX_REVIEW_BYTES = 64 * 2**20  # a row per image of a few million images

Labelled = TypeVar("Labelled")  # an ImageRecord or a SplitItem: frozen, with path and label


@dataclass(frozen=True)
class Decisions:
    """What a review file asks for: images to leave out, and images' new labels."""

    file: str
    sha256: str
    excluded: tuple[str, ...]  # paths under the data folder, sorted
    relabelled: dict[str, str]  # path -> class

    def apply(self, records: Sequence[Labelled]) -> list[Labelled]:
        """`records` without the excluded images, relabelled ones with their new label."""
        left_out = set(self.excluded)
        return [dataclasses.replace(r, label=self.relabelled.get(r.path, r.label))
                for r in records if r.path not in left_out]

    def summary(self) -> str:
        return (f"review {self.file}: {len(self.excluded)} image(s) excluded, "
                f"{len(self.relabelled)} relabelled")

    def to_json(self) -> dict:
        return {"file": self.file, "sha256": self.sha256, "excluded": list(self.excluded),
                "relabelled": dict(sorted(self.relabelled.items()))}

    @classmethod
    def from_json(cls, data: dict) -> Decisions:
        return cls(str(data["file"]), str(data["sha256"]), tuple(map(str, data["excluded"])),
                   {str(k): str(v) for k, v in dict(data["relabelled"]).items()})


def write_review_file(path: str | os.PathLike, label_issues: Iterable[dict],
                      outliers: Iterable[dict], hard: Iterable[dict] = (),
                      earlier: Iterable[dict] = (), own_columns: Sequence[str] = ()) -> None:
    """review.csv: a row per photo found, undecided: the likely label mistakes, the hard or
    ambiguous photos, then the outliers. The label column is left empty (a relabel without
    one takes the suggested class) so that only a relabel names a class there. A photo
    found twice is one row (finding `label+outlier`, `hard+outlier`), so a decision on it is
    never contradicted by a row left undecided. `earlier` rows (an earlier review file's,
    as ReviewSheet.findings gives them) keep their decisions and their cells ("own") of a
    person's `own_columns` (headers as written, after petal's): a photo this review no
    longer finds keeps its row when it was decided or has such a cell filled in. Text cells
    are escaped for spreadsheets (petal.spreadsheet)."""
    rows: dict[str, dict] = {}
    for finding, found in (("label", label_issues), ("hard", hard)):
        for item in found:
            rows[item["path"]] = {**item, "finding": finding, "action": "", "label": ""}
    for outlier in outliers:
        if outlier["path"] in rows:
            rows[outlier["path"]]["finding"] += "+outlier"
            continue
        given = outlier["path"].split("/")[0]
        rows[outlier["path"]] = {**outlier, "finding": "outlier", "given": given,
                                 "suggested": "", "action": "", "label": ""}
    for old in earlier:
        if not (old["action"] or any(old.get("own", []))):
            continue
        row = rows.setdefault(old["path"], dict(old))
        row["own"] = old.get("own", [])
        if old["action"]:
            row["action"], row["label"] = old["action"], old["label"]
    text = io.StringIO()
    writer = csv_writer(text)
    writer.writerow([*COLUMNS, *own_columns])
    blank = [""] * len(own_columns)
    for row in rows.values():
        writer.writerow([escape_cell(row[c]) if isinstance(row[c], str) else row[c]
                         for c in COLUMNS] + [escape_cell(c) for c in row.get("own") or blank])
    atomic_write_text(path, text.getvalue())


def _as_written(cell: str, known: Collection[str]) -> str:
    """The name in `cell` as petal wrote it, when that is one of `known`; else without the
    spaces a person or a spreadsheet may have put around it (names may start or end with
    spaces, so they are kept when they match)."""
    name = unescape_cell(cell)
    return name if name in known else unescape_cell(cell.strip())


def read_review_file(path: str | os.PathLike, classes: Sequence[str],
                     labels: dict[str, str]) -> Decisions:
    """The decisions of review file `path` for a folder whose images have `labels` (path ->
    class); PetalError, naming the line, for anything it cannot apply."""
    try:
        data = read_limited(path, MAX_REVIEW_BYTES)
    except FileNotFoundError as exc:
        raise PetalError(f"review file {path} does not exist") from exc
    except OSError as exc:
        raise PetalError(f"review file {path} cannot be read: {exc}") from exc
    records = read_records(path, data)
    _, header = next(records, (0, []))
    # column name -> place; of two columns with one name, the first counts
    columns = {name.strip().lower(): i for i, name in reversed(list(enumerate(header)))}
    if not {"path", "action"} <= set(columns):
        raise PetalError(f"review file {path} needs a header line with the columns path and "
                         "action (and label for relabel): write one with `petal data review "
                         "DIR --out DIR`")

    def cell(cells: list[str], name: str) -> str:
        at = columns.get(name)
        return cells[at] if at is not None and at < len(cells) else ""

    wanted: dict[str, tuple[str, str, int]] = {}  # path -> (action, label, line)
    missing: list[str] = []  # rows of photos not in the folder (deleted since, or elsewhere)
    for line, cells in records:
        where = f"review file {path}, line {line}"
        image = _as_written(cell(cells, "path"), labels)
        action = cell(cells, "action").strip().lower() or "keep"
        if action not in ACTIONS:
            raise PetalError(f"{where}: action {action!r}: use one of {', '.join(ACTIONS)}")
        if image not in labels:
            missing.append(f"{where}: {image!r}")
            continue
        label = _as_written(cell(cells, "label") or cell(cells, "suggested"), classes)
        if action == "relabel" and label not in classes:
            raise PetalError(f"{where}: relabel to {label!r}: the label must be one of the "
                             f"folder's classes ({', '.join(classes)})")
        decided = (action, label if action == "relabel" else "", line)
        earlier = wanted.setdefault(image, decided)
        if earlier[:2] != decided[:2]:
            raise PetalError(f"{where}: {image} was already given another action on line "
                             f"{earlier[2]}")
    if missing and not wanted:
        raise PetalError(f"{missing[0]} is not an image of the data folder (was the review "
                         "made for another folder?)")
    if missing:
        warnings.warn(f"{len(missing)} row(s) of review file {path} name photos that are no "
                      f"longer in the data folder, and are skipped (first: "
                      f"{missing[0].split(', ', 1)[1]})", PetalWarning, stacklevel=2)
    return Decisions(
        file=str(path), sha256=hashlib.sha256(data).hexdigest(),
        excluded=tuple(sorted(p for p, (action, _, _) in wanted.items() if action == "exclude")),
        relabelled={p: label for p, (action, label, _) in sorted(wanted.items())
                    if action == "relabel" and label != labels[p]})


def read_review_for(path: str | os.PathLike, index: DatasetIndex) -> Decisions:
    """The decisions of review file `path` for the scanned folder `index`."""
    return read_review_file(path, index.classes, {r.path: r.label for r in index.images})
