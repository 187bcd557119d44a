"""Stratified, deterministic, duplicate-aware train/validation/test split, saved as JSON.

Copies of one photo (exact or near, see `duplicates`) form a group that goes to one part
as a whole, so no copy straddles train and validation. Byte-identical files filed under
different classes have no trustworthy label: they are left out unless asked for.
The split depends only on the seed and the files' paths and contents, never on the order
the file system lists them in.
"""

from __future__ import annotations

import dataclasses
import random
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from petal.data.decisions import Decisions
from petal.data.duplicates import NEAR_DUPLICATE_MAX_DISTANCE, duplicate_groups, find_duplicates
from petal.data.scan import DatasetIndex, ImageRecord, require_classes
from petal.errors import PetalError, PetalWarning
from petal.fsutil import atomic_write_json, read_json

SPLIT_FORMAT = "petal-split/1"
PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class SplitItem:
    path: str
    label: str
    sha256: str


@dataclass
class Split:
    """A split of a data set's photos into train, val and test (each a list of path, label
    and SHA-256), with what made it: seed, fractions, the review file's decisions and where
    the labels came from. `save`/`load` write and read the split file."""

    seed: int
    val_fraction: float
    test_fraction: float
    classes: list[str]
    train: list[SplitItem]
    val: list[SplitItem]
    test: list[SplitItem] = field(default_factory=list)
    excluded_conflicts: list[str] = field(default_factory=list)
    data_root: str = ""
    near_duplicate_max_distance: int = NEAR_DUPLICATE_MAX_DISTANCE
    review: dict = field(default_factory=dict)  # the applied review file's decisions, if any
    labels: dict = field(default_factory=dict)  # where the labels came from (DatasetIndex's)

    def part(self, name: str) -> list[SplitItem]:
        if name not in PARTS:
            raise PetalError(f"unknown split part {name!r}: use one of {', '.join(PARTS)}")
        return getattr(self, name)

    def counts(self) -> dict[str, dict[str, int]]:
        return {
            part: {c: Counter(i.label for i in self.part(part)).get(c, 0) for c in self.classes}
            for part in PARTS
        }

    def to_json(self) -> dict:
        return {
            "format": SPLIT_FORMAT,
            "data_root": self.data_root,
            **({"labels": self.labels} if self.labels else {}),
            "seed": self.seed,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "near_duplicate_max_distance": self.near_duplicate_max_distance,
            "classes": self.classes,
            "counts": self.counts(),
            "excluded_conflicts": self.excluded_conflicts,
            **({"review": self.review} if self.review else {}),
            **{part: [asdict(item) for item in self.part(part)] for part in PARTS},
        }

    @classmethod
    def from_json(cls, data: dict) -> Split:
        if data.get("format") != SPLIT_FORMAT:
            raise PetalError(f"not a petal split file (format {data.get('format')!r}, "
                             f"expected {SPLIT_FORMAT!r})")
        return cls(
            seed=data["seed"],
            val_fraction=data["val_fraction"],
            test_fraction=data["test_fraction"],
            classes=list(data["classes"]),
            excluded_conflicts=list(data["excluded_conflicts"]),
            data_root=data.get("data_root", ""),
            labels=_labels_source(data.get("labels", {})),
            near_duplicate_max_distance=data["near_duplicate_max_distance"],
            review=Decisions.from_json(data["review"]).to_json() if "review" in data else {},
            **{part: [SplitItem(**item) for item in data[part]] for part in PARTS},
        )

    def with_decisions(self, decisions: Decisions) -> Split:
        """This split with a review file's exclusions and new labels applied; PetalError when
        that leaves a class without a training image."""
        reviewed = dataclasses.replace(self, review=decisions.to_json(), **{
            part: decisions.apply(self.part(part)) for part in PARTS})
        require_classes(reviewed.counts()["train"], " to train on after the review file's "
                        "decisions", "Keep some of its photos (action keep), or make a new split "
                        "without --split.")
        return reviewed

    def save(self, path: str | Path) -> None:
        atomic_write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | Path) -> Split:
        try:
            return cls.from_json(read_json(path))
        except FileNotFoundError as exc:
            raise PetalError(f"split file {path} does not exist") from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise PetalError(f"split file {path} is not a valid petal split: {exc}") from exc


