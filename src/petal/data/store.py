"""An append-only, memory-mapped store of fixed-shape rows keyed by content hash.

The decoded-image cache and the cached-feature store are both one of these:
  rows.bin     rows of `row_shape` x `dtype`, appended; rewritten in place only to repair
               a damaged row
  index.json   {"format", "rows": {key: [row, checksum]}}, replaced atomically after the
               rows it names are on disk
A process killed mid-append leaves at worst orphaned or partial rows past those the index
names; the next append truncates the partial row. Concurrent writers (e.g. DDP ranks)
serialise on a file lock.

Under torchrun, the processes of one job share the rows out: each computes the missing rows
whose key falls to it (a hash of the key modulo the number of processes: `job_share`),
outside the lock, writes them a chunk at a time under it, then waits for the others' rows;
so every row is computed once for the whole job, wherever its process runs, provided the
store is a folder they all see (a shared --cache-dir). With a cache on each node's own disk,
PETAL_CACHE_PER_NODE=1 shares the rows among each node's processes instead. A row still
missing after the wait (a process gone, or a folder the others do not see) is computed by
whoever needs it, so sharing never loses a row, at worst it costs the wait.

Every row read through `ensure` is checked first: its CRC-32, taken over the key and the
row's bytes, must match the index. A row that was overwritten, zeroed, cut off or swapped
with another key's is made again (with a PetalWarning), and an index that cannot be read
starts the store afresh, so nothing trains on damaged pixels. CRC-32 catches accidental
damage at about 2 GB/s here (0.4 s for the 850 MB flowers cache); the cache is not a
security boundary: whoever can write it can only spoil pixels, never run code.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from filelock import FileLock

from petal.errors import PetalWarning
from petal.fsutil import atomic_write_json, read_json

log = logging.getLogger(__name__)

STORE_FORMAT = "petal-rows/2"
# rows a process computes before it writes them (under the lock): each write rewrites the
# index, so few and large, within this many bytes of rows held in memory
SHARE_CHUNK_BYTES = 256 * 2**20
SHARE_POLL_S = 2.0
SHARE_MIN_WAIT_S = 60.0  # the least time a process waits for the others' rows
MAX_INDEX_BYTES = 2**30  # about ten million rows

# Computes rows for a list of keys, yielding one array of `row_shape` per key, in order.
RowMaker = Callable[[list[str]], Iterable[np.ndarray]]
Index = dict[str, tuple[int, int]]  # key -> (row, checksum)


def job_share() -> tuple[int, int] | None:
    """(this process's place, how many processes share the rows) under torchrun (RANK and
    WORLD_SIZE, or with PETAL_CACHE_PER_NODE=1 LOCAL_RANK and LOCAL_WORLD_SIZE); None for a
    process alone."""
    per_node = os.environ.get("PETAL_CACHE_PER_NODE") == "1"
    place, count = ("LOCAL_RANK", "LOCAL_WORLD_SIZE") if per_node else ("RANK", "WORLD_SIZE")
    try:
        rank, world = int(os.environ[place]), int(os.environ[count])
    except (KeyError, ValueError):
        return None
    return (rank, world) if world > 1 and 0 <= rank < world else None


def owner(key: str, world: int) -> int:
    """The process (of `world`) that computes the row of `key`."""
    return int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % world


def row_checksum(key: str, row: np.ndarray | memoryview | bytes) -> int:
    """CRC-32 of the key and the row's bytes: a row under another key does not match."""
    return zlib.crc32(row, zlib.crc32(key.encode()))


def _parse_index(data: object) -> Index:
    """The index of a parsed index.json; ValueError when it is not one this petal wrote."""
    if not isinstance(data, dict) or data.get("format") != STORE_FORMAT:
        raise ValueError(f"not a {STORE_FORMAT} index")
    rows = data.get("rows")
    if not isinstance(rows, dict):
        raise ValueError("no rows")
    return {key: (entry[0], entry[1]) for key, entry in rows.items()
            if isinstance(entry, list) and len(entry) == 2
            and all(type(value) is int for value in entry)}


