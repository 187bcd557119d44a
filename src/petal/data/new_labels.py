"""The folder `petal label` fills: NEW_DATA, a data folder `petal train --data` reads.

- NEW_DATA/labels.csv: a row per decided photo: `source` (the photo's path under the
  labelled folder, that folder's links resolved), `sha256`, `decision` (`label` or `none`:
  none of the classes), `label`. It is the record: each decision reads it again (a person
  may have edited it), then replaces it atomically before anything else is touched.
- NEW_DATA/CLASS/STEM-XXXXXXXX.EXT: a symbolic link to each photo labelled CLASS (a copy with
  `copy=True`; XXXXXXXX from the photo's path, so that two photos of one name stay two), and
  NEW_DATA/_none/STEM-XXXXXXXX.EXT to each photo of none of the classes: not a class, the
  next training checks (and with enough of them sets) its unknown threshold with them.
  Links follow labels.csv; opening the folder mends any a kill left behind.
- With `original` (a data folder's photos and their labels, a review's decisions applied)
  when NEW_DATA is made, each photo DATA/PATH of class CLASS is linked as
  NEW_DATA/CLASS/DATA_NAME/PATH (and each of its photos of none of the classes, in
  DATA/_none/, likewise under NEW_DATA/_none/), so that NEW_DATA holds the old photos and the
  new labels together, and no decision ever touches a linked old photo.

The photos themselves, and the folders they are in, are never written; a row may only name
a photo under the folder being labelled, with the content it had when it was labelled.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import secrets
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from petal.data.image import ImageLoadError, read_image_file
from petal.data.scan import NONE_FOLDER
from petal.errors import PetalError, PetalWarning
from petal.fsutil import (
    atomic_write_text,
    name_problem,
    read_limited,
    remove_stale_temporaries,
    walk_files,
)
from petal.spreadsheet import csv_writer, escape_cell, read_records, unescape_cell

LABELS_CSV = "labels.csv"
COLUMNS = ("source", "sha256", "decision", "label")
DECISIONS = ("label", "none")
MAX_LABELS_BYTES = 64 * 2**20
SHA256 = re.compile(r"[0-9a-f]{64}")
MAX_NAME_BYTES = 200


def file_name(source: Path) -> str:
    """The name of a labelled photo's link: its own (cut to MAX_NAME_BYTES, room for the
    temporary name of an atomic write), with a hash of its path."""
    mark = hashlib.sha256(str(source).encode("utf-8", "surrogateescape")).hexdigest()[:8]
    stem, suffix = source.stem, source.suffix[:16]
    while len(os.fsencode(f"{stem}-{mark}{suffix}")) > MAX_NAME_BYTES:
        stem = stem[:-1]
    return f"{stem}-{mark}{suffix}"


def _unchanged(source: Path, sha256: str) -> bool:
    """Whether the photo at `source` is still there with content `sha256`."""
    try:
        return hashlib.sha256(read_image_file(source)).hexdigest() == sha256
    except ImageLoadError:
        return False


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _place(source: Path, target: Path, copy: bool) -> None:
    """A link to (or copy of) `source` at `target`, put there atomically."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".petal-{secrets.token_hex(8)}.tmp"  # short: any name fits beside
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
        if mine is None:
            continue
        if not mine.is_dir():
            raise PetalError(f"{mine} ({what}) is not a folder")
        if _inside(folder.resolve(), mine.resolve()) or _inside(mine.resolve(), folder.resolve()):
            raise PetalError(f"{folder} and {mine} ({what}) overlap: put the new data folder "
                             "elsewhere; petal never writes into your photos")
    if folder.exists() and not folder.is_dir():
        raise PetalError(f"{folder} is a file: give a folder for the new data")
    if folder.is_dir() and not (folder / LABELS_CSV).is_file() and any(
            not p.name.startswith(".") for p in folder.iterdir()):
        raise PetalError(f"{folder} already holds files but no {LABELS_CSV}: give a new or "
                         "empty folder (or one `petal label` made)")



def _label_records(path: Path, advice: str = "") -> Iterator[tuple[int, list[str]]]:
    """labels.csv's rows after its header, (line, cells); PetalError for a file that cannot
    be read (bounded: MAX_LABELS_BYTES, regular files only) or has another header."""
    try:
        data = read_limited(path, MAX_LABELS_BYTES)
    except OSError as exc:
        raise PetalError(f"{path} cannot be read: {exc}" + (f"; {advice}" if advice else "")
                         ) from exc
    records = read_records(path, data)
    _, header = next(records, (0, []))
    if [h.strip().lower() for h in header[:len(COLUMNS)]] != list(COLUMNS):
        raise PetalError(f"{path}: the first line must be {','.join(COLUMNS)}")
    return records

