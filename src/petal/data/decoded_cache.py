"""Decoded-image cache: every image decoded once, stored as uint8 pixels in a memory-mappable file.

One RowStore (see `store`) per stored size S under `<cache root>/decoded/<S>px/`, rows of
(S, S, 3) uint8 RGB keyed by the file's SHA-256: a changed or added file decodes only
itself; a file moved or renamed decodes nothing.

An image is stored by resizing its shorter side to S (antialiased bicubic) and cropping
the central S x S square: the same transform `predict` applies, so training and
inference see identical pixels. Training takes random crops of the model's input size
out of that square; evaluation takes the central crop.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from petal.data.image import ImageLoadError, load_image, resize_and_center_crop
from petal.data.store import RowStore
from petal.errors import PetalError
from petal.system import usable_cores, worker_context


def decode_to_square(source: str | os.PathLike | bytes, size: int) -> np.ndarray:
    """Decode one image to a (size, size, 3) uint8 array, exactly as the cache stores it."""
    image = load_image(source, min_size=size)
    return np.asarray(resize_and_center_crop(image, size), dtype=np.uint8)


def _decode_task(task: tuple[str, int]) -> np.ndarray:
    path, size = task
    return decode_to_square(path, size)


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
        self.store = RowStore(Path(root) / "decoded" / f"{size}px", (size, size, 3), np.uint8)

    def ensure(self, files: Sequence[tuple[str | os.PathLike, str]], workers: int | None = None,
               progress: bool = True) -> np.ndarray:
        """Decode whatever is missing of `files` ((path, sha256) pairs) and return their pixels.

        Returns a read-only (N, S, S, 3) uint8 array, in the order of `files`.
        """
        squares = PhotoSquares(files, self.size)
        place = {sha: i for i, (_, sha) in enumerate(files)}

        def decode(missing: list[str]) -> Iterator[np.ndarray]:
            with tqdm(total=len(missing), desc=f"Decoding images to {self.size}px", unit="img",
                      disable=not progress, leave=False) as bar:
                for pixels in squares.squares([place[sha] for sha in missing], workers):
                    bar.update()
                    yield pixels

        return self.store.ensure([sha for _, sha in files], decode)


class PhotoSquares:
    """The decoded squares of `files` ((path, sha256) pairs) as the cache would store them,
    decoded when read and never stored: for a recipe that reads each photo once (the cached
    recipes compute a trunk's features from it, and those are what they keep), a decoded
    cache of 192 KiB a photo would be written once and never read again. `squares(indices)`
    decodes in worker processes, WINDOW photos at a time (a bounded memory)."""

    WINDOW = 256

    def __init__(self, files: Sequence[tuple[str | os.PathLike, str]], size: int) -> None:
        self.files, self.size = list(files), size

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: slice) -> PhotoSquares:
        return PhotoSquares(self.files[index], self.size)

    def squares(self, indices: Sequence[int], workers: int | None = None
                ) -> Iterator[np.ndarray]:
        """The (S, S, 3) uint8 squares of `indices`, in order; PetalError for a photo that no
        longer reads (it was checked when scanned)."""
        tasks = [(str(self.files[i][0]), self.size) for i in indices]
        n_workers = workers or usable_cores()
        try:
            if n_workers > 1 and len(tasks) > 64:
                with ProcessPoolExecutor(n_workers, mp_context=worker_context()) as pool:
                    for start in range(0, len(tasks), self.WINDOW):
                        yield from pool.map(_decode_task, tasks[start:start + self.WINDOW],
                                            chunksize=16)
            else:
                yield from map(_decode_task, tasks)
        except ImageLoadError as exc:
            raise PetalError(f"{exc} (the file changed after it was checked; re-run)") from exc


def cache_entries(root: str | os.PathLike) -> list[CacheEntry]:
    """What the decoded cache under `root` holds, one entry per stored size."""
    entries = []
    for folder in sorted((Path(root) / "decoded").glob("*px")):
        cache = DecodedCache(root, int(folder.name[:-2]))
        try:
            images = len(cache.store.read_index())
        except (ValueError, OSError):
            images = 0  # an unreadable index: the rows are made again on next use
        entries.append(CacheEntry(cache.size, images, cache.store.size_bytes(), folder))
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
