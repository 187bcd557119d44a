"""WebDataset shards: `petal data pack` writes them, `petal predict` streams them from a disk
or a local HTTP server, with the same limits on every photo and a damaged shard reported."""

from __future__ import annotations

import functools
import http.server
import io
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import petal
from conftest import write_image
from petal.data.image import MAX_FILE_BYTES
from petal.data.shards import samples
from petal.errors import PetalError


@pytest.fixture
def packed(image_folder: Path, tmp_path: Path) -> Path:
    (image_folder / "cat" / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    (image_folder / "dog" / "copy.jpg").write_bytes((image_folder / "dog" / "dog0.jpg")
                                                    .read_bytes())
    done = petal.pack(image_folder, out=tmp_path / "shards", shard_mb=0.004, progress=False)
    assert done.photos == 12 and done.copies == 1 and len(done.shards) > 1
    return tmp_path / "shards"


def test_pack_writes_every_usable_photo_once_with_its_label(packed: Path,
                                                            image_folder: Path) -> None:
    found = [s for shard in sorted(packed.glob("*.tar")) for s in samples(str(shard))]
    assert len(found) == 12 and all(s.data is not None and not s.why for s in found)
    assert sorted(s.label for s in found) == ["cat"] * 4 + ["dog"] * 4 + ["fox"] * 4
    with tarfile.open(sorted(packed.glob("*.tar"))[0]) as tar:
        names = tar.getnames()
    assert {n.split(".", 1)[1] for n in names} == {"jpg", "label", "path"}
    with pytest.raises(PetalError, match="not a new or empty folder"):
        petal.pack(image_folder, out=packed, progress=False)


def test_predict_from_shards_answers_as_from_the_folder(packed: Path, tiny_run: Path) -> None:
    shards = sorted(packed.glob("*.tar"))
    pattern = str(packed / f"shard-{{000000..{len(shards) - 1:06d}}}.tar")
    from_shards = petal.predict(tiny_run, pattern, progress=False)
    assert len(from_shards) == 12 and all("#" in p.source for p in from_shards)
    by_key = {p.source.rsplit("#", 1)[1]: p for p in from_shards}
    import hashlib

    from petal.data.scan import scan_folder

    index = scan_folder(packed.parent / "data", progress=False)
    for record in index.images:
        if record.path.endswith("copy.jpg"):
            continue
        alone = petal.load(tiny_run).predict(index.root / record.path)
        assert by_key[record.sha256].labels == alone.labels
        assert hashlib.sha256((index.root / record.path).read_bytes()).hexdigest() in by_key


@pytest.fixture
def served(packed: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(packed))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_predict_streams_shards_from_a_server_resumably(served: str, packed: Path,
                                                        tiny_run: Path, tmp_path: Path) -> None:
    count = len(list(packed.glob("*.tar")))
    url = f"{served}/shard-{{000000..{count - 1:06d}}}.tar"
    written = petal.predict(tiny_run, url, out=tmp_path / "p.csv", progress=False)
    assert written.photos == 12 and not written.skipped
    again = petal.predict(tiny_run, url, out=tmp_path / "p.csv", progress=False)
    assert (again.photos, again.resumed) == (12, 12)


def _tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_damaged_shards_and_members_are_reported_skips(tmp_path: Path, tiny_run: Path) -> None:
    photo = (write_image(tmp_path / "p.png", seed=3)).read_bytes()
    good = _tar(tmp_path / "good.tar", [("a.png", photo), ("a.label", b"cat"),
                                        ("b.txt", b"not a photo"), ("c.png", b"garbage"),
                                        ("d.png", photo), ("d.jpg", photo)])
    cut = tmp_path / "cut.tar"
    cut.write_bytes(_tar(tmp_path / "whole.tar", [("e.png", photo), ("f.png", photo * 50)])
                    .read_bytes()[:1500 + len(photo)])
    huge = tmp_path / "huge.tar"  # a member whose header claims more than any photo may be
    info = tarfile.TarInfo("g.png")
    info.size = MAX_FILE_BYTES + 1
    huge.write_bytes(info.tobuf() + photo)
    found = {s.name.rsplit("/", 1)[-1]: s for source in (good, cut, huge, tmp_path / "none.tar")
             for s in samples(str(source))}
    assert found["good.tar#a"].data == photo and found["good.tar#a"].label == "cat"
    assert "2 photo members" in found["good.tar#d"].why
    assert found["cut.tar#e"].data == photo  # the photos before the damage are kept
    assert "cannot be read" in found["cut.tar"].why
    assert "over 256 MiB" in found["huge.tar#g"].why
    assert "none.tar is not a regular file" in found["none.tar"].why
    written = petal.predict(tiny_run, [str(good), str(cut), str(huge)],
                            out=tmp_path / "p.csv", progress=False)
    assert written.photos == 2  # a and e
    skipped = sorted(line.split(": ", 1)[0].rsplit("/", 1)[-1] for line in written.skipped)
    # the member over the limit, then the shard itself: its claimed bytes are not there
    assert skipped == ["cut.tar", "good.tar#b", "good.tar#c", "good.tar#d", "huge.tar",
                       "huge.tar#g"]
    assert any("not an image file" in line for line in written.skipped)  # b: a text file


def test_a_stalled_server_ends_within_its_timeout(tmp_path: Path) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()  # accepts the connection, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/shard-000000.tar"
        started = time.monotonic()
        found = list(samples(url, timeout_s=1.0))
    assert time.monotonic() - started < 10
    assert len(found) == 1 and "cannot be read" in found[0].why


def test_shards_and_folders_are_not_mixed(tiny_run: Path, image_folder: Path) -> None:
    with pytest.raises(PetalError, match="not both"):
        petal.predict(tiny_run, [str(image_folder), "x.tar"], progress=False)