def labelled_hashes(folder: str | os.PathLike) -> set[str]:
    """The SHA-256 of every photo decided in `folder`'s labels.csv (labelled or "none"), to
    leave out of what is still to label; PetalError for a folder without a readable one."""
    records = _label_records(Path(folder) / LABELS_CSV, "give the folder `petal label "
                             "--out` filled")
    return {cells[1].strip().lower() for _, cells in records
            if len(cells) > 2 and SHA256.fullmatch(cells[1].strip().lower())
            and cells[2].strip() in DECISIONS}

@dataclass(frozen=True)
class LinkedData:
    """A data folder's photos to link into NEW_DATA: (path under root, class) each."""

    root: Path
    photos: list[tuple[str, str]]


@dataclass
class NewLabels:
    folder: Path
    classes: list[str]
    photos: Path  # resolved
    copy: bool
    rows: dict[str, dict]  # source -> its labels.csv row
    linked_from: str | None = None  # the data folder linked in when it was made

    @classmethod
    def open(cls, folder: str | os.PathLike, classes: list[str], photos: Path,
             copy: bool = False, original: LinkedData | None = None) -> NewLabels:
        """NEW_DATA at `folder`, made if new, for labelling the photos under `photos` into
        `classes`; PetalError for a folder petal must not write into. `original` is linked
        in only when the folder is made."""
        folder = Path(folder).absolute()
        if problem := next(filter(None, map(name_problem, classes)), None):
            raise PetalError(f"class {problem}: it cannot name a folder in {folder}")
        if clash := next((c for c in classes if c in (LABELS_CSV, NONE_FOLDER)
                          or c.startswith(".")), None):
            raise PetalError(f"class {clash!r} cannot be a class folder in {folder} (the "
                             f"labels file, the folder of photos of none of the classes, or "
                             f"a hidden folder training would not see)")
        check_place(folder, photos, original.root if original is not None else None)
        new = cls(folder, classes, photos.resolve(), copy, {})
        if (folder / LABELS_CSV).is_file():
            remove_stale_temporaries(folder / LABELS_CSV)
            for label in new.folders:  # links a kill left half made
                for leftover in (folder / label).glob(".*.tmp"):
                    leftover.unlink(missing_ok=True)
            new.rows = new.read()
            new.linked_from = next((p.name for c in new.folders if (folder / c).is_dir()
                                    for p in (folder / c).iterdir() if p.is_dir()), None)
            new.remove_unrecorded()
            for source in list(new.rows):
                new.mend(source)
            return new
        folder.mkdir(parents=True, exist_ok=True)
        if original is not None:
            new.link_original(original)
        new.save()
        return new

    @property
    def folders(self) -> list[str]:
        """The folders decisions place photos in: the classes', and NONE_FOLDER."""
        return [*self.classes, NONE_FOLDER]

    @staticmethod
    def folder_of(row: dict | None) -> str | None:
        """Where a labels.csv row's photo is placed: its class, NONE_FOLDER, or nowhere."""
        if row is None:
            return None
        return row["label"] if row["decision"] == "label" else NONE_FOLDER

    def link_original(self, original: LinkedData) -> None:
        """Link each of `original`'s photos as CLASS/ORIGINAL_NAME/PATH (CLASS may be
        NONE_FOLDER)."""
        root = original.root.absolute()
        self.linked_from = root.name
        for path, label in original.photos:
            _place(root / path, self.folder / label / root.name / path, self.copy)

    def read(self) -> dict[str, dict]:
        """labels.csv's rows by source; PetalError, naming the line, for one petal cannot
        use (a source outside the photos being labelled among them)."""
        path = self.folder / LABELS_CSV
        records = _label_records(path)
        rows = {}
        for line, cells in records:
            row = dict(zip(COLUMNS, (unescape_cell(c) for c in cells + [""] * len(COLUMNS))))
            where = f"{path}, line {line}"
            if not _inside(Path(row["source"]), self.photos) or ".." in Path(row["source"]).parts:
                raise PetalError(f"{where}: {row['source']!r} is not a photo under "
                                 f"{self.photos} (was {LABELS_CSV} made for other photos?)")
            if not SHA256.fullmatch(row["sha256"]):
                raise PetalError(f"{where}: sha256 {row['sha256']!r} is not a SHA-256")
            if row["decision"] not in DECISIONS or (row["decision"] == "label"
                                                    and row["label"] not in self.classes):
                raise PetalError(f"{where}: decision {row['decision']!r}, label "
                                 f"{row['label']!r}: use label (with one of "
                                 f"{', '.join(self.classes)}) or none")
            rows[row["source"]] = row
        return rows

    def decide(self, source: Path, sha256: str, decision: str, label: str = "") -> None:
        """Record `decision` (label, none, or "" to take it back) for the photo at `source`
        (under self.photos) whose content had `sha256`, on disk: labels.csv first, then its
        link. PetalError, with nothing written, when the photo is no longer that content."""
        if decision not in (*DECISIONS, ""):
            raise PetalError(f"decision {decision!r}: use label or none")
        if decision == "label" and label not in self.classes:
            raise PetalError(f"label {label!r}: use one of {', '.join(self.classes)}")
        if decision and not _unchanged(source, sha256):
            raise PetalError(f"{source} is missing or changed since petal read it: nothing "
                             "was saved; start petal label again to see it as it is now")
        self.rows = self.read()
        key = str(source)
        if decision:
            self.rows[key] = {"source": key, "sha256": sha256, "decision": decision,
                              "label": label if decision == "label" else ""}
        else:
            self.rows.pop(key, None)
        self.save()
        self.sync(source)

    def sync(self, source: Path) -> None:
        """Make photo `source`'s link what labels.csv says; PetalError when the photo is
        no longer what was labelled."""
        row = self.rows.get(str(source))
        wanted = self.folder_of(row)
        name = file_name(source)
        for label in self.folders:
            if label != wanted:
                self._remove(self.folder / label / name)
        target = self.folder / str(wanted) / name
        if wanted is None or target.exists():
            return
        if not _unchanged(source, row["sha256"]):
            raise PetalError(f"{source} is missing or changed since it was labelled: label it "
                             "again")
        _place(source, target, self.copy)

    @staticmethod
    def _remove(target: Path) -> None:
        """Delete a photo's link (or copy), and its class folder if that leaves it empty: a
        class folder with no photo would stop training."""
        if target.is_symlink() or target.exists():
            target.unlink()
            if not any(target.parent.iterdir()):
                target.parent.rmdir()

    def remove_unrecorded(self) -> None:
        """Delete the links (or copies) in the class folders that no row of labels.csv asks
        for: a row a person deleted, or a take-back a kill cut short between the file and the
        unlink. Only what petal makes is touched: a link to a photo under self.photos named
        as petal names it, or, with copies, a file named as petal names a copy of one of those
        photos; a person's own files stay."""
        wanted = {(self.folder_of(row), file_name(Path(source)))
                  for source, row in self.rows.items()}
        unwanted = [(label, entry) for label in self.folders if (self.folder / label).is_dir()
                    for entry in sorted((self.folder / label).iterdir())
                    if (label, entry.name) not in wanted]
        copies = ({file_name(photo) for photo in walk_files([self.photos])}
                  if self.copy and unwanted else set())
        removed = []
        for label, entry in unwanted:
            if self._made_here(entry, copies):
                self._remove(entry)
                removed.append(f"{label}/{entry.name}")
        if removed:
            warnings.warn(f"{len(removed)} link(s) in {self.folder} that {LABELS_CSV} does "
                          "not ask for (a row deleted or changed by hand, or a decision cut "
                          f"short) were removed: {', '.join(removed[:3])}"
                          + (" ..." if len(removed) > 3 else ""), PetalWarning, stacklevel=3)

    def _made_here(self, entry: Path, copies: set[str]) -> bool:
        """Whether `entry` in a class folder is one of the labelled photos petal placed:
        a link to a photo under self.photos, or a copy named as petal names one (`copies`)."""
        if entry.is_symlink():
            target = Path(os.readlink(entry))
            return _inside(target, self.photos) and file_name(target) == entry.name
        return entry.is_file() and entry.name in copies

    def mend(self, source: str) -> None:
        """sync, when reopening: a photo that changed, or whose link cannot be made, is
        warned about and left out."""
        try:
            self.sync(Path(source))
        except (PetalError, OSError) as exc:
            warnings.warn(str(exc), PetalWarning, stacklevel=2)

    def save(self) -> None:
        text = io.StringIO()
        writer = csv_writer(text)
        writer.writerow(COLUMNS)
        for row in self.rows.values():
            writer.writerow([escape_cell(row[c]) for c in COLUMNS])
        atomic_write_text(self.folder / LABELS_CSV, text.getvalue())