def _labels_source(data: object) -> dict:
    """A split file's `labels`, checked: {} or {"file": str, "columns": [str, str]}."""
    if data == {}:
        return {}
    if (not isinstance(data, dict) or set(data) != {"file", "columns"}
            or not isinstance(data["file"], str) or not isinstance(data["columns"], list)
            or len(data["columns"]) != 2 or not all(isinstance(c, str) for c in data["columns"])):
        raise ValueError(f"labels {data!r} is not a labels file and its two columns")
    return {"file": data["file"], "columns": list(data["columns"])}


def _targets(count: int, fraction: float) -> int:
    """Images of one class for a held-out part: never all; at least one when asked for, and
    at least two for a class of six or more (one image says little about a class)."""
    if fraction <= 0 or count < 2:
        return 0
    return min(count - 1, max(2 if count >= 6 else 1, round(count * fraction)))


def _warn_thin_validation(split: Split) -> None:
    counts = split.counts()["val"]
    thin = [f"{name} ({n})" for name, n in counts.items() if n < 2]
    if thin:
        warnings.warn(f"validation images of {', '.join(thin)}: fewer than 2, so their "
                      "accuracy says little; add photos, or compare results over several "
                      "split seeds", PetalWarning, stacklevel=3)


def _items(records: list[ImageRecord]) -> list[SplitItem]:
    return [SplitItem(r.path, r.label, r.sha256) for r in sorted(records, key=lambda r: r.path)]


def _require_every_class(classes: list[str], images: list[ImageRecord], reviewed: bool,
                         conflicts: bool) -> None:
    """The folder's checks again after a review file or the conflicting copies left images out
    (relabelling every photo to one class must not train a one-class model)."""
    counter = Counter(r.label for r in images)
    reasons, advice = [], []
    if reviewed:
        reasons.append("the review file's decisions")
        advice.append("Keep some of its photos in the review file (action keep).")
    if conflicts:
        reasons.append("leaving out identical files filed under two classes")
        advice.append("--keep-conflicts keeps the copies.")
    require_classes({c: counter.get(c, 0) for c in classes},
                    f" after {' and '.join(reasons)}" if reasons else "", " ".join(advice))


def make_split(index: DatasetIndex, seed: int = 0, val_fraction: float = 0.1,
               test_fraction: float = 0.0, keep_conflicts: bool = False,
               decisions: Decisions | None = None) -> Split:
    """Split `index` into train/val/test, stratified by class and grouped by duplicates,
    after applying a review file's `decisions` (then recorded in the split)."""
    if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise PetalError("fractions must satisfy 0 < val-fraction, 0 <= test-fraction and "
                         f"val + test < 1 (got {val_fraction} and {test_fraction})")
    reviewed = decisions.apply(index.images) if decisions else index.images
    conflicts = sorted(p for g in find_duplicates(reviewed).conflicts for p in g)
    excluded = set() if keep_conflicts else set(conflicts)
    images = sorted((r for r in reviewed if r.path not in excluded), key=lambda r: r.path)
    _require_every_class(index.classes, images, decisions is not None, bool(excluded))
    groups = [[images[i] for i in g] for g in duplicate_groups(images)]
    groups.sort(key=lambda g: min(r.path for r in g))
    random.Random(seed).shuffle(groups)

    per_class = Counter(r.label for r in images)
    quota = {
        "val": {c: _targets(n, val_fraction) for c, n in per_class.items()},
        "test": {c: _targets(n, test_fraction) for c, n in per_class.items()},
    }
    filled: dict[str, Counter] = {"val": Counter(), "test": Counter()}
    parts: dict[str, list[ImageRecord]] = {part: [] for part in PARTS}
    for group in groups:
        label = Counter(r.label for r in group).most_common(1)[0][0]
        target = "train"
        for part in ("val", "test"):
            if filled[part][label] + len(group) <= quota[part][label]:
                target = part
                break
        if target != "train":
            filled[target][label] += len(group)
        parts[target].extend(group)

    split = Split(
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        classes=list(index.classes),
        excluded_conflicts=sorted(excluded),
        data_root=str(index.root),
        labels=dict(index.labels),
        review=decisions.to_json() if decisions else {},
        **{part: _items(parts[part]) for part in PARTS},
    )
    _warn_thin_validation(split)
    return split


