"""The folder `petal label` fills: NEW_DATA, a data folder `petal train --data` reads.

- NEW_DATA/labels.csv: a row per decided photo: `source` (the photo's absolute path),
  `sha256`, `decision` (`label` or `none`: none of the classes), `label`. It is the record:
  each decision replaces it atomically before anything else is touched.
- NEW_DATA/CLASS/STEM-SHA8.EXT: a symbolic link to each photo labelled CLASS (a copy with
  `copy=True`). Links follow labels.csv; opening the folder mends any a kill left behind.
- With `original=DATA` when NEW_DATA is made, every file of DATA's class folders is linked
  into NEW_DATA/CLASS/ too, so that NEW_DATA is the old photos and the new labels together.

The photos themselves, and the folders they are in, are never written.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

from petal.data.decisions import read_records
from petal.errors import PetalError
from petal.fsutil import atomic_write_bytes, read_limited
from petal.spreadsheet import escape_cell, unescape_cell

LABELS_CSV = "labels.csv"
COLUMNS = ("source", "sha256", "decision", "label")
DECISIONS = ("label", "none")
MAX_LABELS_BYTES = 64 * 2**20


def file_name(source: Path, sha256: str) -> str:
    """The name of a labelled photo's link: its own, with its content's hash (two photos
    called IMG_0001.JPG in two folders stay two files)."""
    return f"{source.stem}-{sha256[:8]}{source.suffix}"


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _place(source: Path, target: Path, copy: bool) -> None:
    """A link to (or copy of) `source` at `target`, put there atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(8)}.tmp"
    try:
        if copy:
            shutil.copyfile(source, tmp)
        else:
            tmp.symlink_to(source)
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def check_place(folder: Path, photos: Path, original: Path | None) -> None:
    """PetalError unless `folder` is a new, empty or petal-made folder outside `photos` and
    `original` (and not holding them)."""
    for mine, what in ((photos, "the photos to label"), (original, "the data folder")):
        if mine is not None and (_inside(folder.resolve(), mine.resolve())
                                 or _inside(mine.resolve(), folder.resolve())):
            raise PetalError(f"{folder} and {mine} ({what}) overlap: put the new data folder "
                             "elsewhere; petal never writes into your photos")
    if folder.exists() and not (folder / LABELS_CSV).is_file() and (
            not folder.is_dir() or any(folder.iterdir())):
        raise PetalError(f"{folder} already holds files but no {LABELS_CSV}: give a new or "
                         "empty folder (or one `petal label` made)")


@dataclass
class NewLabels:
    folder: Path
    classes: list[str]
    copy: bool
    rows: dict[str, dict]  # source -> its labels.csv row

    @classmethod
    def open(cls, folder: str | os.PathLike, classes: list[str], photos: Path,
             copy: bool = False, original: Path | None = None) -> NewLabels:
        """NEW_DATA at `folder`, made if new, for labelling the photos under `photos` into
        `classes`; PetalError for a folder petal must not write into."""
        folder = Path(folder).absolute()
        check_place(folder, photos, original)
        csv_path = folder / LABELS_CSV
        made = not csv_path.is_file()
        new = cls(folder, classes, copy, _read(csv_path, classes) if not made else {})
        if made:
            folder.mkdir(parents=True, exist_ok=True)
            if original is not None:
                new.link_original(original)
            new.save()
        for source in new.rows:
            new.sync(source)
        return new

    def link_original(self, original: Path) -> int:
        """Link every file of `original`'s class folders into this folder's; how many."""
        count = 0
        for label in self.classes:
            for dirpath, dirnames, names in os.walk(original / label):
                dirnames.sort()
                for name in sorted(names):
                    source = Path(dirpath) / name
                    _place(source.absolute(), self.folder / label /
                           source.relative_to(original / label), self.copy)
                    count += 1
        return count

    def decide(self, source: Path, sha256: str, decision: str, label: str = "") -> None:
        """Record `decision` (label, none, or "" to take it back) for the photo at `source`,
        on disk: labels.csv first, then its link."""
        if decision not in (*DECISIONS, ""):
            raise PetalError(f"decision {decision!r}: use label or none")
        if decision == "label" and label not in self.classes:
            raise PetalError(f"label {label!r}: use one of {', '.join(self.classes)}")
        key = str(source)
        if decision:
            self.rows[key] = {"source": key, "sha256": sha256, "decision": decision,
                              "label": label if decision == "label" else ""}
        else:
            self.rows.pop(key, None)
        self.save()
        self.sync(key, sha256)

    def sync(self, source: str, sha256: str = "") -> None:
        """Make the links of photo `source` what labels.csv says."""
        row = self.rows.get(source)
        sha256 = row["sha256"] if row else sha256
        name = file_name(Path(source), sha256)
        wanted = row["label"] if row and row["decision"] == "label" else None
        for label in self.classes:
            target = self.folder / label / name
            if label != wanted and (target.is_symlink() or target.exists()):
                target.unlink()
        if wanted is not None and not (self.folder / wanted / name).exists():
            _place(Path(source), self.folder / wanted / name, self.copy)

    def save(self) -> None:
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(COLUMNS)
        for row in self.rows.values():
            writer.writerow([escape_cell(row[c]) for c in COLUMNS])
        atomic_write_bytes(self.folder / LABELS_CSV, text.getvalue().encode())


def _read(path: Path, classes: list[str]) -> dict[str, dict]:
    """labels.csv's rows by source; PetalError, naming the line, for one petal cannot use."""
    try:
        data = read_limited(path, MAX_LABELS_BYTES)
    except OSError as exc:
        raise PetalError(f"{path} cannot be read: {exc}") from exc
    records = read_records(path, data)
    _, header = next(records, (0, []))
    if [h.strip().lower() for h in header[:len(COLUMNS)]] != list(COLUMNS):
        raise PetalError(f"{path}: the first line must be {','.join(COLUMNS)}")
    rows = {}
    for line, cells in records:
        row = dict(zip(COLUMNS, (unescape_cell(c) for c in cells + [""] * len(COLUMNS))))
        where = f"{path}, line {line}"
        if not Path(row["source"]).is_absolute() or len(row["sha256"]) != 64:
            raise PetalError(f"{where}: a source must be an absolute path with its sha256")
        if row["decision"] not in DECISIONS or (row["decision"] == "label"
                                                and row["label"] not in classes):
            raise PetalError(f"{where}: decision {row['decision']!r}, label {row['label']!r}:"
                             f" use label (with one of {', '.join(classes)}) or none")
        rows[row["source"]] = row
    return rows
