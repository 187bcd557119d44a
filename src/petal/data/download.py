"""Fetch public data sets into petal's cache (`petal data download NAME`).

A data set lands in `cache_root()/datasets/` only when it is complete: the archive is
streamed to a hidden temporary file beside its destination, its SHA-256 checked,
extracted into a hidden temporary folder and renamed into place. A failed or
interrupted download leaves no data-set folder and no temporary files behind.

Names:

- `tf_flowers`: TensorFlow's public flower_photos archive (3670 photos, 5 classes).
  Set `PETAL_TF_FLOWERS_URL` to fetch the same file from elsewhere, e.g. a mirror or
  `file:///path/to/flower_photos.tgz` downloaded by hand; its SHA-256 is still checked.
- `kaggle:OWNER/NAME` (e.g. `kaggle:alxmamaev/flowers-recognition`): a Kaggle data set,
  through the optional `kaggle` package and the user's Kaggle credentials.
"""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import os
import re
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tqdm.auto import tqdm

from petal.errors import PetalError
from petal.paths import cache_root, refuse_cache_inside

if TYPE_CHECKING:
    from kaggle.api.kaggle_api_extended import KaggleApi

KAGGLE_PREFIX = "kaggle:"
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_CHUNK = 1 << 20
_TIMEOUT_S = 60


@dataclass(frozen=True)
class RemoteArchive:
    """A .tar(.gz) archive at `url` whose folder `subdir` holds one sub-folder per class."""

    name: str  # also the folder name in the cache
    url: str
    sha256: str
    subdir: str  # "" when the class folders sit at the top of the archive


ARCHIVES: dict[str, RemoteArchive] = {
    # 228813984 bytes; checksum from tensorflow/datasets url_checksums.
    "tf_flowers": RemoteArchive(
        name="tf_flowers",
        url="https://storage.googleapis.com/download.tensorflow.org/example_images/flower_photos.tgz",
        sha256="4c54ace7911aaffe13a365c34f650e71dd5bf1be0a58b464e5a7183e3e595d9c",
        subdir="flower_photos",
    ),
}


def dataset_names() -> list[str]:
    """The names `download_dataset` accepts."""
    return [*ARCHIVES, f"{KAGGLE_PREFIX}OWNER/NAME"]


def is_dataset_name(name: str) -> bool:
    """True when `name` names a downloadable data set rather than a folder."""
    return name in ARCHIVES or name.startswith(KAGGLE_PREFIX)


def download_dataset(name: str, cache_dir: str | os.PathLike | None = None,
                     progress: bool = True) -> Path:
    """Fetch data set `name` once into the cache; return its folder of class folders."""
    if name.startswith(KAGGLE_PREFIX):
        return fetch_kaggle(name.removeprefix(KAGGLE_PREFIX), _datasets_dir(cache_dir) / "kaggle",
                            progress)
    if name in ARCHIVES:
        return fetch_archive(_with_env_url(ARCHIVES[name]), _datasets_dir(cache_dir), progress)
    raise PetalError(
        f"unknown data set {name!r}: known names are {', '.join(dataset_names())} "
        f"(e.g. {KAGGLE_PREFIX}alxmamaev/flowers-recognition)"
    )


def _datasets_dir(cache_dir: str | os.PathLike | None) -> Path:
    folder = cache_root(cache_dir) / "datasets"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PetalError(
            f"cannot create the cache folder {folder} ({exc}): give a writable folder "
            "with --cache-dir or PETAL_CACHE"
        ) from exc
    return folder


def _url_env_var(archive: RemoteArchive) -> str:
    return f"PETAL_{archive.name.upper()}_URL"


def _with_env_url(archive: RemoteArchive) -> RemoteArchive:
    """`archive`, fetched from $PETAL_<NAME>_URL when that is set."""
    url = os.environ.get(_url_env_var(archive))
    return dataclasses.replace(archive, url=url) if url else archive


def _move_into_place(source: Path, dest: Path) -> Path:
    """Rename `source` to `dest` (same file system, so atomic) and return `dest`."""
    try:
        source.rename(dest)
    except OSError:
        if not dest.is_dir():
            raise
        # Another process finished the same download first; its copy is as good.
    return dest


# --- archives over HTTP(S) --------------------------------------------------------------


