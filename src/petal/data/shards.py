"""WebDataset tar shards: a data set packed into a few large files that stream from a disk
or an http(s) server (`petal data pack`, and `petal predict` from them).

A shard is a tar file in WebDataset's layout: the members of one photo share a key (its
SHA-256) and differ by extension: KEY.EXT (the photo's bytes as they were, EXT its suffix),
KEY.label (its class, UTF-8) and KEY.path (where it was under the data folder). They are
written by WebDataset's ShardWriter, a new shard every `shard_bytes`. They are read here as a
stream (tarfile's "r|" mode: a member at a time, no seek), so a shard over http is read once,
front to back; each member's size is checked in its header before its bytes are read (the
limit every photo has, image.MAX_FILE_BYTES), and an http shard that stalls for `timeout_s`
ends with a reported skip. A shard that is truncated, not a tar file, or unreachable is
reported once, the photos before the damage kept. WebDataset's own reader is not used for
reading: it reads each member whole before anyone can look at its size.

A source is a path or URL ending in .tar, with WebDataset's brace ranges
(`shards/shard-{000000..000099}.tar`, `https://host/shard-{000..009}.tar`).
"""

from __future__ import annotations

import logging
import os
import tarfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from petal.data.image import MAX_FILE_BYTES, ImageLoadError, read_image_file
from petal.data.scan import DatasetIndex
from petal.errors import PetalError

log = logging.getLogger(__name__)

SHARD_NAME = "shard-%06d.tar"
SHARD_BYTES = 256 * 2**20
TIMEOUT_S = 60.0
MAX_SHARDS = 1_000_000  # a brace range names at most this many


@dataclass(frozen=True)
class Sample:
    """A photo read from a shard: `name` SOURCE#KEY; `data` its bytes, or None and `why`."""

    name: str
    data: bytes | None
    label: str = ""
    why: str = ""


@dataclass(frozen=True)
class Packed:
    """What `pack` wrote."""

    folder: Path
    shards: list[Path]
    photos: int
    copies: int  # exact copies of a photo already packed, left out

    def summary(self) -> str:
        return (f"Packed {self.photos} photo(s) into {len(self.shards)} shard(s) in "
                f"{self.folder}" + (f" ({self.copies} exact copies left out)"
                                    if self.copies else ""))


def is_shard_source(text: str) -> bool:
    return str(text).endswith(".tar") or str(text).startswith(("http://", "https://"))


def pack(index: DatasetIndex, out: str | os.PathLike, shard_bytes: int = SHARD_BYTES) -> Packed:
    """The usable photos of `index` as shards in the new or empty folder `out`."""
    import webdataset

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PetalError(f"{out} is not a new or empty folder: give another --out")
    out.mkdir(parents=True, exist_ok=True)
    seen: set[str] = set()
    with webdataset.ShardWriter(str(out / SHARD_NAME), maxsize=shard_bytes, maxcount=10**9,
                                verbose=0, encoder=False) as writer:
        for record in index.images:
            if record.sha256 in seen:
                continue
            try:
                data = read_image_file(index.root / record.path)
            except ImageLoadError as exc:
                raise PetalError(f"{exc} (the file changed after it was checked; re-run)"
                                 ) from exc
            seen.add(record.sha256)
            suffix = Path(record.path).suffix.lower().lstrip(".") or "img"
            writer.write({"__key__": record.sha256, suffix: data,
                          "label": record.label.encode(),
                          "path": record.path.encode("utf-8", "surrogateescape")})
    shards = sorted(out.glob("shard-*.tar"))
    return Packed(out, shards, len(seen), len(index.images) - len(seen))


def expand(source: str) -> list[str]:
    """The shards a source names (its brace ranges expanded, as WebDataset does)."""
    from braceexpand import braceexpand

    names = []
    for name in braceexpand(source):
        names.append(name)
        if len(names) > MAX_SHARDS:
            raise PetalError(f"{source} names over {MAX_SHARDS} shards")
    return names


def _open(name: str, timeout_s: float) -> BinaryIO:
    if name.startswith(("http://", "https://")):
        return urllib.request.urlopen(name, timeout=timeout_s)  # noqa: S310 - http(s) only
    if not Path(name).is_file():  # a named pipe would block, a folder is no shard
        raise OSError(f"{name} is not a regular file")
    return open(name, "rb")


def samples(source: str, timeout_s: float = TIMEOUT_S) -> Iterator[Sample]:
    """Every photo of the shards of `source`, in order (module docstring)."""
    for name in expand(source):
        try:
            with _open(name, timeout_s) as stream:
                yield from _shard_samples(name, stream)
        except (OSError, tarfile.TarError, urllib.error.URLError, EOFError, ValueError) as exc:
            yield Sample(name, None, why=f"the shard cannot be read ({exc}); its photos "
                                         "before the damage were read")


def _shard_samples(name: str, stream: BinaryIO) -> Iterator[Sample]:
    """The photos of one shard: members grouped by key, each size checked first."""
    key, members = None, {}
    try:
        with tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                base = member.name.rsplit("/", 1)[-1]
                this, _, extension = base.partition(".")
                if this != key and key is not None:
                    yield _sample(name, key, members)
                    members = {}
                key = this
                if member.size > MAX_FILE_BYTES:
                    members[extension] = None  # over the limit: its bytes are never read
                    continue
                handle = tar.extractfile(member)
                members[extension] = handle.read() if handle is not None else b""
    except (OSError, tarfile.TarError, EOFError):
        if key is not None and members:  # the damage came after this photo's members
            yield _sample(name, key, members)
        raise
    if key is not None:
        yield _sample(name, key, members)


def _sample(name: str, key: str, members: dict[str, bytes | None]) -> Sample:
    label_bytes = members.pop("label", b"") or b""
    members.pop("path", None)
    where = f"{name}#{key}"
    label = label_bytes.decode("utf-8", "replace").strip()
    if len(members) != 1:
        return Sample(where, None, label, f"{len(members)} photo members (one expected)")
    (extension, data), = members.items()
    if data is None:
        return Sample(where, None, label, f"its .{extension} member is over "
                                          f"{MAX_FILE_BYTES // 2**20} MiB")
    return Sample(where, data, label)
