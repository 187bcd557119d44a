"""Scan an image folder (one sub-folder per class) into a validated index.

A sub-folder named NONE_FOLDER (`_none`) is not a class: it holds photos of none of the
classes (`petal label` files them there), which training uses to check the unknown threshold
(petal.training.none_photos).

Every file is read once: hashed (SHA-256, for exact duplicates), decoded (a truncated
or corrupt file is rejected here, not in the middle of training) and given a
perceptual hash (for near-duplicates). What is decided here is final downstream.
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import imagehash
from tqdm.auto import tqdm

from petal.data.image import ImageLoadError, load_image, open_image, read_image_file
from petal.data.labels_file import NONE_FOLDER, read_labels
from petal.errors import PetalError
from petal.fsutil import name_problem, walk_files
from petal.system import usable_cores, worker_context

# Size at which the perceptual hash is computed; JPEGs are decoded at reduced scale.
_PHASH_DECODE_SIZE = 64


@dataclass(frozen=True)
class ImageRecord:
    """A usable image. `path` is relative to the data root, with '/' separators."""

    path: str
    label: str
    sha256: str
    n_bytes: int
    width: int
    height: int
    phash: str  # 64-bit DCT perceptual hash, 16 hex digits


@dataclass(frozen=True)
class Rejected:
    """A file (or a labels file's row) petal will not use, and why (`reason` is one of
    ImageLoadError's kinds, or of a labels file's rows: petal.data.labels_file)."""

    path: str
    reason: str
    message: str
    label: str = ""  # the class it was filed under, when it was


@dataclass
class DatasetIndex:
    root: Path
    classes: list[str]
    images: list[ImageRecord]
    rejected: list[Rejected] = field(default_factory=list)
    # where the labels came from: {"file": the labels file (resolved), "columns": [path,
    # label]}; empty for class folders
    labels: dict = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counter = Counter(record.label for record in self.images)
        return {name: counter.get(name, 0) for name in self.classes}

    def to_json(self) -> dict:
        return {
            "root": str(self.root),
            "classes": self.classes,
            "images": [asdict(record) for record in self.images],
            "rejected": [asdict(item) for item in self.rejected],
            **({"labels": self.labels} if self.labels else {}),
        }


def _inspect(task: tuple[str, str, str]) -> ImageRecord | Rejected:
    """Read, hash and decode one file (runs in a worker process)."""
    full_path, rel_path, label = task
    try:
        data = read_image_file(full_path)
        header = open_image(data)
        width, height = header.size
        image = load_image(header, min_size=_PHASH_DECODE_SIZE)
    except ImageLoadError as exc:
        return Rejected(rel_path, exc.reason, exc.message, label)
    return ImageRecord(
        path=rel_path,
        label=label,
        sha256=hashlib.sha256(data).hexdigest(),
        n_bytes=len(data),
        width=width,
        height=height,
        phash=str(imagehash.phash(image)),
    )


def list_class_folders(root: Path) -> list[str]:
    """Class names = visible sub-folders of `root` but NONE_FOLDER, sorted. Raises PetalError
    if unusable."""
    if not root.exists():
        raise PetalError(f"data folder {root} does not exist: check the path")
    if not root.is_dir():
        raise PetalError(f"{root} is not a folder: give a folder with one sub-folder per class")
    classes = sorted(p.name for p in root.iterdir()
                     if p.is_dir() and not p.name.startswith(".") and p.name != NONE_FOLDER)
    if not classes:
        raise PetalError(
            f"{root} has no class folders: put each class's images in a sub-folder "
            f"named after the class (e.g. {root}/daisy/001.jpg)"
        )
    for name in classes:  # a '\\' is a separator elsewhere: the name would not travel
        if problem := name_problem(name):
            raise PetalError(f"class folder {root / name}: {problem}; rename the folder")
    return classes


def none_photos(root: str | os.PathLike) -> list[Path]:
    """The files under `root`/NONE_FOLDER (photos of none of the classes), sorted; none when
    there is no such folder."""
    folder = Path(root) / NONE_FOLDER
    return walk_files([folder]) if folder.is_dir() else []


def _class_files(root: Path, classes: list[str]) -> list[tuple[str, str, str]]:
    tasks = []
    for label in classes:
        for dirpath, dirnames, filenames in os.walk(root / label):
            dirnames.sort()
            for name in sorted(filenames):
                full = Path(dirpath) / name
                tasks.append((str(full), full.relative_to(root).as_posix(), label))
    return tasks


def scan_folder(root: str | os.PathLike, workers: int | None = None, progress: bool = True,
                labels: str | os.PathLike | None = None,
                label_columns: tuple[str, str] | None = None) -> DatasetIndex:
    """Scan `root` into a DatasetIndex: its class folders (files directly in `root` are not
    a class), or with `labels` the photos that labels file names, with their labels
    (petal.data.labels_file; `label_columns`: its path and label columns, else detected)."""
    root = Path(root)
    if labels is None:
        classes = list_class_folders(root)
        return _index(root, classes, _class_files(root, classes), workers, progress)
    if not root.is_dir():
        raise PetalError(f"data folder {root} does not exist or is not a folder: check the path")
    found = read_labels(root, labels, label_columns)
    classes = found.classes
    tasks = [(str(root / row.path), row.path, row.label) for row in found.rows]
    index = _index(root, classes, tasks, workers, progress)
    index.rejected[:0] = [Rejected(s.path, s.reason, s.message, s.label) for s in found.skipped]
    index.labels = {"file": str(Path(labels).resolve()), "columns": list(found.columns)}
    return index


def scan_labelled_as(root: str | os.PathLike, labels: dict, progress: bool = True
                     ) -> DatasetIndex:
    """`root` scanned as a split or index whose `labels` (DatasetIndex.labels) says: its
    labels file and columns, or its class folders."""
    if not labels:
        return scan_folder(root, progress=progress)
    return scan_folder(root, progress=progress, labels=labels["file"],
                       label_columns=tuple(labels["columns"]))


def scan_unlabelled(root: str | os.PathLike, workers: int | None = None,
                    progress: bool = True) -> DatasetIndex:
    """Every file under `root`, sub-folders included, as images without a class (label "")."""
    root = Path(root)
    if not root.is_dir():
        raise PetalError(f"{root} is not a folder of images")
    tasks = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = Path(dirpath) / name
            tasks.append((str(full), full.relative_to(root).as_posix(), ""))
    return _index(root, [], tasks, workers, progress)


def _index(root: Path, classes: list[str], tasks: list[tuple[str, str, str]],
           workers: int | None, progress: bool) -> DatasetIndex:
    """Inspect every file of `tasks` (in worker processes when there are many)."""
    workers = workers or usable_cores()
    bar = tqdm(total=len(tasks), desc="Scanning images", unit="img",
               disable=not progress, leave=False)
    results: list[ImageRecord | Rejected] = []
    if workers > 1 and len(tasks) > 64:
        with ProcessPoolExecutor(workers, mp_context=worker_context()) as pool:
            for result in pool.map(_inspect, tasks, chunksize=32):
                results.append(result)
                bar.update()
    else:
        for task in tasks:
            results.append(_inspect(task))
            bar.update()
    bar.close()
    images = [r for r in results if isinstance(r, ImageRecord)]
    rejected = [r for r in results if isinstance(r, Rejected)]
    return DatasetIndex(root=root, classes=classes, images=images, rejected=rejected)


def require_usable(index: DatasetIndex) -> None:
    """Raise PetalError saying what to fix when the index cannot be trained on."""
    require_classes(index.counts(), "", f"Fix the rows of {index.labels['file']} (petal data "
                    "check --labels lists what it skipped)." if index.labels else
                    "Add images to them or remove the folders.")


def require_classes(counts: dict[str, int], after: str, advice: str) -> None:
    """PetalError unless every class of `counts` (class -> images) has an image and there are
    at least two: a classifier cannot learn a class it never sees, nor choose from one.
    `after` says what left the images (e.g. " after the review file's decisions")."""
    if not counts:
        raise PetalError(f"no class with a usable image{after}. {advice}")
    empty = [name for name, n in counts.items() if n == 0]
    if empty:
        raise PetalError(f"class(es) with no usable image{after}: {', '.join(empty)}. "
                         f"{advice}")
    if len(counts) < 2:
        raise PetalError(f"only one class ({', '.join(counts)}){after}: a classifier needs at "
                         "least two classes")