def fetch_archive(archive: RemoteArchive, dest_root: Path, progress: bool = True) -> Path:
    """Download, verify and extract `archive` into `dest_root/archive.name` unless there."""
    dest = dest_root / archive.name
    if dest.is_dir():
        return dest
    dest_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{archive.name}.", dir=dest_root) as work:
        tar_path, files = Path(work) / "archive", Path(work) / "files"
        actual = _download(archive, tar_path, progress)
        if actual != archive.sha256:
            raise PetalError(
                f"checksum mismatch for {archive.url}: expected SHA-256 {archive.sha256}, "
                f"got {actual}. The download is corrupt or the file changed; run the command "
                f"again, and if it persists {_manual_hint(archive)}"
            )
        _extract(archive, tar_path, files, progress)
        source = files / archive.subdir
        if not source.is_dir():
            raise PetalError(
                f"{archive.url} has no folder {archive.subdir!r}: it is not the expected archive"
            )
        return _move_into_place(source, dest)


def _manual_hint(archive: RemoteArchive) -> str:
    filename = archive.url.rsplit("/", 1)[-1]
    return (
        f"get it by hand: download {archive.url} on a machine with internet access, copy it "
        f"here and run again with {_url_env_var(archive)}=file:///path/to/{filename}; or "
        f"extract it yourself and use its {archive.subdir or 'top'} folder as the data folder"
    )


def _download(archive: RemoteArchive, target: Path, progress: bool) -> str:
    """Stream `archive.url` into `target`; return the SHA-256 of the bytes received."""
    digest, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(archive.url, timeout=_TIMEOUT_S) as response, \
                open(target, "wb") as out:
            size = int(response.headers.get("Content-Length") or 0) or None
            with tqdm(total=size, desc=f"Downloading {archive.name}", unit="B",
                      unit_scale=True, unit_divisor=1024, disable=not progress,
                      leave=False) as bar:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    digest.update(chunk)
                    bar.update(len(chunk))
                    received += len(chunk)
    except urllib.error.HTTPError as exc:
        raise PetalError(
            f"{archive.url} answered HTTP {exc.code} ({exc.reason}): the address may be wrong "
            f"or gone; check {_url_env_var(archive)} if you set it, or {_manual_hint(archive)}"
        ) from exc
    except urllib.error.URLError as exc:
        if archive.url.startswith("file:"):
            raise PetalError(f"cannot read {archive.url} ({exc.reason}): check the path in "
                             f"{_url_env_var(archive)}") from exc
        raise PetalError(
            f"could not reach {archive.url} ({exc.reason}): this machine seems offline. "
            f"Connect it and run again, or {_manual_hint(archive)}"
        ) from exc
    except (OSError, http.client.HTTPException) as exc:
        raise PetalError(
            f"download of {archive.url} failed ({exc}): check the connection and free disk "
            "space, then run again"
        ) from exc
    if size and received != size:
        raise PetalError(f"download of {archive.url} stopped after {received} of {size} bytes: "
                         "check the connection and run again")
    return digest.hexdigest()


def _extract(archive: RemoteArchive, tar_path: Path, dest: Path, progress: bool) -> None:
    """Extract `tar_path` into `dest`, refusing members that would land outside it."""
    if not hasattr(tarfile, "data_filter"):
        raise PetalError("safe archive extraction needs Python 3.11.4 or newer: upgrade Python")
    try:
        with tarfile.open(tar_path) as tar:
            members = tqdm(tar.getmembers(), desc=f"Extracting {archive.name}", unit="file",
                           disable=not progress, leave=False)
            tar.extractall(dest, members=members, filter="data")
    except tarfile.FilterError as exc:
        raise PetalError(
            f"refused to extract {archive.url}: member {exc.tarinfo.name!r} is unsafe ({exc})"
        ) from exc
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise PetalError(f"could not extract {archive.url} ({exc}): run the command again") from exc


# --- Kaggle -----------------------------------------------------------------------------

_KAGGLE_SETUP = (
    "To download from Kaggle, petal needs your Kaggle API credentials:\n"
    "  1. sign in at https://www.kaggle.com, open Settings (Account) -> API, create a token;\n"
    "     the legacy API key comes as a file kaggle.json\n"
    "  2. mkdir -p ~/.kaggle && mv ~/Downloads/kaggle.json ~/.kaggle/\n"
    "     chmod 600 ~/.kaggle/kaggle.json\n"
    "     or set the environment variables KAGGLE_USERNAME and KAGGLE_KEY (from kaggle.json);\n"
    "     a newer API token goes in KAGGLE_API_TOKEN or the file ~/.kaggle/access_token\n"
    "  3. pip install kaggle   (if it is not installed yet)\n"
    "Or download the data set from its Kaggle page yourself, unzip it and use the folder "
    "that holds one sub-folder per class."
)