class RowView:
    """Stored rows in a caller's order, read from the memory-mapped file only when indexed.

    What `RowStore.ensure` returns when the rows asked for do not lie contiguously in the
    file: a copy of them all would hold the whole selection in memory (20 GB for 100 k
    decoded photos). Indexing with an int gives a row, with a slice another view, with an
    array of ints a copy of those rows only (a batch); `np.asarray` copies everything.
    """

    def __init__(self, stored: np.ndarray, rows: np.ndarray) -> None:
        self.stored, self.rows = stored, rows

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.rows), *self.stored.shape[1:])

    @property
    def dtype(self) -> np.dtype:
        return self.stored.dtype

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[np.ndarray]:
        return (self.stored[row] for row in self.rows)

    def __getitem__(self, key: object) -> np.ndarray | RowView:
        if isinstance(key, tuple):  # [row, ...]: the row first, then the rest of the key
            return self[key[0]][key[1:]]
        if isinstance(key, slice):
            return RowView(self.stored, self.rows[key])
        return self.stored[self.rows[key]]

    def __array__(self, dtype: np.dtype | None = None, copy: bool | None = None) -> np.ndarray:
        rows = self.stored[self.rows]
        return rows if dtype is None else rows.astype(dtype)


class RowStore:
    def __init__(self, folder: str | os.PathLike, row_shape: tuple[int, ...],
                 dtype: np.dtype | type = np.uint8) -> None:
        self.dir = Path(folder)
        self.row_shape, self.dtype = tuple(row_shape), np.dtype(dtype)
        self.rows_path = self.dir / "rows.bin"
        self.index_path = self.dir / "index.json"
        self.row_bytes = int(np.prod(self.row_shape)) * self.dtype.itemsize

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with FileLock(self.dir / "lock"):
            yield

    def read_index(self) -> Index:
        """key -> (row, checksum); {} for a new store. ValueError or OSError when unreadable."""
        if not self.index_path.exists():
            return {}
        return _parse_index(read_json(self.index_path, MAX_INDEX_BYTES))

    def _usable_index(self) -> Index:
        """The index, or {} with the rows dropped when it cannot be read (under the lock)."""
        try:
            return self.read_index()
        except (ValueError, OSError) as exc:
            warnings.warn(f"the cache index {self.index_path} is unreadable ({exc}): "
                          "its rows are made again", PetalWarning, stacklevel=3)
            if self.rows_path.exists():
                os.truncate(self.rows_path, 0)
            return {}

    def _damaged(self, index: Index, keys: Iterable[str]) -> list[str]:
        """The keys among `keys` whose stored row is missing, cut off or fails its checksum."""
        n_rows = self.rows_path.stat().st_size // self.row_bytes if self.rows_path.exists() else 0
        stored = self._memmap(n_rows)
        damaged = []
        for key in keys:
            row, checksum = index[key]
            if not 0 <= row < n_rows or row_checksum(key, stored[row].data) != checksum:
                damaged.append(key)
        return damaged

    def ensure(self, keys: Sequence[str], make_rows: RowMaker) -> np.ndarray | RowView:
        """Rows for `keys` (in that order), computing with `make_rows` the ones not stored yet
        and the stored ones that fail their check.

        Returns the rows (len(keys), *row_shape), read-only and read from disk when used: a
        memory-mapped slice when they lie contiguously in the file, else a RowView.
        """
        share = job_share()
        if share is not None:
            self._fill_share(list(dict.fromkeys(keys)), make_rows, *share)
        with self._locked():
            index = self._usable_index()
            wanted = list(dict.fromkeys(keys))
            damaged = self._damaged(index, [k for k in wanted if k in index])
            if damaged:
                warnings.warn(f"{len(damaged)} of {len(wanted)} rows in {self.dir} were damaged "
                              "(changed since they were written): they are made again",
                              PetalWarning, stacklevel=2)
            reusable = self._reusable(index, damaged)
            for key in damaged:
                del index[key]
            missing = [k for k in wanted if k not in index]
            if missing:
                self._write(missing, make_rows, index, reusable)
            rows = np.array([index[k][0] for k in keys], dtype=np.int64)
        return self._rows(rows)

    def _missing(self, keys: list[str]) -> list[str]:
        with self._locked():
            index = self._usable_index()
        return [k for k in keys if k not in index]

    def _fill_share(self, keys: list[str], make_rows: RowMaker, rank: int, world: int) -> None:
        """Compute this process's share of the missing rows of `keys`, then wait for the
        others' (module docstring)."""
        missing = self._missing(keys)
        mine = [k for k in missing if owner(k, world) == rank]
        started = time.monotonic()
        step = min(8192, max(256, SHARE_CHUNK_BYTES // self.row_bytes))
        for start in range(0, len(mine), step):
            chunk = self._missing(mine[start:start + step])
            rows = list(itertools.islice(make_rows(chunk), len(chunk)))  # outside the lock
            with self._locked():
                index = self._usable_index()
                fresh = [(k, r) for k, r in zip(chunk, rows, strict=True) if k not in index]
                if fresh:
                    made = dict(fresh)
                    self._write([k for k, _ in fresh], lambda ks: (made[k] for k in ks), index,
                                {})
        if missing:
            log.info(f"{self.dir.parent.name}/{self.dir.name}: this process ({rank + 1} of "
                     f"{world}) computed {len(mine)} of the {len(missing)} missing rows")
        deadline = time.monotonic() + max(SHARE_MIN_WAIT_S, 2 * (time.monotonic() - started))
        while missing and time.monotonic() < deadline:
            missing = self._missing(missing)
            if missing:
                time.sleep(SHARE_POLL_S)

    def _reusable(self, index: Index, damaged: list[str]) -> dict[str, int]:
        """The rows of damaged keys that are whole in the file and no other key's: repaired
        in place, so repairs do not grow the file."""
        n_rows = self.rows_path.stat().st_size // self.row_bytes if self.rows_path.exists() else 0
        owners = Counter(row for row, _ in index.values())
        return {key: index[key][0] for key in damaged
                if 0 <= index[key][0] < n_rows and owners[index[key][0]] == 1}

    def _write(self, missing: list[str], make_rows: RowMaker, index: Index,
               reusable: dict[str, int]) -> None:
        """Make the rows of `missing`: in place where `reusable` gives a row, else appended."""
        existing = self.rows_path.stat().st_size if self.rows_path.exists() else 0
        next_row = existing // self.row_bytes
        with open(self.rows_path, "r+b" if self.rows_path.exists() else "w+b") as out:
            out.truncate(next_row * self.row_bytes)  # drop a partial row from a killed append
            try:
                for key, row in zip(missing, make_rows(missing), strict=True):
                    data = np.ascontiguousarray(row, dtype=self.dtype).tobytes()
                    at = reusable.get(key, next_row)
                    out.seek(at * self.row_bytes)
                    out.write(data)
                    index[key] = (at, row_checksum(key, data))
                    if key not in reusable:
                        next_row += 1
            finally:
                out.flush()
                os.fsync(out.fileno())
                atomic_write_json(self.index_path, {
                    "format": STORE_FORMAT, "row_shape": list(self.row_shape),
                    "dtype": self.dtype.str, "rows": {k: list(v) for k, v in index.items()}})

    def _memmap(self, n_rows: int) -> np.ndarray:
        if n_rows == 0:
            return np.zeros((0, *self.row_shape), dtype=self.dtype)
        return np.memmap(self.rows_path, dtype=self.dtype, mode="r",
                         shape=(n_rows, *self.row_shape))

    def _rows(self, rows: np.ndarray) -> np.ndarray | RowView:
        if len(rows) == 0:
            return np.zeros((0, *self.row_shape), dtype=self.dtype)
        stored = self._memmap(self.rows_path.stat().st_size // self.row_bytes)
        if np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            return stored[rows[0]:rows[0] + len(rows)]  # contiguous: a memory-mapped slice
        return RowView(stored, rows)

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.dir.iterdir() if f.is_file())
