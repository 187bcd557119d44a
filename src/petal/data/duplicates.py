"""Exact and near-duplicate images, and copies whose labels disagree.

Exact duplicates share their SHA-256. Near-duplicates are different files whose 64-bit
perceptual hashes (imagehash.phash: DCT of a 32x32 grey thumbnail) differ in at most
NEAR_DUPLICATE_MAX_DISTANCE bits. The threshold was set by eye on the flowers set: every
pair at distance <= 6 was the same photo re-encoded, recoloured or recropped; at 8, 5 of
7 pairs were; at 10 most pairs were different photos. A false positive only keeps two
photos on the same side of a split, a false negative leaks one into validation, so the
threshold sits at the upper end: 8.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from itertools import combinations

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from petal.data.scan import ImageRecord

NEAR_DUPLICATE_MAX_DISTANCE = 8

# Multi-index hashing cuts the 64-bit hash into this many bands (21, 21 and 22 bits).
_BANDS = 3
_CHUNK_CELLS = 1 << 22  # hashes x neighbour keys looked up at once (about 32 MB a chunk)


@dataclass(frozen=True)
class NearPair:
    a: str
    b: str
    distance: int
    cross_label: bool


@dataclass
class DuplicateReport:
    exact_groups: list[list[str]]  # byte-identical files, same label
    conflicts: list[list[str]]  # byte-identical files with different labels
    near_pairs: list[NearPair]  # similar but not identical files


def _neighbour_masks(width: int, radius: int) -> np.ndarray:
    """Every `width`-bit value with at most `radius` bits set: XOR a key with each of them
    to get every key within `radius` bits of it."""
    masks = [0]
    for bits in range(1, radius + 1):
        masks += [sum(1 << b for b in chosen) for chosen in combinations(range(width), bits)]
    return np.array(masks, dtype=np.int64)


def near_pairs(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """(i, j, distance) rows, i < j, sorted, for every pair of 64-bit `hashes` at most
    `max_distance` bits apart, without comparing every pair: multi-index hashing (Norouzi,
    Punjani and Fleet 2012). The hash is cut into _BANDS bands; two hashes within r bits
    differ in at most r // _BANDS bits in one band at least (pigeonhole), so each hash looks
    up, in a table of every hash's band value, its own band value and those within
    r // _BANDS bits of it, and the full distance decides over the candidates found. The
    same pairs as comparing all of them (tests/test_duplicates.py), in about N x 700
    look-ups at the flowers threshold instead of N^2 / 2 comparisons."""
    hashes = np.asarray(hashes, dtype=np.uint64)
    n = len(hashes)
    found = [np.empty((0, 3), np.int64)]
    edges = np.linspace(0, 64, _BANDS + 1).round().astype(int)
    for low, high in zip(edges[:-1], edges[1:]):
        width = int(high - low)
        keys = ((hashes >> np.uint64(low)) & np.uint64((1 << width) - 1)).astype(np.int64)
        order = np.argsort(keys, kind="stable")
        counts = np.bincount(keys, minlength=1 << width)
        starts = np.concatenate([[0], np.cumsum(counts)])
        masks = _neighbour_masks(width, max_distance // _BANDS)
        step = max(1, _CHUNK_CELLS // len(masks))
        for first in range(0, n, step):
            probes = keys[first:first + step, None] ^ masks[None, :]
            hits = counts[probes]
            rows, cols = np.nonzero(hits)
            sizes = hits[rows, cols]
            # every member of every bucket hit: bucket start + 0, 1, ... size - 1
            ends = np.cumsum(sizes)
            within = np.arange(ends[-1] if len(ends) else 0) - np.repeat(ends - sizes, sizes)
            other = order[np.repeat(starts[probes[rows, cols]], sizes) + within]
            this = np.repeat(rows + first, sizes)
            keep = this < other
            this, other = this[keep], other[keep]
            distance = np.bitwise_count(hashes[this] ^ hashes[other]).astype(np.int64)
            close = distance <= max_distance
            found.append(np.stack([this[close], other[close], distance[close]], axis=1))
    pairs = np.concatenate(found)
    return np.unique(pairs, axis=0)  # a pair close in several bands is found once for each


def _near_pairs(images: list[ImageRecord], max_distance: int) -> list[tuple[int, int, int]]:
    """(i, j, distance) with i < j for every pair of `images` within `max_distance` bits."""
    hashes = np.array([int(r.phash, 16) for r in images], dtype=np.uint64)
    return [tuple(row) for row in near_pairs(hashes, max_distance).tolist()]


def _exact_groups(images: list[ImageRecord]) -> list[list[int]]:
    by_hash: dict[str, list[int]] = defaultdict(list)
    for i, record in enumerate(images):
        by_hash[record.sha256].append(i)
    return [group for group in by_hash.values() if len(group) > 1]


def find_duplicates(images: list[ImageRecord],
                    max_distance: int = NEAR_DUPLICATE_MAX_DISTANCE) -> DuplicateReport:
    exact_groups, conflicts = [], []
    for group in _exact_groups(images):
        paths = [images[i].path for i in group]
        labels = {images[i].label for i in group}
        (conflicts if len(labels) > 1 else exact_groups).append(paths)
    near = [
        NearPair(images[i].path, images[j].path, d, images[i].label != images[j].label)
        for i, j, d in _near_pairs(images, max_distance)
        if images[i].sha256 != images[j].sha256
    ]
    return DuplicateReport(exact_groups=exact_groups, conflicts=conflicts, near_pairs=near)


def duplicate_groups(images: list[ImageRecord],
                     max_distance: int = NEAR_DUPLICATE_MAX_DISTANCE) -> list[list[int]]:
    """Indices of `images` grouped so that exact and near copies share a group.

    Byte-identical files have identical hashes (distance 0), so near pairs cover them.
    """
    n = len(images)
    pairs = _near_pairs(images, max_distance)
    rows = [i for i, _, _ in pairs]
    cols = [j for _, j, _ in pairs]
    graph = coo_matrix((np.ones(len(pairs)), (rows, cols)), shape=(n, n))
    _, component = connected_components(graph, directed=False)
    groups: dict[int, list[int]] = defaultdict(list)
    for i, c in enumerate(component):
        groups[int(c)].append(i)
    return list(groups.values())
