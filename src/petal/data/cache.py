"""Decoded-image cache: every image decoded once, stored as uint8 pixels in a memory-mappable file.

Layout, one folder per stored size S under `<cache root>/decoded/<S>px/`:
  pixels.u8    rows of S*S*3 bytes (H, W, RGB), appended, never rewritten
  index.json   {sha256: row}, replaced atomically after the rows it names are on disk

An image is stored by resizing its shorter side to S (antialiased bicubic) and cropping
the central S x S square: the same transform `predict` applies, so training and
inference see identical pixels. Training takes random crops of the model's input size
out of that square; evaluation takes the central crop.

Keys are the file's SHA-256 and S, so a changed or added file decodes only itself; a file
moved or renamed decodes nothing. A process killed mid-append leaves at worst orphaned or
partial rows past those the index names; the next build truncates the partial row.
Concurrent builders (e.g. DDP ranks) serialise on a file lock.
"""

from __future__ import annotations

import fcntl
import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from tqdm import tqdm

from petal.data.image import ImageLoadError, load_image, resize_and_center_crop
from petal.errors import PetalError
from petal.fsutil import atomic_write_json, read_json


def decode_to_square(source: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """Decode one image to a (size, size, 3) uint8 array, exactly as the cache stores it."""
    image = load_image(source, min_size=size)
    return np.asarray(resize_and_center_crop(image, size), dtype=np.uint8)


def _decode_task(task: tuple[str, int]) -> bytes:
    path, size = task
    return decode_to_square(path, size).tobytes()


@dataclass(frozen=True)
class CacheEntry:
    size: int
    images: int
    bytes: int
    path: Path


class DecodedCache:
    """The decoded images of one stored size S (see module docstring)."""

    def __init__(self, root: str | os.PathLike, size: int) -> None:
        self.size = size
        self.dir = Path(root) / "decoded" / f"{size}px"
        self.pixels_path = self.dir / "pixels.u8"
        self.index_path = self.dir / "index.json"
        self.row_bytes = size * size * 3

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        with open(self.dir / "lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _read_index(self) -> dict[str, int]:
        return read_json(self.index_path) if self.index_path.exists() else {}

    def ensure(self, files: Sequence[tuple[str | os.PathLike, str]], workers: int | None = None,
               progress: bool = True) -> np.ndarray:
        """Decode whatever is missing of `files` ((path, sha256) pairs) and return their pixels.

        Returns a read-only (N, S, S, 3) uint8 array backed by the memory-mapped cache file,
        in the order of `files`.
        """
        with self._locked():
            index = self._read_index()
            missing = {sha: path for path, sha in files if sha not in index}
            if missing:
                self._append(missing, index, workers, progress)
            rows = np.array([index[sha] for _, sha in files], dtype=np.int64)
        return self._rows(rows)

    def _append(self, missing: dict[str, str | os.PathLike], index: dict[str, int],
                workers: int | None, progress: bool) -> None:
        existing = self.pixels_path.stat().st_size if self.pixels_path.exists() else 0
        next_row = existing // self.row_bytes
        tasks = [(str(path), self.size) for path in missing.values()]
        workers = workers or len(os.sched_getaffinity(0))
        bar = tqdm(total=len(tasks), desc=f"Decoding images to {self.size}px", unit="img",
                   disable=None if progress else True, leave=False)
        with open(self.pixels_path, "ab") as out:
            out.truncate(next_row * self.row_bytes)  # drop a partial row from a killed build
            try:
                if workers > 1 and len(tasks) > 64:
                    with ProcessPoolExecutor(workers, mp_context=get_context("fork")) as pool:
                        results = pool.map(_decode_task, tasks, chunksize=16)
                        for sha, pixels in zip(missing, results):
                            out.write(pixels)
                            index[sha] = next_row
                            next_row += 1
                            bar.update()
                else:
                    for sha, task in zip(missing, tasks):
                        out.write(_decode_task(task))
                        index[sha] = next_row
                        next_row += 1
                        bar.update()
            except ImageLoadError as exc:
                raise PetalError(f"{exc} (the file changed after it was checked; re-run)") from exc
            finally:
                bar.close()
                out.flush()
                os.fsync(out.fileno())
                atomic_write_json(self.index_path, index)

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        if len(rows) == 0:
            return np.zeros((0, self.size, self.size, 3), dtype=np.uint8)
        n_rows = self.pixels_path.stat().st_size // self.row_bytes
        pixels = np.memmap(self.pixels_path, dtype=np.uint8, mode="r",
                           shape=(n_rows, self.size, self.size, 3))
        if np.array_equal(rows, np.arange(rows[0], rows[0] + len(rows))):
            return pixels[rows[0]:rows[0] + len(rows)]  # contiguous: stay memory-mapped
        return pixels[rows]


def cache_entries(root: str | os.PathLike) -> list[CacheEntry]:
    """What the decoded cache under `root` holds, one entry per stored size."""
    entries = []
    for folder in sorted((Path(root) / "decoded").glob("*px")):
        cache = DecodedCache(root, int(folder.name[:-2]))
        n_bytes = sum(f.stat().st_size for f in folder.iterdir() if f.is_file())
        entries.append(CacheEntry(cache.size, len(cache._read_index()), n_bytes, folder))
    return entries


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def clear_cache(root: str | os.PathLike) -> int:
    """Delete everything under the cache root; returns the bytes freed."""
    root = Path(root)
    if not root.exists():
        return 0
    freed = folder_bytes(root)
    for child in root.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    return freed
