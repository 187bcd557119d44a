"""Data-set downloads against a real local HTTP server; no internet, nothing in ~/.cache."""

from __future__ import annotations

import hashlib
import io
import socket
import sys
import tarfile
import threading
import types
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import pattern, write_image
from petal.data import download
from petal.data.download import RemoteArchive, download_dataset, fetch_archive, find_class_root
from petal.data.scan import scan_folder
from petal.errors import PetalError


def jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    pattern(seed).save(buffer, format="JPEG")
    return buffer.getvalue()


def make_tgz(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A .tgz of regular files (name -> content) and symlinks (name -> target)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tar.addfile(info)
    return buffer.getvalue()


FLOWERS_TGZ = make_tgz({
    "flower_photos/daisy/a.jpg": jpeg(1),
    "flower_photos/roses/b.jpg": jpeg(2),
    "flower_photos/LICENSE.txt": b"CC-BY\n",
})


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer:
    """Serves `files` (URL path -> bytes) on 127.0.0.1 and counts requests per path.

    Paths in `cut` announce their full length but send only half, then hang up.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cut: set[str] = set()
        self.hits: Counter[str] = Counter()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits[self.path] += 1
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[:len(body) // 2] if self.path in server.cut else body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


@pytest.fixture
def server() -> Iterator[FileServer]:
    files = FileServer()
    files.thread.start()
    yield files
    files.httpd.shutdown()
    files.httpd.server_close()
    files.thread.join()


@pytest.fixture
def cache(tmp_path: Path) -> Path:
    return tmp_path / "cache"


def use_archive(monkeypatch: pytest.MonkeyPatch, url: str, data: bytes = FLOWERS_TGZ) -> None:
    """Point the registry's tf_flowers at `url`, expecting the checksum of `data`."""
    monkeypatch.delenv("PETAL_TF_FLOWERS_URL", raising=False)
    monkeypatch.setitem(download.ARCHIVES, "tf_flowers",
                        RemoteArchive("tf_flowers", url, sha256(data), "flower_photos"))


def cache_files(cache: Path) -> list[Path]:
    return [p for p in cache.rglob("*") if not p.is_dir()]


def refused_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_download_gives_class_folders_as_named(server, cache, monkeypatch):
    server.files["/flower_photos.tgz"] = FLOWERS_TGZ
    use_archive(monkeypatch, server.url("/flower_photos.tgz"))
    root = download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    assert root == cache / "datasets" / "tf_flowers"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["daisy", "roses"]
    assert (root / "LICENSE.txt").is_file()
    index = scan_folder(root, workers=1, progress=False)
    assert index.classes == ["daisy", "roses"] and len(index.images) == 2
    assert [p.name for p in (cache / "datasets").iterdir()] == ["tf_flowers"]  # no temp left


def test_second_call_does_not_download(server, cache, monkeypatch):
    server.files["/f.tgz"] = FLOWERS_TGZ
    use_archive(monkeypatch, server.url("/f.tgz"))
    first = download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    second = download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    assert first == second and server.hits["/f.tgz"] == 1


@pytest.mark.parametrize("scheme", ["http", "file"])
def test_env_var_overrides_url(scheme, server, cache, tmp_path, monkeypatch):
    use_archive(monkeypatch, f"http://127.0.0.1:{refused_port()}/unused.tgz")
    if scheme == "http":
        server.files["/mirror.tgz"] = FLOWERS_TGZ
        url = server.url("/mirror.tgz")
    else:
        local = tmp_path / "flower_photos.tgz"
        local.write_bytes(FLOWERS_TGZ)
        url = local.as_uri()
    monkeypatch.setenv("PETAL_TF_FLOWERS_URL", url)
    root = download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == ["daisy", "roses"]


def test_checksum_mismatch_leaves_nothing(server, cache, monkeypatch):
    corrupt = bytearray(FLOWERS_TGZ)
    corrupt[len(corrupt) // 2] ^= 0xFF
    server.files["/f.tgz"] = bytes(corrupt)
    use_archive(monkeypatch, server.url("/f.tgz"))
    with pytest.raises(PetalError, match="checksum mismatch") as err:
        download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    assert sha256(FLOWERS_TGZ) in str(err.value) and sha256(bytes(corrupt)) in str(err.value)
    assert list((cache / "datasets").iterdir()) == [] and cache_files(cache) == []


def test_interrupted_download_leaves_nothing(server, cache, monkeypatch):
    server.files["/f.tgz"] = FLOWERS_TGZ
    server.cut.add("/f.tgz")
    use_archive(monkeypatch, server.url("/f.tgz"))
    with pytest.raises(PetalError, match="stopped after"):
        download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    assert list((cache / "datasets").iterdir()) == [] and cache_files(cache) == []


@pytest.mark.parametrize("failure, message", [
    ("404", "HTTP 404"),
    ("refused", "seems offline"),
    ("no file", "check the path in PETAL_TF_FLOWERS_URL"),
])
def test_unreachable_archive_raises(failure, message, server, cache, tmp_path, monkeypatch):
    url = {"404": server.url("/missing.tgz"),
           "refused": f"http://127.0.0.1:{refused_port()}/f.tgz",
           "no file": (tmp_path / "absent.tgz").as_uri()}[failure]
    use_archive(monkeypatch, url)
    with pytest.raises(PetalError, match=message) as err:
        download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    if failure != "no file":  # says how to get the data by hand
        assert "PETAL_TF_FLOWERS_URL=file://" in str(err.value)
    assert list((cache / "datasets").iterdir()) == [] and cache_files(cache) == []


@pytest.mark.parametrize("members, links", [
    ({"flower_photos/daisy/a.jpg": b"x", "../evil.txt": b"evil"}, {}),
    ({"flower_photos/daisy/a.jpg": b"x", "flower_photos/../../evil.txt": b"evil"}, {}),
    ({"flower_photos/daisy/a.jpg": b"x"}, {"flower_photos/roses": "/etc"}),
])
def test_unsafe_member_is_refused(members, links, server, tmp_path):
    data = make_tgz(members, links)
    server.files["/evil.tgz"] = data
    archive = RemoteArchive("evil", server.url("/evil.tgz"), sha256(data), "flower_photos")
    dest_root = tmp_path / "cache" / "datasets"
    with pytest.raises(PetalError, match="unsafe"):
        fetch_archive(archive, dest_root, progress=False)
    assert list(tmp_path.rglob("evil.txt")) == []
    assert list(dest_root.iterdir()) == []


def test_archive_without_expected_folder(server, cache, monkeypatch):
    data = make_tgz({"other/daisy/a.jpg": jpeg(1)})
    server.files["/f.tgz"] = data
    use_archive(monkeypatch, server.url("/f.tgz"), data)
    with pytest.raises(PetalError, match="no folder 'flower_photos'"):
        download_dataset("tf_flowers", cache_dir=str(cache), progress=False)
    assert list((cache / "datasets").iterdir()) == []


def test_unknown_name_lists_known_names(cache):
    with pytest.raises(PetalError, match="tf_flowers.*kaggle:OWNER/NAME"):
        download_dataset("mnist", cache_dir=str(cache))
    assert not cache.exists()


# --- Kaggle ----------------------------------------------------------------------------


@pytest.fixture
def no_kaggle_credentials(tmp_path, monkeypatch) -> Path:
    """An empty HOME and no KAGGLE_* variables; returns that HOME."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    for name in ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(name, raising=False)
    return home


class FakeKaggleApi:
    """Stands in for kaggle's KaggleApi: 'downloads' a zip as unpacked class folders."""

    calls: list[str] = []
    reject = False

    def authenticate(self) -> None:
        if self.reject:
            raise SystemExit(1)

    def dataset_download_files(self, ref: str, path: str, quiet: bool, unzip: bool) -> None:
        assert unzip
        self.calls.append(ref)
        write_image(Path(path) / "flowers" / "daisy" / "a.jpg", seed=1)
        write_image(Path(path) / "flowers" / "roses" / "b.jpg", seed=2)


@pytest.fixture
def fake_kaggle(no_kaggle_credentials, monkeypatch) -> type[FakeKaggleApi]:
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    module = types.ModuleType("kaggle.api.kaggle_api_extended")
    module.KaggleApi = FakeKaggleApi
    for name in ("kaggle", "kaggle.api"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", module)
    monkeypatch.setattr(FakeKaggleApi, "calls", [])
    return FakeKaggleApi


def test_kaggle_without_credentials_says_how_to_set_them_up(no_kaggle_credentials, cache):
    with pytest.raises(PetalError) as err:
        download_dataset("kaggle:alxmamaev/flowers-recognition", cache_dir=str(cache))
    message = str(err.value)
    for needed in ("kaggle.com", "~/.kaggle/kaggle.json", "chmod 600", "KAGGLE_USERNAME",
                   "KAGGLE_KEY", "KAGGLE_API_TOKEN", "pip install kaggle"):
        assert needed in message
    # kaggle was not imported: importing it creates its config folder
    assert not (no_kaggle_credentials / ".kaggle").exists()
    assert not (no_kaggle_credentials / ".config").exists()


@pytest.mark.parametrize("where", ["kaggle.json", "access_token", "env_token"])
def test_kaggle_credentials_are_found(where, no_kaggle_credentials, monkeypatch):
    if where == "env_token":
        monkeypatch.setenv("KAGGLE_API_TOKEN", "token")
    else:
        (no_kaggle_credentials / ".kaggle").mkdir()
        (no_kaggle_credentials / ".kaggle" / where).write_text("{}")
    assert download._kaggle_credentials_found()


def test_kaggle_package_missing(no_kaggle_credentials, cache, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "token")
    for name in ("kaggle", "kaggle.api", "kaggle.api.kaggle_api_extended"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(PetalError, match="pip install kaggle"):
        download_dataset("kaggle:alxmamaev/flowers-recognition", cache_dir=str(cache))


def test_kaggle_package_with_missing_dependency(no_kaggle_credentials, cache, tmp_path,
                                                monkeypatch):
    """kaggle 2.2.5 imports `six` without depending on it: name what to install."""
    fake = tmp_path / "site"
    (fake / "kaggle" / "api").mkdir(parents=True)
    (fake / "kaggle" / "__init__.py").write_text("")
    (fake / "kaggle" / "api" / "__init__.py").write_text("")
    (fake / "kaggle" / "api" / "kaggle_api_extended.py").write_text("import petal_absent_dep\n")
    monkeypatch.syspath_prepend(str(fake))
    for name in ("kaggle", "kaggle.api", "kaggle.api.kaggle_api_extended"):
        monkeypatch.setitem(sys.modules, name, None)
        monkeypatch.delitem(sys.modules, name)  # undone in reverse: the entry ends as before
    monkeypatch.setenv("KAGGLE_API_TOKEN", "token")
    with pytest.raises(PetalError, match="pip install petal_absent_dep"):
        download_dataset("kaggle:alxmamaev/flowers-recognition", cache_dir=str(cache))


def test_kaggle_download_moves_class_root_into_place(fake_kaggle, cache):
    root = download_dataset("kaggle:alxmamaev/flowers-recognition", cache_dir=str(cache),
                            progress=False)
    assert root == cache / "datasets" / "kaggle" / "alxmamaev__flowers-recognition"
    assert sorted(p.name for p in root.iterdir()) == ["daisy", "roses"]
    again = download_dataset("kaggle:alxmamaev/flowers-recognition", cache_dir=str(cache))
    assert again == root and fake_kaggle.calls == ["alxmamaev/flowers-recognition"]
    assert [p.name for p in root.parent.iterdir()] == [root.name]


def test_kaggle_rejected_credentials(fake_kaggle, cache, monkeypatch):
    monkeypatch.setattr(fake_kaggle, "reject", True)
    with pytest.raises(PetalError, match="rejected"):
        download_dataset("kaggle:alxmamaev/flowers-recognition", cache_dir=str(cache))


@pytest.mark.parametrize("ref", ["kaggle:flowers", "kaggle:a/b/c", "kaggle:../x"])
def test_bad_kaggle_name(ref, cache):
    with pytest.raises(PetalError, match="OWNER/NAME"):
        download_dataset(ref, cache_dir=str(cache))


@pytest.mark.parametrize("files, expected", [
    (["flowers/daisy/a.jpg", "flowers/roses/b.jpg"], "flowers"),
    (["x/y/daisy/a.jpg", "x/y/roses/b.JPG"], "x/y"),
    (["daisy/a.jpg", "roses/b.jpg"], "."),
    (["only/a.jpg"], "."),  # one class folder: not descended into
    (["__MACOSX/flowers/._a.jpg", ".hidden/z.png", "flowers/daisy/a.jpg", "flowers/roses/b.png"],
     "flowers"),
])
def test_find_class_root(files, expected, tmp_path):
    for name in files:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    assert find_class_root(tmp_path) == tmp_path / expected
