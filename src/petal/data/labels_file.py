"""Labels from a CSV file instead of class folders: `--labels FILE` (a Kaggle competition's
train.csv, a lab's export), rows of a photo's path (relative to the data folder) and its
label.

The columns are the ones named (`columns`), else detected from the header: a path column
among PATH_COLUMNS and a label column among LABEL_COLUMNS, else the only two columns there
are. A path without a suffix that names no file is tried with each of IMAGE_SUFFIXES (as
Kaggle's `id` columns are). Every row petal cannot use is reported as the folders' unusable
files are, with its line, and never used: a path outside the folder (an absolute path into
it is made relative; a symbolic link under it is followed, as in class folders), a photo in
_none/, a missing photo, an empty or unusable label (not UTF-8 text is an error for the whole
file), a photo listed twice (the later rows of one label are skipped; one of two labels is
dropped altogether). Every usable label is a class, whatever becomes of its rows' photos.
The file is read within MAX_BYTES, a record of at most MAX_COLUMNS cells at a time
(spreadsheet.read_records: a BOM, CRLF and file names that are not UTF-8 are read as a person
wrote them).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from petal.errors import PetalError, PetalWarning
from petal.fsutil import read_limited
from petal.spreadsheet import read_records, unescape_cell

log = logging.getLogger(__name__)

MAX_BYTES = 128 * 2**20  # a row per photo of a few million photos
PATH_COLUMNS = ("path", "file", "filename", "file_name", "filepath", "file_path", "image",
                "image_id", "image_name", "image_path", "img", "id", "id_code")
LABEL_COLUMNS = ("label", "labels", "class", "class_name", "category", "species", "target",
                 "diagnosis", "breed", "y")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".heic", ".heif", ".webp", ".tif", ".tiff",
                  ".bmp", ".gif", ".avif")
NONE_FOLDER = "_none"  # photos of none of the classes (scan.NONE_FOLDER)
RESERVED_LABELS = (NONE_FOLDER,)
MAX_LABEL_BYTES = 200  # a class names a folder: room for a file system's 255


@dataclass(frozen=True)
class LabelledRow:
    """A usable row: the photo's path under the data folder ('/'-separated) and its label."""

    path: str
    label: str


@dataclass(frozen=True)
class SkippedRow:
    """A row petal will not use: what it named, why (a short kind) and a sentence."""

    path: str
    label: str
    reason: str
    message: str


def _column(header: list[str], named: str | None, candidates: Sequence[str], what: str,
            path: Path) -> int:
    names = [h.strip().lower() for h in header]
    if named is not None:
        if named.strip().lower() not in names:
            raise PetalError(f"{path} has no column {named!r} (its columns: "
                             f"{', '.join(header)})")
        return names.index(named.strip().lower())
    found = next((c for c in candidates if c in names), None)
    if found is not None:
        return names.index(found)
    if len(header) == 2:  # two columns: the photo, then its label
        return 0 if what == "photo" else 1
    raise PetalError(f"{path}: cannot tell which column holds the {what} (its columns: "
                     f"{', '.join(header) or 'none'}): name them with --label-columns "
                     "PATH,LABEL")


def _relative(cell: str, root: str) -> str | None:
    """The cell as a path under the data folder ('/'-separated; an absolute path into the
    folder made relative), None for one that leaves it (`..`, another absolute path, a drive)
    or cannot name a file (empty, a NUL)."""
    text = cell.strip().replace("\\", "/")
    if text.startswith("/") and "\0" not in text:
        inside = os.path.relpath(os.path.normpath(text), root)
        text = "" if inside == ".." or inside.startswith("../") else inside
    if not text or "\0" in text or text.startswith("/") or (len(text) > 1 and text[1] == ":"):
        return None
    parts = [p for p in text.split("/") if p not in ("", ".")]  # str, not pathlib: 5x faster
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def _with_suffix(root: str, path: str) -> str:
    """`path`, or for one without a suffix naming no file, the first of IMAGE_SUFFIXES that
    does."""
    if os.path.splitext(path)[1] or os.path.lexists(os.path.join(root, path)):
        return path
    return next((path + s for s in IMAGE_SUFFIXES
                 if os.path.lexists(os.path.join(root, path + s))), path)


@dataclass(frozen=True)
class LabelsRead:
    """What a labels file gave: its usable rows, the skipped ones, the columns read (as its
    header names them), and the classes: every label of a row naming a photo under the folder,
    whether or not the photo is there (a class whose every photo is missing is an empty class,
    refused as an empty class folder is, never a class silently gone)."""

    rows: list[LabelledRow]
    skipped: list[SkippedRow]
    columns: tuple[str, str]
    classes: list[str]


