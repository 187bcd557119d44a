"""Near-duplicate search: the multi-index hash finds exactly the pairs that comparing every
pair of hashes finds."""

from __future__ import annotations

import numpy as np
import pytest

from petal.data.duplicates import NEAR_DUPLICATE_MAX_DISTANCE, near_pairs


def brute_force(hashes: np.ndarray, max_distance: int) -> np.ndarray:
    """Every pair compared: the definition the index must match."""
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :]).astype(np.int64)
    i, j = np.nonzero(np.triu(distance <= max_distance, k=1))
    return np.stack([i, j, distance[i, j]], axis=1)


def planted(n: int, seed: int) -> np.ndarray:
    """n random 64-bit hashes, and a copy of some of them with 0 to 12 bits flipped: pairs at
    every distance around the threshold, including exact copies."""
    rng = np.random.default_rng(seed)
    hashes = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64) * np.uint64(2) \
        + rng.integers(0, 2, n).astype(np.uint64)
    copies = []
    for k, source in enumerate(rng.choice(n, n // 4, replace=False)):
        flips = rng.choice(64, k % 13, replace=False)
        copies.append(hashes[source] ^ np.uint64(sum(1 << int(b) for b in flips)))
    return np.concatenate([hashes, np.array(copies, dtype=np.uint64)])


@pytest.mark.parametrize("max_distance", [0, 2, 5, NEAR_DUPLICATE_MAX_DISTANCE, 11])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_index_finds_exactly_the_brute_force_pairs(max_distance: int, seed: int) -> None:
    hashes = planted(1500, seed)
    expected = brute_force(hashes, max_distance)
    assert len(expected) > 20  # the planted pairs are there to be found
    assert np.array_equal(near_pairs(hashes, max_distance), expected)


def test_clustered_hashes_and_edge_cases() -> None:
    """Many hashes sharing band values (a worst case for the buckets), one hash, none."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**63, 5, dtype=np.int64).astype(np.uint64)
    low_bits = rng.integers(0, 256, 400).astype(np.uint64)
    hashes = base[rng.integers(0, 5, 400)] ^ low_bits  # only the lowest 8 bits vary
    assert np.array_equal(near_pairs(hashes, 8), brute_force(hashes, 8))
    assert near_pairs(hashes[:1], 8).shape == (0, 3)
    assert near_pairs(np.array([], dtype=np.uint64), 8).shape == (0, 3)