def _kaggle_credentials_found() -> bool:
    """Whether any credential source that kaggle 2.x reads is present."""
    env = os.environ
    if env.get("KAGGLE_API_TOKEN") or (env.get("KAGGLE_USERNAME") and env.get("KAGGLE_KEY")):
        return True
    home_dir = Path.home() / ".kaggle"
    config_dir = Path(env["KAGGLE_CONFIG_DIR"]) if env.get("KAGGLE_CONFIG_DIR") else (
        home_dir if home_dir.exists()
        else Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "kaggle"
    )
    files = [config_dir / "kaggle.json", home_dir / "access_token", home_dir / "access_token.txt",
             home_dir / "credentials.json"]  # credentials.json: `kaggle auth login` (OAuth)
    return any(path.is_file() for path in files)


def _kaggle_api() -> KaggleApi:
    """An authenticated `kaggle` API client, or PetalError saying how to get one."""
    # Checked before importing: importing kaggle without credentials prints its own help
    # and creates config folders.
    if not _kaggle_credentials_found():
        raise PetalError(f"no Kaggle credentials found.\n{_KAGGLE_SETUP}")
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as exc:
        missing = exc.name or "kaggle"
        if missing.split(".")[0] == "kaggle":
            raise PetalError(f"the kaggle package is not installed: pip install kaggle\n"
                             f"{_KAGGLE_SETUP}") from exc
        # e.g. kaggle 2.2.5 imports `six` without declaring it as a dependency
        raise PetalError(f"the kaggle package cannot be imported ({exc}): pip install {missing}") \
            from exc
    api = KaggleApi()
    try:
        api.authenticate()
    except SystemExit as exc:  # kaggle exits when no credential works
        raise PetalError(f"Kaggle rejected the credentials found.\n{_KAGGLE_SETUP}") from exc
    return api


def fetch_kaggle(ref: str, dest_root: Path, progress: bool = True) -> Path:
    """Download Kaggle data set `ref` ("OWNER/NAME") into `dest_root/OWNER__NAME` unless there."""
    match = re.fullmatch(r"([\w-]+)/([\w-]+)", ref)
    if not match:
        raise PetalError(f"bad Kaggle data set {ref!r}: write it as {KAGGLE_PREFIX}OWNER/NAME, "
                         f"e.g. {KAGGLE_PREFIX}alxmamaev/flowers-recognition")
    folder_name = "__".join(match.groups())
    dest = dest_root / folder_name
    if dest.is_dir():
        return dest
    api = _kaggle_api()
    dest_root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{folder_name}.", dir=dest_root) as work:
        unpacked = Path(work) / "files"
        unpacked.mkdir()
        try:
            api.dataset_download_files(ref, path=str(unpacked), quiet=not progress, unzip=True)
        except Exception as exc:  # the client raises requests, HTTP and value errors alike
            raise PetalError(
                f"Kaggle download of {ref} failed ({exc}): check the name, that you accepted "
                "the data set's rules on kaggle.com, and the connection"
            ) from exc
        root = find_class_root(unpacked)
        if not any(_holds_images(folder) for folder in _subfolders(root)):
            raise PetalError(
                f"Kaggle data set {ref} has no folder of class folders of images: download it "
                "by hand and point petal at the folder holding one sub-folder per class"
            )
        return _move_into_place(root, dest)


def _subfolders(path: Path) -> list[Path]:
    """Visible sub-folders, skipping hidden ones and macOS zip debris (`__MACOSX`)."""
    return sorted(p for p in path.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name != "__MACOSX")


def _holds_images(folder: Path) -> bool:
    return any(p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() for p in folder.iterdir())


def find_class_root(path: Path) -> Path:
    """The folder holding the class folders: descend through lone wrapper folders.

    E.g. an archive unpacked as `path/flowers/daisy/*.jpg` gives `path/flowers`. Stops at
    a folder with several sub-folders, or whose lone sub-folder holds images (one class).
    """
    while len(subfolders := _subfolders(path)) == 1 and not _holds_images(subfolders[0]):
        path = subfolders[0]
    return path


def resolve_data(arg: str | os.PathLike, cache_dir: str | os.PathLike | None = None,
                 progress: bool = True, labelled: bool = False) -> tuple[Path, str]:
    """A folder path, or the name of a public data set (downloaded once into the cache).

    A local folder is checked here (it exists and holds class folders, or with `labelled`,
    labels from a file, is a folder), so a command says what is wrong before it prints what
    it is about to do.
    """
    from petal.data.scan import list_class_folders

    arg = os.fspath(arg)
    if is_dataset_name(arg):
        path = download_dataset(arg, cache_dir=cache_dir, progress=progress)
        return path, f"{arg} (public data set, downloaded to {path})"
    if not labelled:
        list_class_folders(Path(arg))
    elif not Path(arg).is_dir():
        raise PetalError(f"data folder {arg} does not exist or is not a folder: check the path")
    refuse_cache_inside(arg, cache_dir)
    return Path(arg), f"{arg} (local folder)"
