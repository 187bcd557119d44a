"""Where petal writes: its cache, and never inside a data set (which may be read-only, and
whose every folder is a class)."""

from __future__ import annotations

import os
from pathlib import Path

from petal.errors import PetalError


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """`override`, else $PETAL_CACHE, else $XDG_CACHE_HOME/petal, else ~/.cache/petal."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("PETAL_CACHE"):
        return Path(os.environ["PETAL_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "petal"
    return Path.home() / ".cache" / "petal"


def refuse_inside(out: str | os.PathLike, data: str | os.PathLike, option: str = "--out",
                  run_folder: bool = False) -> None:
    """PetalError when `out` is data folder `data` or lies inside it (a folder written there
    would be read as a class, its figures as photos), or, for a `run_folder` (whose model/ and
    checkpoints/ petal replaces whole), when the data folder lies inside `out`. Folders are
    compared by device and inode, so a link or a bind mount to the same folder is caught."""
    out_chain, data_chain = _chain(Path(out)), _chain(Path(data))
    if data_chain[0] in out_chain:
        raise PetalError(f"{option} {out} is inside the data folder {data}: petal never writes "
                         "into your photos (what it wrote would be read as a class); write "
                         "elsewhere")
    if run_folder and out_chain[0] in data_chain:
        raise PetalError(f"the data folder {data} is inside {option} {out}: what petal writes "
                         f"there could replace your photos; give {option} a folder of its own")


def refuse_cache_inside(data: str | os.PathLike, cache_dir: str | os.PathLike | None) -> None:
    """refuse_inside for petal's cache (--cache-dir, else $PETAL_CACHE, ...): a cache in the
    data folder would be read as a class."""
    refuse_inside(cache_root(cache_dir), data, "the cache (--cache-dir, $PETAL_CACHE)")


def refuse_inside_model_data(out: str | os.PathLike, data: str) -> None:
    """refuse_inside for a model's own data folder (its card's `data`), if it still exists:
    a figure or a file written there would be read as a training photo."""
    if data and Path(data).is_dir():
        refuse_inside(out, data)


def _chain(path: Path) -> list[tuple[int, int] | str]:
    """The identity of `path` and of each folder above it: (device, inode) where it exists,
    else its absolute name (a folder not made yet)."""
    chain: list[tuple[int, int] | str] = []
    for place in (path := Path(os.path.abspath(path)), *path.parents):
        try:
            info = os.stat(place)
            chain.append((info.st_dev, info.st_ino))
        except OSError:
            chain.append(str(place))
    return chain