def read_labels(root: Path, file: str | os.PathLike,
                columns: tuple[str, str] | None = None) -> LabelsRead:
    """The rows of labels file `file` for data folder `root`; PetalError for a file that
    cannot be read as one."""
    file = Path(file)
    try:
        data = read_limited(file, MAX_BYTES)
    except FileNotFoundError as exc:
        raise PetalError(f"labels file {file} does not exist") from exc
    except OSError as exc:  # a folder, a pipe, a device, a file over MAX_BYTES
        raise PetalError(f"labels file {file} cannot be read: {exc}") from exc
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\0" in data[:200]:
        raise PetalError(f"labels file {file} is UTF-16 text (a spreadsheet's \"Unicode "
                         "text\"): save it as \"CSV UTF-8\"")
    records = read_records(file, data, what="labels file")
    _, header = next(records, (0, []))
    if not header:
        raise PetalError(f"labels file {file} is empty: give a CSV file whose first line names "
                         "its columns (e.g. path,label)")
    if len(header) == 1 and (";" in header[0] or "\t" in header[0]):
        raise PetalError(f"labels file {file} separates its columns with "
                         f"{'semicolons' if ';' in header[0] else 'tabs'}: save it as "
                         "comma-separated CSV (\"CSV UTF-8\")")
    named = [h.strip().lower() for h in header]
    path_at = _column(header, columns[0] if columns else None, PATH_COLUMNS, "photo", file)
    label_at = _column(header, columns[1] if columns else None, LABEL_COLUMNS, "label", file)
    for at in (path_at, label_at):
        if named.count(named[at]) > 1:
            raise PetalError(f"{file}: column {header[at]!r} appears {named.count(named[at])} "
                             "times in the header: rename the others, or name the columns "
                             "with --label-columns")
    if path_at == label_at:
        raise PetalError(f"{file}: the photo and its label cannot be one column "
                         f"({header[path_at]!r})")
    log.info(f"Labels from {file}: photos in column {header[path_at]!r}, labels in "
             f"{header[label_at]!r}")
    rows: dict[str, LabelledRow] = {}
    skipped, conflicts, base, classes = [], set(), os.fspath(root), set()
    for line, cells in records:
        cells = cells + [""] * 2
        raw, label = unescape_cell(cells[path_at]), unescape_cell(cells[label_at]).strip()
        where = f"{file.name}, line {line}"
        problem = _label_problem(label, where)
        if problem is not None:
            skipped.append(SkippedRow(raw, label, *problem))
            continue
        classes.add(label)  # a class, whatever becomes of its photos
        path = _relative(raw, base)
        if path is None:
            skipped.append(SkippedRow(raw, label, "outside",
                                      f"{where}: {raw!r} is not a photo under {root}"))
            continue
        if path.split("/", 1)[0] == NONE_FOLDER:
            skipped.append(SkippedRow(path, label, "none_folder", f"{where}: a photo in "
                                      f"{NONE_FOLDER}/ is of none of the classes"))
            continue
        path = _with_suffix(base, path)
        # a missing photo found here: a worker process's round trip costs 20 times more
        if not os.path.lexists(os.path.join(base, path)):
            skipped.append(SkippedRow(path, label, "missing", f"{where}: no such photo"))
            continue
        earlier = rows.get(path)
        if earlier is None and path not in conflicts:
            rows[path] = LabelledRow(path, label)
        elif earlier is not None and earlier.label == label:
            skipped.append(SkippedRow(path, label, "duplicate_row",
                                      f"{where}: listed again (used once)"))
        else:
            conflicts.add(path)
            first = rows.pop(path, None)
            skipped.append(SkippedRow(path, label, "label_conflict", f"{where}: listed with "
                                      f"another label ({first.label if first else 'earlier'}"
                                      f"); left out"))
    if not rows and not skipped:
        raise PetalError(f"labels file {file} has its header but no rows")
    _warn_of_cases(classes, file)
    return LabelsRead(list(rows.values()), skipped, (header[path_at], header[label_at]),
                      sorted(classes))


def _label_problem(label: str, where: str) -> tuple[str, str] | None:
    """(kind, sentence) when `label` cannot name a class; PetalError for one that is not
    UTF-8 text (the whole file was saved in another encoding)."""
    try:
        label.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PetalError(f"{where}: the label {label!r} is not UTF-8 text (a file saved as "
                         "Latin-1 or Windows-1252?): save the labels file as \"CSV UTF-8\""
                         ) from exc
    if not label:
        return "no_label", f"{where}: no label"
    if (label in RESERVED_LABELS or label.startswith(".") or not label.isprintable()
            or len(label.encode()) > MAX_LABEL_BYTES or any(c in label for c in "/\\")):
        return "bad_label", (f"{where}: label {label[:60]!r} cannot name a class (a '/', a "
                             "'\\', a control character, a leading '.', _none, or over "
                             f"{MAX_LABEL_BYTES} bytes)")
    return None


def _warn_of_cases(classes: set[str], file: Path) -> None:
    """A warning for labels that differ only by case: two classes, likely meant as one."""
    by_case: dict[str, list[str]] = {}
    for label in classes:
        by_case.setdefault(label.casefold(), []).append(label)
    alike = [sorted(names) for names in by_case.values() if len(names) > 1]
    if alike:
        warnings.warn(f"{file}: labels that differ only by case are different classes: "
                      + "; ".join(" and ".join(names) for names in alike[:3]),
                      PetalWarning, stacklevel=4)
