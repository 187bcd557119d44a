"""Safe file access: atomic writes (a reader sees the old file or the new one, never half of
one) and bounded reads (no special file can block a reader, no file can exhaust memory)."""

from __future__ import annotations

import glob
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# mkstemp creates files readable by their owner only; give them the usual permissions.
_UMASK = os.umask(0)
os.umask(_UMASK)
_MODE = 0o666 & ~_UMASK

# Opening a named pipe for reading blocks until a writer comes, unless non-blocking;
# regular files read the same either way. (Windows has no named pipes in folders.)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)

# model.json, split.json, config.json, metrics.json: kilobytes to a few megabytes.
MAX_JSON_BYTES = 64 * 2**20


class NotARegularFile(OSError):
    """A named pipe, socket, device or folder where a file was expected."""


class FileTooLarge(OSError):
    """A file over the size petal reads into memory for its kind."""


def read_limited(path: str | os.PathLike, max_bytes: int) -> bytes:
    """The bytes of regular file `path`; NotARegularFile or FileTooLarge instead of blocking on
    a named pipe or reading without end from a device. Other OSErrors pass through."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a named pipe, socket or device"
            raise NotARegularFile(f"{path} is {kind}, not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        # read what the file holds (a buffer of max_bytes would cost that much for any file),
        # then whatever it grew by since, up to the limit
        data = b"" if info.st_size > max_bytes else handle.read(info.st_size + 1)
        if len(data) > info.st_size:
            data += handle.read(max_bytes + 1 - len(data))
    if info.st_size > max_bytes or len(data) > max_bytes:
        raise FileTooLarge(f"{path} is larger than {max_bytes / 2**20:g} MiB")
    return data


def name_problem(name: str) -> str | None:
    """Why `name` (a class name, say) cannot be one component of a path, or None: an empty
    name, `.` or `..`, or one holding `/`, `\\` or NUL would name another folder (or none)."""
    if name in ("", ".", ".."):
        return f"{name!r} is not a name"
    if any(char in name for char in "/\\\0"):
        return f"{name!r} holds a '/', a '\\' or a NUL character"
    return None


def walk_files(paths: Iterable[str | os.PathLike]) -> list[Path]:
    """The files named, with folders walked recursively in sorted order."""
    files = []
    for path in map(Path, paths):
        if not path.is_dir():
            files.append(path)
            continue
        for dirpath, dirnames, filenames in os.walk(path):
            dirnames.sort()
            files.extend(Path(dirpath) / name for name in sorted(filenames))
    return files


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of regular file `path`, read in blocks; NotARegularFile instead of blocking on
    a named pipe or reading without end from a device."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotARegularFile(f"{path} is not a regular file")
    except BaseException:
        os.close(fd)
        raise
    with os.fdopen(fd, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def check_writable_file(path: str | os.PathLike) -> None:
    """NotARegularFile when `path` exists as anything but a regular file: a rename over it
    would replace a device (/dev/null), a named pipe, a symbolic link or a folder with a file
    (as root, /dev/null itself); petal writes only a new or a regular file."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISREG(mode):
        kind = ("a symbolic link" if stat.S_ISLNK(mode) else "a folder" if stat.S_ISDIR(mode)
                else "a named pipe, socket or device")
        raise NotARegularFile(f"{path} is {kind}: petal writes only regular files (give the "
                              "path of a new or a regular file)")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write to a temporary file beside `path`, flush it to disk, then rename over `path`;
    NotARegularFile, before anything is written, when `path` is not a regular file."""
    target = Path(path)
    check_writable_file(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=_temporary_prefix(target), suffix=".tmp",
                               dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _MODE)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _temporary_prefix(target: Path) -> str:
    """`.NAME.` for the temporary file of an atomic write of `target`, NAME cut short so that
    the temporary name fits where `target`'s does (255 bytes)."""
    name = target.name
    while len(os.fsencode(name)) > 200:
        name = name[:-1]
    return f".{name}."


def remove_stale_temporaries(path: str | os.PathLike) -> int:
    """Delete what atomic writes of `path` killed midway left beside it (`.NAME.*.tmp`); how
    many. Only for a caller that holds the only right to write `path`."""
    target = Path(path)
    stale = list(target.parent.glob(f"{glob.escape(_temporary_prefix(target))}*.tmp"))
    for leftover in stale:
        leftover.unlink(missing_ok=True)
    return len(stale)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """UTF-8, but a file name that is not (a byte the file system gave as a surrogate, as
    os.fsdecode does) written as the bytes it is, so that it reads back the same."""
    atomic_write_bytes(path, text.encode("utf-8", "surrogateescape"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def parse_json(text: str | bytes) -> Any:
    """json.loads, with nesting too deep for the parser raised as the ValueError it is."""
    try:
        return json.loads(text)
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc


def read_json(path: str | os.PathLike, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file of at most `max_bytes`. Invalid JSON (or not UTF-8) raises
    ValueError; an unreadable, special or oversized file raises OSError."""
    return parse_json(read_limited(path, max_bytes))
