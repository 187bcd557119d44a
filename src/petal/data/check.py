"""`petal data check`: what is in an image folder, what petal will not use, and why."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from petal.data.duplicates import NEAR_DUPLICATE_MAX_DISTANCE, DuplicateReport, find_duplicates
from petal.data.scan import NONE_FOLDER, DatasetIndex, none_photos, require_usable, scan_folder
from petal.errors import PetalError
from petal.fsutil import walk_files

_LIST_LIMIT = 20  # lines per section in the human-readable report; --json has them all


@dataclass
class DataCheck:
    """What `petal.check` found in a folder: its usable images (`index`), the files it will
    not use, copies, and whether it can be trained on (`problem` says why not)."""

    index: DatasetIndex
    duplicates: DuplicateReport
    problem: str | None  # why the set cannot be used, or None
    n_none: int = 0  # files in NONE_FOLDER: photos of none of the classes, not a class
    n_unlisted: int = 0  # with a labels file: files in the folder it does not name

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def counts(self) -> dict[str, int]:
        """Usable images a class."""
        return self.index.counts()

    def __repr__(self) -> str:
        return (f"DataCheck({str(self.index.root)!r}: {len(self.index.images)} images in "
                f"{len(self.index.classes)} classes, {len(self.index.rejected)} not used, "
                + ("usable)" if self.usable else f"not usable: {self.problem})"))

    def summary(self) -> str:
        """The report `petal data check` prints."""
        return format_report(self)

    def to_pandas(self) -> Any:
        """Each usable image as a row (path, label, sha256, size, ...) of a pandas DataFrame."""
        from petal.display import pandas

        return pandas().DataFrame([asdict(r) for r in self.index.images])

    def _repr_html_(self) -> str:
        from petal.display import paragraph, table_html

        rejected: dict[str, int] = {}
        for item in self.index.rejected:
            rejected[item.label] = rejected.get(item.label, 0) + 1
        rows = [[name, n, rejected.get(name, 0)] for name, n in self.counts.items()]
        verdict = "usable" if self.usable else f"NOT usable: {self.problem}"
        return (paragraph(f"{self.index.root}: {len(self.index.images)} readable images in "
                          f"{len(self.index.classes)} classes, {verdict}; "
                          f"{len(self.duplicates.exact_groups)} groups of identical files, "
                          f"{len(self.duplicates.conflicts)} filed under two classes, "
                          f"{len(self.duplicates.near_pairs)} near-duplicate pairs")
                + table_html(rows, ["class", "images", "not used"], limit=100))

    def size_stats(self) -> dict[str, dict[str, float]]:
        if not self.index.images:
            return {}
        widths = np.array([r.width for r in self.index.images])
        heights = np.array([r.height for r in self.index.images])
        shorter = np.minimum(widths, heights)
        return {
            name: {"min": int(v.min()), "median": float(np.median(v)), "max": int(v.max())}
            for name, v in (("width", widths), ("height", heights), ("shorter_side", shorter))
        }

    def to_json(self) -> dict:
        return {
            "root": str(self.index.root),
            "usable": self.usable,
            "problem": self.problem,
            "classes": self.index.classes,
            "counts": self.index.counts(),
            "n_images": len(self.index.images),
            "image_size": self.size_stats(),
            "rejected": [asdict(r) for r in self.index.rejected],
            "exact_duplicates": self.duplicates.exact_groups,
            "label_conflicts": self.duplicates.conflicts,
            "near_duplicate_max_distance": NEAR_DUPLICATE_MAX_DISTANCE,
            "near_duplicates": [asdict(p) for p in self.duplicates.near_pairs],
            "none_photos": self.n_none,
            **({"unlisted_files": self.n_unlisted} if self.index.labels else {}),
        }


def check_folder(root: str | os.PathLike, progress: bool = True,
                 labels: str | os.PathLike | None = None,
                 label_columns: tuple[str, str] | None = None) -> DataCheck:
    """Scan and analyse `root` (its class folders, or the labels file `labels`). A missing
    folder, one without class folders, or a labels file that cannot be read raises
    PetalError."""
    index = scan_folder(root, progress=progress, labels=labels, label_columns=label_columns)
    try:
        require_usable(index)
        problem = None
    except PetalError as exc:
        problem = str(exc)
    return DataCheck(index=index, duplicates=find_duplicates(index.images), problem=problem,
                     n_none=len(none_photos(root)),
                     n_unlisted=_unlisted(index) if labels is not None else 0)


def _unlisted(index: DatasetIndex) -> int:
    """Files under the data folder that its labels file names in no row (the labels file
    itself and NONE_FOLDER's photos aside)."""
    named = {r.path for r in index.images} | {r.path for r in index.rejected}
    labels_file = Path(index.labels["file"])
    return sum(1 for path in walk_files([index.root])
               if path.relative_to(index.root).as_posix() not in named
               and path.relative_to(index.root).parts[0] != NONE_FOLDER
               and not (path.name == labels_file.name and path.resolve() == labels_file))


def _section(title: str, lines: list[str]) -> list[str]:
    if not lines:
        return []
    shown = lines[:_LIST_LIMIT]
    more = [f"  ... and {len(lines) - len(shown)} more (all of them with --json)"]
    return ["", f"{title} ({len(lines)}):", *(f"  {line}" for line in shown),
            *(more if len(lines) > len(shown) else [])]


def format_report(report: DataCheck) -> str:
    """The human-readable report: class table, sizes, unused files, duplicates, verdict."""
    index, dups = report.index, report.duplicates
    rejected_by_class: dict[str, int] = {}
    for item in index.rejected:
        rejected_by_class[item.label] = rejected_by_class.get(item.label, 0) + 1
    width = max([len(c) for c in index.classes] + [5])
    source = (f" (labels from {index.labels['file']}, columns {index.labels['columns'][0]} and "
              f"{index.labels['columns'][1]})" if index.labels else "")
    lines = [f"Data: {index.root}{source}", "",
             f"{'class':<{width}}  {'images':>7}  {'not used':>8}"]
    for name, count in index.counts().items():
        lines.append(f"{name:<{width}}  {count:>7}  {rejected_by_class.get(name, 0):>8}")
    lines.append(f"{'total':<{width}}  {len(index.images):>7}  {len(index.rejected):>8}")
    if report.n_unlisted:
        lines += ["", f"{report.n_unlisted} file(s) in the folder are in no row of the labels "
                  "file: not used"]
    if report.n_none:
        lines += ["", f"{NONE_FOLDER}/: {report.n_none} file(s) of none of the classes: not a "
                  "class; training checks its unknown threshold with them"]
    stats = report.size_stats()
    if stats:
        lines += ["", "Image size (px):   min   median    max"]
        for name, s in stats.items():
            lines.append(f"  {name:<14} {s['min']:>5} {s['median']:>8.0f} {s['max']:>6}")
    lines += _section("Files not used", [f"{r.path}: {r.reason} - {r.message}"
                                         for r in index.rejected])
    lines += _section("Exact duplicates, same class", [" = ".join(g) for g in dups.exact_groups])
    lines += _section("Label conflicts: identical files in different classes, left out of splits",
                      [" = ".join(g) for g in dups.conflicts])
    cross = sum(p.cross_label for p in dups.near_pairs)
    lines += _section(
        f"Near-duplicates (pHash distance <= {NEAR_DUPLICATE_MAX_DISTANCE}; "
        f"{cross} across classes), kept on one side of every split",
        [f"{p.a} ~ {p.b} (distance {p.distance}{', different classes' if p.cross_label else ''})"
         for p in dups.near_pairs],
    )
    verdict = ("Usable: yes" if report.usable else f"Usable: NO - {report.problem.rstrip('.')}")
    summary = f"{len(index.images)} readable images in {len(index.classes)} classes."
    lines += ["", f"{verdict}. {summary}"]
    return "\n".join(lines)