def check_split_matches(split: Split, index: DatasetIndex) -> None:
    """Raise PetalError when a split no longer describes the files in `index`."""
    if split.classes != index.classes:
        raise PetalError(f"split classes {split.classes} differ from the data's {index.classes}: "
                         "make a new split with `petal data split`")
    by_path = {r.path: r.sha256 for r in index.images}
    stale = [i.path for part in PARTS for i in split.part(part) if by_path.get(i.path) != i.sha256]
    if not stale:  # a labels file's edit changes labels, not photos
        images = (Decisions.from_json(split.review).apply(index.images) if split.review
                  else index.images)  # its relabels applied, as the split's labels are
        label_of = {r.path: r.label for r in images}
        stale = [i.path for part in PARTS for i in split.part(part)
                 if label_of.get(i.path) != i.label]
    if stale:
        raise PetalError(
            f"{len(stale)} file(s) in the split are missing from the data, changed or labelled "
            f"otherwise since the split was made (first: {stale[0]}): make a new split with "
            "`petal data split`"
        )


def check_folds(split: Split, folds: int) -> None:
    """PetalError unless `split`'s training and validation images can be dealt into `folds`
    folds that each hold every class (checked before any training starts)."""
    per_class = Counter(i.label for i in split.train + split.val)
    smallest = min(per_class, key=per_class.get)
    if folds < 2 or per_class[smallest] < folds:
        raise PetalError(f"--folds {folds}: use at least 2, and no more than the images of the "
                         f"smallest class ({smallest}: {per_class[smallest]})")


def deal_folds(images: Sequence[ImageRecord], folds: int, seed: int = 0
               ) -> list[list[ImageRecord]]:
    """`images` dealt into `folds` folds, the one way petal deals folds (cross-validation,
    the label review): classes spread evenly, copies of one photo in one fold."""
    groups = [[images[i] for i in g] for g in duplicate_groups(list(images))]
    groups.sort(key=lambda g: min(r.path for r in g))
    random.Random(seed).shuffle(groups)
    filled = [Counter() for _ in range(folds)]
    members: list[list[ImageRecord]] = [[] for _ in range(folds)]
    for group in sorted(groups, key=len, reverse=True):  # big groups first, while room is even
        label = Counter(r.label for r in group).most_common(1)[0][0]
        fold = min(range(folds), key=lambda k: (filled[k][label], sum(filled[k].values())))
        filled[fold][label] += len(group)
        members[fold].extend(group)
    return members


def fold_splits(split: Split, index: DatasetIndex, folds: int, seed: int = 0) -> list[Split]:
    """`folds` splits of `split`'s training and validation images for cross-validation: each
    image is validated in exactly one, classes are spread evenly over the folds, copies of one
    photo stay in one fold, and the test part is kept out of all of them."""
    check_folds(split, folds)
    items = split.train + split.val
    records = {r.path: r for r in index.images}
    members = deal_folds([dataclasses.replace(records[i.path], label=i.label) for i in items],
                         folds, seed)
    return [dataclasses.replace(split, train=_items([r for j in range(folds) if j != k
                                                       for r in members[j]]),
                                val=_items(members[k]))
            for k in range(folds)]
