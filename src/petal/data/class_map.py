"""Which folder of an evaluation set is which class of a model: by name (any case, singular or
plural), or as a class map says (a JSON file or NAME=CLASS pairs)."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from petal.errors import PetalError
from petal.fsutil import read_json

_PLURALS = ((r"ies$", "y"), (r"(ss|x|z|ch|sh)es$", r"\1"), (r"([^s])s$", r"\1"))


def _key(name: str) -> str:
    return re.sub(r"[\s_-]+", "_", name.strip().casefold())


def _singular(word: str) -> str:
    for pattern, replacement in _PLURALS:
        if re.search(pattern, word):
            return re.sub(pattern, replacement, word)
    return word


def match_class(folder: str, classes: Sequence[str]) -> str | None:
    """The class `folder` names (case-insensitive, singular or plural), or None."""
    key = _key(folder)
    candidates = [c for c in classes if _key(c) == key] or [
        c for c in classes if _singular(_key(c)) == _singular(key)]
    if len(candidates) > 1:
        raise PetalError(f"folder {folder!r} could be any of {', '.join(candidates)}: "
                         f"say which with --class-map {folder}=CLASS")
    return candidates[0] if candidates else None


def parse_class_map(value: str | os.PathLike | Mapping[str, str] | None) -> dict[str, str]:
    """A class map from a mapping, a JSON file ({"folder": "class"}) or 'folder=class,...' pairs."""
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return dict(value)
    text = str(value)
    if Path(text).is_file():
        try:
            data = read_json(text)
        except ValueError as exc:
            raise PetalError(f"class map {text} is not valid JSON: {exc}") from exc
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise PetalError(f"class map {text} must be a JSON object of folder: class names")
        return data
    pairs = [pair for pair in text.split(",") if pair.strip()]
    if not pairs or any("=" not in pair for pair in pairs):
        raise PetalError(f"class map {text!r} is neither a JSON file nor FOLDER=CLASS pairs "
                         "separated by commas (e.g. roses=rose,Daisies=daisy)")
    return {k.strip(): v.strip() for k, v in (pair.split("=", 1) for pair in pairs)}


def map_folders(folders: Sequence[str], classes: Sequence[str],
                class_map: Mapping[str, str]) -> dict[str, str]:
    """Each class folder's model class: from `class_map` (keys case-insensitive), else by name."""
    unknown = sorted(set(class_map.values()) - set(classes))
    if unknown:
        raise PetalError(f"the class map names {', '.join(unknown)}, which the model does not "
                         f"know: its classes are {', '.join(classes)}")
    explicit = {_key(folder): target for folder, target in class_map.items()}
    mapping = {f: explicit.get(_key(f)) or match_class(f, classes) for f in folders}
    unmatched = [folder for folder, target in mapping.items() if target is None]
    if unmatched:
        raise PetalError(f"folder(s) {', '.join(unmatched)} match none of the model's classes "
                         f"({', '.join(classes)}): rename them, or map them with "
                         "--class-map FOLDER=CLASS[,FOLDER=CLASS...] or a JSON file")
    return mapping
