"""Labels from a CSV file instead of class folders (`--labels FILE`): detection of its
columns, every row petal cannot use reported and never used, hostile files, and the same
split and training as the folders give."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import petal
from conftest import write_image
from petal.data.labels_file import MAX_BYTES, read_labels
from petal.data.scan import scan_folder
from petal.data.split import check_split_matches, make_split
from petal.errors import PetalError, PetalWarning


def flat(root: Path, counts: dict[str, int]) -> Path:
    """Photos in one flat folder, named p0.jpg, p1.jpg ... (seeded by their place)."""
    i = 0
    for label, count in counts.items():
        for _ in range(count):
            write_image(root / "photos" / f"p{i}.jpg", seed=17 * i + len(label))
            i += 1
    return root / "photos"


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_a_flat_folder_and_a_csv_give_classes(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 3, "dog": 3})
    labels = write(tmp_path / "train.csv", "path,label\n" + "".join(
        f"p{i}.jpg,{'cat' if i < 3 else 'dog'}\n" for i in range(6)))
    report = petal.check(photos, labels=labels, progress=False)
    assert report.usable and report.counts == {"cat": 3, "dog": 3}
    assert report.index.labels == {"file": str(labels.resolve()), "columns": ["path", "label"]}
    assert "labels from" in report.summary() and not report.index.rejected
    write_image(photos / "extra.jpg", seed=5)  # in the folder, in no row
    (photos / "notes.txt").write_text("a person's notes")
    report = petal.check(photos, labels=labels, progress=False)
    assert report.n_unlisted == 2 and "2 file(s) in the folder are in no row" in report.summary()


@pytest.mark.parametrize(("header", "rows", "columns"), [
    ("image_id,species", "p0.jpg,cat\np1.jpg,dog\n", None),  # names petal knows
    ("id_code,diagnosis", "p0,cat\np1,dog\n", None),  # Kaggle's ids without a suffix
    ("photo,what", "p0.jpg,cat\np1.jpg,dog\n", None),  # two columns: the photo, the label
    ("n,photo,what,notes", "1,p0.jpg,cat,x\n2,p1.jpg,dog,y\n", ("photo", "WHAT")),
])
def test_the_columns_are_detected_or_named(tmp_path: Path, header: str, rows: str,
                                           columns: tuple[str, str] | None) -> None:
    photos = flat(tmp_path, {"cat": 1, "dog": 1})
    found = read_labels(photos, write(tmp_path / "l.csv", f"{header}\n{rows}"), columns)
    assert [(r.path, r.label) for r in found.rows] == [("p0.jpg", "cat"), ("p1.jpg", "dog")]


def test_columns_it_cannot_tell_apart_are_asked_for(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 1})
    labels = write(tmp_path / "l.csv", "a,b,c\np0.jpg,cat,1\n")
    with pytest.raises(PetalError, match="cannot tell which column holds the photo.*"
                                         "--label-columns PATH,LABEL"):
        petal.check(photos, labels=labels, progress=False)
    with pytest.raises(PetalError, match="has no column 'kind'"):
        petal.check(photos, labels=labels, label_columns="a,kind", progress=False)
    with pytest.raises(PetalError, match="give labels"):
        petal.check(photos, label_columns="a,b", progress=False)


def test_every_row_petal_cannot_use_is_reported_and_never_used(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 4, "dog": 4})
    (photos / "broken.jpg").write_bytes(b"\xff\xd8 not a photo")
    (tmp_path / "outside.jpg").write_bytes((photos / "p0.jpg").read_bytes())
    rows = ["p0.jpg,cat", "p1.jpg,cat", "p2.jpg,cat", "p3.jpg,cat", "p4.jpg,dog", "p5.jpg,dog",
            "p6.jpg,dog", "p7.jpg,dog",
            "gone.jpg,cat",  # missing
            "../outside.jpg,cat", "/etc/passwd,dog", "sub/../../outside.jpg,dog",  # outside
            "p1.jpg,", "p2.jpg,_none",  # no label, a reserved one
            "p3.jpg,cat",  # again, same label: used once
            "p4.jpg,cat",  # again, another label: left out altogether
            "broken.jpg,dog"]
    labels = write(tmp_path / "l.csv", "path,label\n" + "\n".join(rows) + "\n")
    report = petal.check(photos, labels=labels, progress=False)
    reasons = {(r.path, r.reason) for r in report.index.rejected}
    assert reasons == {("gone.jpg", "missing"), ("../outside.jpg", "outside"),
                       ("/etc/passwd", "outside"), ("sub/../../outside.jpg", "outside"),
                       ("p1.jpg", "no_label"), ("p2.jpg", "bad_label"),
                       ("p3.jpg", "duplicate_row"), ("p4.jpg", "label_conflict"),
                       ("broken.jpg", "not_image")}
    assert report.counts == {"cat": 4, "dog": 3}  # p4 left out; p1, p2 kept from their rows
    assert "p4.jpg" not in {r.path for r in report.index.images}
    said = report.summary()
    assert "l.csv, line 17: listed with another label (dog); left out" in said


def test_a_bom_crlf_and_bytes_that_are_not_utf8_read_as_written(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 2})
    odd = "caf\udce9.jpg"  # a Latin-1 name, as the file system holds it
    write_image(photos / odd, seed=99)
    labels = write(tmp_path / "l.csv", b"\xef\xbb\xbfpath,label\r\np0.jpg,cat\r\n"
                   b"p1.jpg,cat\r\ncaf\xe9.jpg,cat\r\n")
    found = read_labels(photos, labels)
    assert [r.path for r in found.rows] == ["p0.jpg", "p1.jpg", odd]


@pytest.mark.parametrize("content", [b"path,label\np0.jpg\x00,cat\n", b"", b"\n\n"])
def test_nul_bytes_or_nothing_are_a_clear_error_or_a_skip(tmp_path: Path, content: bytes
                                                            ) -> None:
    photos = flat(tmp_path, {"cat": 1, "dog": 1})
    labels = write(tmp_path / "l.csv", content)
    try:
        report = petal.check(photos, labels=labels, progress=False)
    except PetalError as exc:
        assert "labels file" in str(exc)
    else:
        assert not report.usable and report.index.rejected


def test_a_labels_file_too_large_or_not_a_file_is_refused(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 1})
    with open(tmp_path / "huge.csv", "wb") as handle:
        handle.truncate(MAX_BYTES + 1)  # sparse
    for labels in (tmp_path / "huge.csv", tmp_path, tmp_path / "none.csv"):
        with pytest.raises(PetalError, match="labels file"):
            petal.check(photos, labels=labels, progress=False)


def test_the_csv_gives_the_split_the_folders_give(image_folder: Path, tmp_path: Path) -> None:
    rows = sorted(p.relative_to(image_folder).as_posix() for p in image_folder.rglob("*.jpg"))
    labels = write(tmp_path / "l.csv", "file,class\n" + "".join(
        f"{r},{r.split('/')[0]}\n" for r in rows))
    by_folder = make_split(scan_folder(image_folder, progress=False), seed=3)
    by_csv = make_split(scan_folder(image_folder, progress=False, labels=labels), seed=3)
    assert by_csv.labels["columns"] == ["file", "class"] and not by_folder.labels
    for part in ("train", "val", "test"):
        assert by_csv.part(part) == by_folder.part(part)


def test_a_run_from_a_csv_trains_evaluates_and_notices_an_edit(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 8, "dog": 8})
    rows = "".join(f"p{i},{'cat' if i < 8 else 'dog'}\n" for i in range(16))
    labels = write(tmp_path / "l.csv", "id,label\n" + rows)
    run = petal.train(photos, labels=labels, out=tmp_path / "run", recipe="original-resnet9",
                      overrides=["width=0.125", "input_size=32", "batch_size=4", "epochs=1"],
                      cache_dir=tmp_path / "cache", folds=0, progress=False)
    split = json.loads((run.folder / "split.json").read_text())
    assert split["labels"]["file"] == str(labels.resolve())
    assert petal.evaluate(run, progress=False).accuracy["n"] == len(split["val"])
    write(labels, "id,label\n" + rows.replace("p0,cat", "p0,dog"))  # relabelled since
    with pytest.raises(PetalError, match="labelled otherwise since the split was made"):
        petal.evaluate(run, progress=False)
    shutil.rmtree(tmp_path / "cache")


def test_the_commands_take_labels(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 3, "dog": 3})
    labels = write(tmp_path / "l.csv", "path,label\n" + "".join(
        f"p{i}.jpg,{'cat' if i < 3 else 'dog'}\n" for i in range(6)) + "gone.jpg,cat\n")
    petal_cli = [str(Path(sys.executable).with_name("petal"))]
    done = subprocess.run([*petal_cli, "data", "check", str(photos), "--labels", str(labels),
                           "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "gone.jpg: missing" in done.stdout
    assert re.search(r"^cat +3 +1$", done.stdout, re.M)  # its missing photo counted
    done = subprocess.run([*petal_cli, "data", "split", str(photos), "--labels", str(labels),
                           "--out", str(tmp_path / "s.json"), "--no-progress"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "s.json").read_text())["labels"]["columns"] == ["path",
                                                                                  "label"]
    done = subprocess.run([*petal_cli, "data", "check", str(photos), "--label-columns", "a,b"],
                          capture_output=True, text=True)
    assert done.returncode == 1 and "give labels" in done.stderr


def test_a_label_whose_every_photo_is_missing_is_an_empty_class(tmp_path: Path) -> None:
    """Not a class silently gone from the model: refused, as an empty class folder is."""
    photos = flat(tmp_path, {"cat": 2, "dog": 2})
    labels = write(tmp_path / "l.csv", "path,label\np0.jpg,cat\np1.jpg,cat\np2.jpg,dog\n"
                   "p3.jpg,dog\ngone1.jpg,fox\ngone2.jpg,fox\n")
    report = petal.check(photos, labels=labels, progress=False)
    assert report.counts == {"cat": 2, "dog": 2, "fox": 0} and not report.usable
    assert "no usable image: fox" in report.problem and "Fix the rows of" in report.problem


def test_what_a_spreadsheet_saves_otherwise_is_named(tmp_path: Path) -> None:
    """Windows-1252, UTF-16, semicolons: said with what to save the file as."""
    photos = flat(tmp_path, {"cat": 2})
    cases = {b"path,label\np0.jpg,chat\xe9\n": "not UTF-8 text.*CSV UTF-8",
             "path,label\np0.jpg,cat\n".encode("utf-16"): "UTF-16 text",
             b"path;label\np0.jpg;cat\n": "semicolons",
             b"path,path,label\np0.jpg,p1.jpg,cat\n": "'path' appears 2 times",
             b"path,label\n": "header but no rows"}
    for content, said in cases.items():
        with pytest.raises(PetalError, match=said):
            read_labels(photos, write(tmp_path / "l.csv", content))


def test_a_class_is_kept_whatever_its_rows_paths(tmp_path: Path) -> None:
    """Rows of one label that all point outside the folder leave an empty class (refused),
    never a class silently gone; an absolute path into the folder is used."""
    photos = flat(tmp_path, {"cat": 2, "dog": 2})
    labels = write(tmp_path / "l.csv", f"path,label\n{photos}/p0.jpg,cat\np1.jpg,cat\n"
                   "p2.jpg,dog\np3.jpg,dog\n/elsewhere/b1.png,bird\n../b2.png,bird\n"
                   "_none/x.png,cat\n\"a\nb\",cat\np0.jpg,\"bad\nlabel\"\n")
    report = petal.check(photos, labels=labels, progress=False)
    assert report.counts == {"bird": 0, "cat": 2, "dog": 2} and not report.usable
    reasons = sorted(r.reason for r in report.index.rejected)
    assert reasons == ["bad_label", "missing", "none_folder", "outside", "outside"]


def test_labels_alike_but_for_case_are_warned_of(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 2})
    labels = write(tmp_path / "l.csv", "path,label\np0.jpg,Cat\np1.jpg,cat\n")
    with pytest.warns(PetalWarning, match="differ only by case.*Cat and cat"):
        found = read_labels(photos, labels)
    assert found.classes == ["Cat", "cat"]


def test_a_label_edited_after_a_reviewed_split_is_refused(tmp_path: Path) -> None:
    photos = flat(tmp_path, {"cat": 6, "dog": 6})
    rows = "".join(f"p{i}.jpg,{'cat' if i < 6 else 'dog'}\n" for i in range(12))
    labels = write(tmp_path / "l.csv", "path,label\n" + rows)
    review = write(tmp_path / "review.csv", "path,action,label\np1.jpg,relabel,dog\n")
    split = petal.split(photos, labels=labels, review=review, out=tmp_path / "s.json",
                        progress=False)
    assert {i.path: i.label for i in split.train + split.val}["p1.jpg"] == "dog"
    index = scan_folder(photos, progress=False, labels=labels)
    check_split_matches(split, index)  # the relabel is the review's: not an edit
    write(labels, "path,label\n" + rows.replace("p0.jpg,cat", "p0.jpg,dog"))
    with pytest.raises(PetalError, match="labelled otherwise"):
        check_split_matches(split, scan_folder(photos, progress=False, labels=labels))
