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


def refuse_inside(out: str | os.PathLike, data: str | os.PathLike, option: str = "--out"
                  ) -> None:
    """PetalError when `out` is data folder `data` or lies inside it: petal never writes
    into a photo folder (a folder written there would be read as a class, its figures as
    photos)."""
    inside, folder = Path(out).resolve(), Path(data).resolve()
    if inside == folder or folder in inside.parents:
        raise PetalError(f"{option} {out} is inside the data folder {data}: petal never writes "
                         "into your photos (what it wrote would be read as a class); write "
                         "elsewhere")
