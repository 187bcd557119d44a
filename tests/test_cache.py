"""Decoded cache: where it lives, what it stores, and that only new or changed files decode."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image
from petal.cli import main
from petal.data.decoded_cache import DecodedCache, decode_to_square
from petal.data.scan import scan_folder
from petal.data.store import RowStore, RowView
from petal.errors import PetalWarning
from petal.paths import cache_root


def _files(root: Path) -> list[tuple[Path, str]]:
    return [(root / r.path, r.sha256) for r in scan_folder(root, progress=False).images]


def _rows(cache: DecodedCache) -> float:
    return cache.store.rows_path.stat().st_size / cache.store.row_bytes


def _tree(root: Path) -> set[Path]:
    return set(root.rglob("*"))


def test_cache_root_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PETAL_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root() == tmp_path / "home" / ".cache" / "petal"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_root() == tmp_path / "xdg" / "petal"
    monkeypatch.setenv("PETAL_CACHE", str(tmp_path / "env"))
    assert cache_root() == tmp_path / "env"
    assert cache_root(tmp_path / "flag") == tmp_path / "flag"


def test_stores_what_predict_sees(image_folder: Path, tmp_path: Path) -> None:
    files = _files(image_folder)
    before = _tree(image_folder)
    pixels = DecodedCache(tmp_path / "cache", 24).ensure(files, progress=False)
    assert pixels.shape == (12, 24, 24, 3) and pixels.dtype == np.uint8
    for (path, _), stored in zip(files, pixels):
        assert np.array_equal(stored, decode_to_square(path, 24))
    assert _tree(image_folder) == before  # nothing written into the data set


def test_only_new_or_changed_files_decode(image_folder: Path, tmp_path: Path) -> None:
    cache = DecodedCache(tmp_path / "cache", 16)
    cache.ensure(_files(image_folder), progress=False)
    rows = _rows(cache)
    assert rows == 12

    cache.ensure(_files(image_folder), progress=False)  # warm: nothing decoded
    assert _rows(cache) == 12

    (image_folder / "cat" / "cat0.jpg").rename(image_folder / "cat" / "renamed.jpg")
    write_image(image_folder / "dog" / "dog0.jpg", seed=4242)  # changed content
    write_image(image_folder / "fox" / "new.jpg", seed=4343)  # added
    files = _files(image_folder)
    pixels = cache.ensure(files, progress=False)
    assert _rows(cache) == 14
    for (path, _), stored in zip(files, pixels):
        assert np.array_equal(stored, decode_to_square(path, 16))


def test_partial_row_from_a_killed_build_is_dropped(image_folder: Path, tmp_path: Path) -> None:
    cache = DecodedCache(tmp_path / "cache", 16)
    files = _files(image_folder)
    cache.ensure(files[:6], progress=False)
    with open(cache.store.rows_path, "ab") as out:
        out.write(b"\x07" * 100)  # half a row, as if killed mid-write
    pixels = cache.ensure(files, progress=False)
    assert _rows(cache) == 12
    assert np.array_equal(pixels[7], decode_to_square(files[7][0], 16))


def test_cache_info_and_clear(image_folder: Path, tmp_path: Path,
                              capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "cache"
    DecodedCache(root, 16).ensure(_files(image_folder), progress=False)
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    assert "decoded images at 16px: 12 images" in capsys.readouterr().out
    assert main(["cache", "clear", "--cache-dir", str(root)]) == 0
    assert "freed" in capsys.readouterr().out
    assert list(root.iterdir()) == []
    assert main(["cache", "info", "--cache-dir", str(root)]) == 0
    assert "decoded" not in capsys.readouterr().out


def test_flowers_slice(flowers: Path, tmp_path: Path) -> None:
    """A slice of the real data, end to end: scan, decode, read back."""
    files = [(flowers / r.path, r.sha256) for r in scan_folder(flowers, progress=False).images]
    sample = files[::200]
    pixels = DecodedCache(tmp_path / "cache", 64).ensure(sample, progress=False)
    assert pixels.shape == (len(sample), 64, 64, 3)
    assert 20 < pixels.mean() < 235 and pixels.std() > 10  # real photos, not blank rows


def test_cache_build_command(image_folder: Path, tmp_path: Path,
                             capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "cache"
    assert main(["cache", "build", str(image_folder), "--size", "20", "--cache-dir",
                 str(root)]) == 0
    assert "12 images cached at 20px" in capsys.readouterr().out
    pixels = DecodedCache(root, 20).ensure(_files(image_folder), progress=False)
    assert pixels.shape == (12, 20, 20, 3)
    assert main(["cache", "build", str(image_folder), "--model", "resnet9", "--cache-dir",
                 str(root)]) == 0
    assert "cached at 73px" in capsys.readouterr().out


# --- damage: every row read is checked, and what fails is made again ---------------------

def _swap_first_two(index: dict) -> None:
    first, second = list(index["rows"])[:2]
    index["rows"][first], index["rows"][second] = index["rows"][second], index["rows"][first]


def _damage(store: RowStore, kind: str) -> None:
    rows, index_path = store.rows_path, store.index_path
    size = rows.stat().st_size
    if kind == "rows zeroed":
        rows.write_bytes(bytes(size))
    elif kind == "rows random":
        rows.write_bytes(np.random.default_rng(0).bytes(size))
    elif kind == "rows truncated":
        os.truncate(rows, size // 2)
    elif kind == "index not JSON":
        index_path.write_text("{not json")
    elif kind == "index of an older petal":
        index_path.write_text(json.dumps({key: row for key, (row, _) in
                                          store.read_index().items()}))
    else:
        index = json.loads(index_path.read_text())
        if kind == "rows swapped":
            _swap_first_two(index)
        else:
            key = next(iter(index["rows"]))
            index["rows"][key][0] = {"row -1": -1, "row out of range": 10**9}[kind]
        index_path.write_text(json.dumps(index))


@pytest.mark.parametrize("kind", ["rows zeroed", "rows random", "rows truncated",
                                  "index not JSON", "index of an older petal", "rows swapped",
                                  "row -1", "row out of range"])
def test_damaged_cache_is_noticed_and_made_again(image_folder: Path, tmp_path: Path,
                                                 kind: str) -> None:
    cache = DecodedCache(tmp_path / "cache", 16)
    files = _files(image_folder)
    cache.ensure(files, progress=False)
    _damage(cache.store, kind)
    with pytest.warns(PetalWarning, match="made again"):
        pixels = cache.ensure(files, progress=False)
    for (path, _), stored in zip(files, pixels):
        assert np.array_equal(stored, decode_to_square(path, 16))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: read again without a word
        cache.ensure(files, progress=False)


def test_training_on_a_damaged_cache_warns_and_trains_on_true_pixels(
        image_folder: Path, tmp_path: Path) -> None:
    petal = Path(sys.executable).with_name("petal")
    cache = tmp_path / "cache"

    def train(out: str) -> subprocess.CompletedProcess:
        return subprocess.run([petal, "train", "--data", str(image_folder), "--recipe",
                               "original-resnet9", "--set", "width=0.125", "--set", "input_size=32",
                               "--set", "batch_size=4", "--set", "epochs=2", "--no-progress",
                               "--cache-dir", str(cache), "--out", str(tmp_path / out)],
                              capture_output=True, text=True, timeout=300)

    assert train("clean").returncode == 0
    for rows in cache.glob("decoded/*/rows.bin"):
        rows.write_bytes(bytes(rows.stat().st_size))  # zeroed: chance accuracy if unnoticed
    damaged = train("damaged")
    assert damaged.returncode == 0 and "warning: " in damaged.stderr
    assert "made again" in damaged.stderr and "Traceback" not in damaged.stderr
    history = [(tmp_path / run / "history.csv").read_text().splitlines()
               for run in ("clean", "damaged")]
    columns = slice(0, 5)  # epoch, losses, accuracy, lr: not the times
    assert [row.split(",")[columns] for row in history[0]] == \
        [row.split(",")[columns] for row in history[1]]


def test_rows_out_of_file_order_are_read_when_used_not_copied(tmp_path: Path) -> None:
    """Asking for stored rows in another order than they were written gives a view that
    reads each row from the file when indexed, as a plain array of them would answer."""
    store = RowStore(tmp_path / "store", (2, 3), np.float32)
    keys = [f"k{i}" for i in range(6)]
    store.ensure(keys, lambda missing: (np.full((2, 3), int(k[1:]), np.float32)
                                        for k in missing))
    order = ["k4", "k1", "k5", "k0"]
    view = store.ensure(order, lambda missing: iter(()))
    expected = np.stack([np.full((2, 3), int(k[1:]), np.float32) for k in order])
    assert isinstance(view, RowView) and view.shape == expected.shape and len(view) == 4
    assert np.array_equal(np.asarray(view), expected)
    assert np.array_equal(view[2], expected[2]) and view[1, 0, 2] == expected[1, 0, 2]
    assert np.array_equal(np.asarray(view[1:3]), expected[1:3])
    assert np.array_equal(view[np.array([3, 0])], expected[[3, 0]])
    assert np.array_equal(np.stack(list(view)), expected)
    assert isinstance(view[0], np.memmap)  # read from the file, not from a copy
    contiguous = store.ensure(["k2", "k3", "k4"], lambda missing: iter(()))
    assert isinstance(contiguous, np.memmap) and np.array_equal(contiguous[:, 0, 0], [2, 3, 4])


@pytest.mark.parametrize("kind", ["rows zeroed", "rows random", "rows swapped"])
def test_repairs_rewrite_rows_in_place(image_folder: Path, tmp_path: Path, kind: str) -> None:
    """A damaged row is made again where it lay: repeated repairs do not grow the file (two
    repairs tripled the flowers cache before)."""
    cache = DecodedCache(tmp_path / "cache", 16)
    files = _files(image_folder)
    cache.ensure(files, progress=False)
    size = cache.store.rows_path.stat().st_size
    for _ in range(2):
        _damage(cache.store, kind)
        with pytest.warns(PetalWarning, match="made again"):
            pixels = cache.ensure(files, progress=False)
        assert cache.store.rows_path.stat().st_size == size
    for (path, _), stored in zip(files, pixels):
        assert np.array_equal(stored, decode_to_square(path, 16))


def test_processes_of_one_job_share_the_rows_out(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Under torchrun each process computes the rows whose key falls to it; a row nobody
    else wrote (the other process never came) is computed after the wait: none twice."""
    from petal.data import store as store_module

    keys = [f"{i:064x}" for i in range(20)]
    computed: list[str] = []

    def make_rows(missing: list[str]) -> Iterator[np.ndarray]:
        computed.extend(missing)
        return (np.full((2,), int(k, 16) % 251, np.uint8) for k in missing)

    monkeypatch.setattr(store_module, "SHARE_MIN_WAIT_S", 0.2)
    monkeypatch.setattr(store_module, "SHARE_POLL_S", 0.05)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    rows = RowStore(tmp_path / "rows", (2,)).ensure(keys, make_rows)
    mine = [k for k in keys if store_module.owner(k, 2) == 1]
    assert 0 < len(mine) < len(keys) and computed[:len(mine)] == mine  # its share first
    assert sorted(computed) == sorted(keys)  # then what the other never wrote; none twice
    assert [int(r[0]) for r in rows] == [int(k, 16) % 251 for k in keys]
    monkeypatch.setenv("PETAL_CACHE_PER_NODE", "1")  # shared among a node's processes
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "3")
    assert store_module.job_share() == (0, 3)
