"""Where petal keeps its cache: never inside a data set, which may be read-only."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root(override: str | os.PathLike | None = None) -> Path:
    """`override`, else $PETAL_CACHE, else $XDG_CACHE_HOME/petal, else ~/.cache/petal."""
    if override:
        return Path(override).expanduser()
    if os.environ.get("PETAL_CACHE"):
        return Path(os.environ["PETAL_CACHE"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "petal"
    return Path.home() / ".cache" / "petal"
