"""The review file: a person's decisions on `petal data review`'s findings, which
`petal data split`, `petal train` and `petal run` apply with `--review FILE`.

A CSV file, for a spreadsheet or a text editor: `petal data review --out DIR` writes
DIR/review.csv with a row per finding and the action `keep`. Change a row's action to
`exclude` (the image is left out) or `relabel` (it counts as the class in the row's `label`
column, filled in with the suggested class). The data folder itself is never modified: the
decisions apply to petal's list of images, and the split file records them.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from petal.errors import PetalError
from petal.fsutil import atomic_write_bytes, read_limited

if TYPE_CHECKING:
    from petal.data.scan import DatasetIndex

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
                      outliers: Iterable[dict]) -> None:
    """review.csv: a row per likely label mistake, then per outlier, all marked `keep`."""
    text = io.StringIO()
    writer = csv.DictWriter(text, COLUMNS, lineterminator="\n")
    writer.writeheader()
    for issue in label_issues:
        writer.writerow({**issue, "finding": "label", "action": "keep",
                         "label": issue["suggested"]})
    for outlier in outliers:
        given = outlier["path"].split("/")[0]
        writer.writerow({**outlier, "finding": "outlier", "given": given, "suggested": "",
                         "action": "keep", "label": given})
    atomic_write_bytes(path, text.getvalue().encode())


def read_review_file(path: str | os.PathLike, classes: Sequence[str],
                     labels: dict[str, str]) -> Decisions:
    """The decisions of review file `path` for a folder whose images have `labels` (path ->
    class); PetalError, naming the line, for anything it cannot apply."""
    try:
        data = read_limited(path, MAX_REVIEW_BYTES)
        text = data.decode("utf-8-sig")  # a spreadsheet may add a byte-order mark
    except FileNotFoundError as exc:
        raise PetalError(f"review file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PetalError(f"review file {path} cannot be read: {exc}") from exc
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise PetalError(f"review file {path} is not a CSV file: {exc}") from exc
    if not rows or not {"path", "action"} <= set(rows[0]):
        raise PetalError(f"review file {path} needs a header line with the columns path and "
                         "action (and label for relabel): write one with `petal data review "
                         "DIR --out DIR`")
    wanted: dict[str, tuple[str, str, int]] = {}  # path -> (action, label, line)
    for line, row in enumerate(rows, start=2):
        where = f"review file {path}, line {line}"
        image = (row.get("path") or "").strip()
        action = (row.get("action") or "keep").strip().lower() or "keep"
        if action not in ACTIONS:
            raise PetalError(f"{where}: action {action!r}: use one of {', '.join(ACTIONS)}")
        if image not in labels:
            raise PetalError(f"{where}: {image!r} is not an image of the data folder (was the "
                             "review made for another folder, or the file moved?)")
        label = (row.get("label") or row.get("suggested") or "").strip()
        if action == "relabel" and label not in classes:
            raise PetalError(f"{where}: relabel to {label!r}: the label must be one of the "
                             f"folder's classes ({', '.join(classes)})")
        if action == "keep":
            continue
        earlier = wanted.get(image)
        if earlier is not None and earlier[:2] != (action, label if action == "relabel" else ""):
            raise PetalError(f"{where}: {image} was already given another action on line "
                             f"{earlier[2]}")
        wanted[image] = (action, label if action == "relabel" else "", line)
    return Decisions(
        file=str(path), sha256=hashlib.sha256(data).hexdigest(),
        excluded=tuple(sorted(p for p, (action, _, _) in wanted.items() if action == "exclude")),
        relabelled={p: label for p, (action, label, _) in sorted(wanted.items())
                    if action == "relabel" and label != labels[p]})


def read_review_for(path: str | os.PathLike, index: DatasetIndex) -> Decisions:
    """The decisions of review file `path` for the scanned folder `index`."""
    return read_review_file(path, index.classes, {r.path: r.label for r in index.images})
