"""`petal data check`: every kind of unusable file, duplicates, verdicts and exit codes."""

from __future__ import annotations

import io
import json
import os
import shutil
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import pattern, write_image
from petal.cli import main
from petal.data.check import check_folder


def _check_json(root: Path, capsys: pytest.CaptureFixture) -> tuple[int, dict]:
    code = main(["data", "check", str(root), "--json"])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def messy_folder(image_folder: Path) -> Path:
    """The tidy folder plus one file of every problem kind and every duplicate kind."""
    cat, dog = image_folder / "cat", image_folder / "dog"
    (cat / "train.py").write_text("import os\n")
    (cat / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1" + bytes(64))
    (cat / "notes.jpg").write_text("this is text renamed .jpg\n")
    (cat / "empty.jpg").write_bytes(b"")
    truncated = write_image(cat / "truncated.jpg", seed=7, size=(200, 160))
    truncated.write_bytes(truncated.read_bytes()[:-300])
    Image.new("F", (8, 8)).save(dog / "float.tif")
    bomb = io.BytesIO()
    Image.new("1", (8, 8)).save(bomb, "PNG")
    (dog / "bomb.png").write_bytes(_claim_size(bomb.getvalue(), 20_000, 20_000))
    shutil.copy(cat / "cat0.jpg", cat / "cat0-copy.jpg")  # exact duplicate, same class
    shutil.copy(cat / "cat1.jpg", dog / "cat1.jpg")  # identical file in two classes
    pattern(2).save(dog / "cat2-recompressed.jpg", quality=40)  # near-duplicate of cat/cat2.jpg
    (image_folder / "README.txt").write_text("top-level files are not classes\n")
    return image_folder


def _claim_size(png: bytes, width: int, height: int) -> bytes:
    """Rewrite a PNG's header to claim width x height: the shape of a decompression bomb."""
    data = bytearray(png)
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def test_reports_every_problem_kind(messy_folder: Path, capsys: pytest.CaptureFixture) -> None:
    code, report = _check_json(messy_folder, capsys)
    assert code == 0 and report["usable"]
    reasons = {r["path"]: r["reason"] for r in report["rejected"]}
    assert reasons == {
        "cat/.DS_Store": "not_image",
        "cat/train.py": "not_image",
        "cat/notes.jpg": "not_image",
        "cat/empty.jpg": "empty",
        "cat/truncated.jpg": "truncated",
        "dog/float.tif": "unsupported_mode",
        "dog/bomb.png": "too_many_pixels",
    }
    assert report["classes"] == ["cat", "dog", "fox"]
    assert report["counts"] == {"cat": 5, "dog": 6, "fox": 4}
    assert report["exact_duplicates"] == [["cat/cat0-copy.jpg", "cat/cat0.jpg"]]
    assert report["label_conflicts"] == [["cat/cat1.jpg", "dog/cat1.jpg"]]
    near = {(p["a"], p["b"]): p["cross_label"] for p in report["near_duplicates"]}
    assert near == {("cat/cat2.jpg", "dog/cat2-recompressed.jpg"): True}
    assert report["image_size"]["width"]["max"] == 48


def test_human_report_names_problems(messy_folder: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", str(messy_folder)]) == 0
    out = capsys.readouterr().out
    for text in ["cat/train.py: not_image", "cat/truncated.jpg: truncated", "Label conflicts",
                 "cat/cat1.jpg = dog/cat1.jpg", "Near-duplicates", "Usable: yes"]:
        assert text in out


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: root.mkdir(), "no class folders"),
        (lambda root: write_image(root / "only" / "a.jpg"), "only one class"),
        (lambda root: (write_image(root / "a" / "a.jpg"), (root / "b").mkdir(),
                       (root / "b" / "x.txt").write_text("x")), "no usable image: b"),
    ],
    ids=["missing", "no-classes", "one-class", "empty-class"],
)
def test_unusable_sets_exit_non_zero(tmp_path: Path, setup, message: str,
                                     capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "data"
    setup(root)
    assert main(["data", "check", str(root)]) == 1
    assert message in capsys.readouterr().err


def test_console_script_and_help(image_folder: Path) -> None:
    petal = Path(sys.executable).with_name("petal")
    ok = subprocess.run([petal, "data", "check", str(image_folder)], capture_output=True, text=True)
    assert ok.returncode == 0 and "12 readable images in 3 classes" in ok.stdout
    bad = subprocess.run([petal, "data", "check", str(image_folder / "nope")],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "does not exist" in bad.stderr
    for verb in (["data", "check"], ["data", "split"], ["cache", "info"]):
        shown = subprocess.run([petal, *verb, "--help"], capture_output=True, text=True)
        assert shown.returncode == 0 and "usage:" in shown.stdout
    predict_help = subprocess.run([petal, "predict", "--help"], capture_output=True, text=True)
    assert ".onnx" in predict_help.stdout and "--progress" in predict_help.stdout


def test_special_files_are_listed_without_blocking(image_folder: Path) -> None:
    """A named pipe is never opened for a blocking read; a symlink loop is one skipped file."""
    cat = image_folder / "cat"
    os.mkfifo(cat / "pipe.jpg")
    (cat / "loop1.jpg").symlink_to(cat / "loop2.jpg")
    (cat / "loop2.jpg").symlink_to(cat / "loop1.jpg")
    petal = Path(sys.executable).with_name("petal")
    done = subprocess.run([petal, "data", "check", str(image_folder), "--json"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    reasons = {r["path"]: r["reason"] for r in json.loads(done.stdout)["rejected"]}
    assert reasons == {"cat/pipe.jpg": "not_a_file", "cat/loop1.jpg": "unreadable",
                       "cat/loop2.jpg": "unreadable"}


def test_near_duplicates_and_distinct_images_are_told_apart(tmp_path: Path) -> None:
    root = tmp_path / "data"
    base = pattern(11, size=(120, 90))
    (root / "a").mkdir(parents=True)
    base.save(root / "a" / "x.png")
    brighter = np.clip(np.asarray(base, dtype=np.int16) + 12, 0, 255).astype(np.uint8)
    (root / "b").mkdir()
    Image.fromarray(brighter).resize((100, 75)).save(root / "b" / "x-small-bright.jpg")
    for i in range(6):
        write_image(root / "b" / f"other{i}.png", seed=500 + i, size=(120, 90))
    report = check_folder(root, progress=False)
    pairs = [(p.a, p.b) for p in report.duplicates.near_pairs]
    assert pairs == [("a/x.png", "b/x-small-bright.jpg")]


def test_flowers_data_set(flowers: Path, capsys: pytest.CaptureFixture) -> None:
    """The reference set: 4323 readable images, 4 rose/tulip conflicts, 2 sunflower pairs."""
    code, report = _check_json(flowers, capsys)
    assert code == 0
    assert report["n_images"] == 4323 and len(report["classes"]) == 5
    assert report["rejected"] == []
    conflicts = report["label_conflicts"]
    assert len(conflicts) == 4
    assert all(sorted(p.split("/")[0] for p in g) == ["rose", "tulip"] for g in conflicts)
    pairs = report["exact_duplicates"]
    assert len(pairs) == 2 and all(len(g) == 2 for g in pairs)
    assert all(p.startswith("sunflower/") for g in pairs for p in g)
