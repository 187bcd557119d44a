"""An append-only, memory-mapped store of fixed-shape rows keyed by content hash.

The decoded-image cache and the cached-feature store are both one of these:
  rows.bin     rows of `row_shape` x `dtype`, appended, never rewritten
  index.json   {key: row}, replaced atomically after the rows it names are on disk
A process killed mid-append leaves at worst orphaned or partial rows past those the index
names; the next append truncates the partial row. Concurrent writers (e.g. DDP ranks)
serialise on a file lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from petal.fsutil import atomic_write_json, read_json

# Computes rows for a list of keys, yielding one array of `row_shape` per key, in order.
RowMaker = Callable[[list[str]], Iterable[np.ndarray]]


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
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def read_index(self) -> dict[str, int]:
        return read_json(self.index_path) if self.index_path.exists() else {}

    def ensure(self, keys: Sequence[str], make_rows: RowMaker) -> np.ndarray:
        """Rows for `keys` (in that order), computing with `make_rows` the ones not stored yet.

        Returns a read-only array of shape (len(keys), *row_shape), memory-mapped when the
        rows lie contiguously in the file, else a copy.
        """
        with self._locked():
            index = self.read_index()
            missing = list(dict.fromkeys(k for k in keys if k not in index))
            if missing:
                self._append(missing, make_rows, index)
            rows = np.array([index[k] for k in keys], dtype=np.int64)
        return self._rows(rows)

    def _append(self, missing: list[str], make_rows: RowMaker, index: dict[str, int]) -> None:
        existing = self.rows_path.stat().st_size if self.rows_path.exists() else 0
        next_row = existing // self.row_bytes
        with open(self.rows_path, "ab") as out:
            out.truncate(next_row * self.row_bytes)  # drop a partial row from a killed append
            try:
                for key, row in zip(missing, make_rows(missing), strict=True):
                    out.write(np.ascontiguousarray(row, dtype=self.dtype).tobytes())
                    index[key] = next_row
                    next_row += 1
            finally:
                out.flush()
                os.fsync(out.fileno())
                atomic_write_json(self.index_path, index)

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, *self.row_shape), dtype=self.dtype)
        n_rows = self.rows_path.stat().st_size // self.row_bytes
        stored = np.memmap(self.rows_path, dtype=self.dtype, mode="r",
                           shape=(n_rows, *self.row_shape))
        if np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            return stored[rows[0]:rows[0] + len(rows)]  # contiguous: stay memory-mapped
        return stored[rows]

    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.dir.iterdir() if f.is_file())
