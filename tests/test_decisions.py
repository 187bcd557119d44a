"""The review file: a person's keep/relabel/exclude decisions, applied by split, train and run;
the data folder is never modified, and a file petal cannot apply is refused with its line."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import pytest

from conftest import write_image
from petal.cli import main
from petal.data.decisions import read_review_for, write_review_file
from petal.data.scan import scan_folder
from petal.data.split import Split, make_split
from petal.errors import PetalError
from petal.spreadsheet import escape_cell, unescape_cell


def _folder_digest(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _review_csv(path: Path, actions: dict[str, tuple[str, str]]) -> Path:
    """A review file as `petal data review` writes it, then edited: path -> (action, label)."""
    issues = [{"path": p, "given": p.split("/")[0], "suggested": label, "score": 0.5}
              for p, (_, label) in actions.items()]
    write_review_file(path, issues, [])
    rows = list(csv.DictReader(path.open()))
    for row in rows:
        row["action"] = actions[row["path"]][0]
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, rows[0].keys())
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_written_file_keeps_everything_until_edited(image_folder: Path, tmp_path: Path) -> None:
    index = scan_folder(image_folder, progress=False)
    path = tmp_path / "review.csv"
    write_review_file(path, [{"path": "cat/cat0.jpg", "given": "cat", "suggested": "dog",
                              "score": 0.9}], [{"path": "fox/fox1.jpg", "score": 3.2}])
    rows = list(csv.DictReader(path.open()))
    assert [(r["path"], r["finding"], r["action"], r["label"]) for r in rows] == [
        ("cat/cat0.jpg", "label", "", ""), ("fox/fox1.jpg", "outlier", "", "")]  # no relabel
    decisions = read_review_for(path, index)
    assert decisions.excluded == () and decisions.relabelled == {}
    assert decisions.apply(index.images) == index.images


def test_split_applies_and_records_decisions(image_folder: Path, tmp_path: Path) -> None:
    index = scan_folder(image_folder, progress=False)
    path = _review_csv(tmp_path / "review.csv", {"cat/cat0.jpg": ("relabel", "dog"),
                                                 "fox/fox1.jpg": ("exclude", "fox"),
                                                 "dog/dog2.jpg": ("keep", "cat")})
    split = make_split(index, decisions=read_review_for(path, index))
    items = {i.path: i.label for part in ("train", "val", "test") for i in split.part(part)}
    assert items["cat/cat0.jpg"] == "dog" and "fox/fox1.jpg" not in items
    assert items["dog/dog2.jpg"] == "dog" and len(items) == 11
    split.save(tmp_path / "split.json")
    loaded = Split.load(tmp_path / "split.json")
    assert loaded.review["excluded"] == ["fox/fox1.jpg"]
    assert loaded.review["relabelled"] == {"cat/cat0.jpg": "dog"}
    # an existing split takes the same decisions
    plain = make_split(index)
    reviewed = plain.with_decisions(read_review_for(path, index))
    assert {i.path: i.label for i in reviewed.train + reviewed.val} == items


@pytest.mark.parametrize(("text", "message"), [
    ("path,action\ncat/cat0.jpg,delete\n", "line 2: action 'delete'"),
    ("path,action\ncat/missing.jpg,exclude\n", "line 2: 'cat/missing.jpg' is not an image"),
    ("path,action,label\ncat/cat0.jpg,relabel,wolf\n", "relabel to 'wolf'"),
    ("path,action,label\ncat/cat0.jpg,relabel,\n", "relabel to ''"),
    ("name,decision\ncat/cat0.jpg,exclude\n", "columns path and action"),
    ("", "columns path and action"),
    ("path,action,label\ncat/cat0.jpg,exclude,\ncat/cat0.jpg,relabel,dog\n",
     "line 3: cat/cat0.jpg was already given another action on line 2"),
    ("path,action\n../../etc/passwd,exclude\n", "is not an image of the data folder"),
])
def test_a_file_that_cannot_be_applied_is_refused(image_folder: Path, tmp_path: Path,
                                                  text: str, message: str) -> None:
    index = scan_folder(image_folder, progress=False)
    path = tmp_path / "review.csv"
    path.write_text(text)
    with pytest.raises(PetalError, match=message.replace("(", r"\(").replace(".", r"\.")):
        read_review_for(path, index)


def test_spreadsheet_quirks_are_accepted(image_folder: Path, tmp_path: Path) -> None:
    """A byte-order mark, upper-case actions, blank actions, spaces and CRLF line ends."""
    index = scan_folder(image_folder, progress=False)
    path = tmp_path / "review.csv"
    path.write_bytes("\ufeffpath,action,label\r\n cat/cat0.jpg , EXCLUDE ,\r\n"
                     "dog/dog0.jpg,,\r\n".encode())
    decisions = read_review_for(path, index)
    assert decisions.excluded == ("cat/cat0.jpg",) and decisions.relabelled == {}


def test_unreadable_files_are_refused(image_folder: Path, tmp_path: Path) -> None:
    index = scan_folder(image_folder, progress=False)
    with pytest.raises(PetalError, match="does not exist"):
        read_review_for(tmp_path / "none.csv", index)
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"path,action\n\xff\xfe\x00,exclude\n")
    with pytest.raises(PetalError, match="line 2: .* not an image of the data folder"):
        read_review_for(binary, index)  # bytes that are not UTF-8 read back as written
    if hasattr(os, "mkfifo"):  # a named pipe must not block the reader
        os.mkfifo(tmp_path / "pipe.csv")
        with pytest.raises(PetalError, match="not a regular file"):
            read_review_for(tmp_path / "pipe.csv", index)


def test_cli_split_and_train_apply_the_review(image_folder: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    before = _folder_digest(image_folder)
    review_file = _review_csv(tmp_path / "review.csv", {"cat/cat0.jpg": ("relabel", "fox"),
                                                        "dog/dog1.jpg": ("exclude", "dog")})
    assert main(["data", "split", str(image_folder), "--review", str(review_file),
                 "--out", str(tmp_path / "split.json"), "--no-progress"]) == 0
    assert "1 image(s) excluded, 1 relabelled" in capsys.readouterr().out
    split = json.loads((tmp_path / "split.json").read_text())
    labels = {i["path"]: i["label"] for part in ("train", "val", "test") for i in split[part]}
    assert labels["cat/cat0.jpg"] == "fox" and "dog/dog1.jpg" not in labels

    run = tmp_path / "run"
    assert main(["train", "--data", str(image_folder), "--recipe", "fast-resnet9",
                 "--set", "width=0.125", "--set", "input_size=32", "--set", "epochs=1",
                 "--set", "batch_size=4", "--review", str(review_file), "--out", str(run),
                 "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    trained = json.loads((run / "split.json").read_text())
    assert trained["review"]["relabelled"] == {"cat/cat0.jpg": "fox"}
    assert sum(trained["counts"]["train"].values()) + sum(trained["counts"]["val"].values()) == 11
    assert json.loads((run / "config.json").read_text())["review"] == str(review_file)
    assert _folder_digest(image_folder) == before  # the data folder is never modified

    review_file.write_text("path,action\ncat/gone.jpg,exclude\n")
    assert main(["train", "--data", str(image_folder), "--review", str(review_file),
                 "--out", str(tmp_path / "run2"), "--no-progress"]) == 1
    assert "line 2: 'cat/gone.jpg' is not an image" in capsys.readouterr().err
    assert not (tmp_path / "run2").exists()


# --- hostile and awkward review files (issue 33) ---------------------------------------------

FORMULA = "=cmd|' -C calc'!A0"


@pytest.mark.parametrize("text", ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", "'=x", "'", "''",
                                  "plain", "", " =x", "a=b", "'plain"])
def test_escaped_cells_read_back_unchanged(text: str) -> None:
    cell = escape_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert unescape_cell(cell) == text


def test_formula_cells_are_escaped_and_read_back(tmp_path: Path) -> None:
    """A class folder named like a spreadsheet formula: no cell of review.csv starts with one,
    and the file still applies to that folder."""
    root = tmp_path / "data"
    for c, label in enumerate([FORMULA, "-dog", "@fox"]):
        for i in range(3):
            write_image(root / label / f"{i}.jpg", seed=10 * c + i)
    index = scan_folder(root, progress=False)
    path = tmp_path / "review.csv"
    write_review_file(path, [{"path": f"{FORMULA}/0.jpg", "given": FORMULA, "suggested": "-dog",
                              "score": 0.5}], [{"path": "@fox/1.jpg", "score": 2.0}])
    cells = [cell for row in csv.reader(path.open(newline="")) for cell in row]
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert f"'{FORMULA}/0.jpg" in cells and "'-dog" in cells and "'@fox" in cells
    assert read_review_for(path, index).excluded == ()
    text = path.read_text().replace("0.5,,", "0.5,relabel,").replace(  # to the suggestion
        "2.0,,", "2.0,exclude,")
    path.write_text(text)
    decisions = read_review_for(path, index)
    assert decisions.relabelled == {f"{FORMULA}/0.jpg": "-dog"}
    assert decisions.excluded == ("@fox/1.jpg",)


def test_names_with_spaces_read_back_unchanged(tmp_path: Path) -> None:
    """Whatever petal writes it reads back: a class folder and a file name that begin or end
    with spaces are not stripped away (spaces a person adds around a name still are)."""
    root = tmp_path / "data"
    for c, label in enumerate([" rose ", "tulip"]):
        for i in range(3):
            write_image(root / label / f" {i} .jpg", seed=10 * c + i)
    index = scan_folder(root, progress=False)
    path = tmp_path / "review.csv"
    write_review_file(path, [{"path": " rose / 0 .jpg", "given": " rose ", "suggested": "tulip",
                              "score": 0.5}], [{"path": "tulip/ 1 .jpg", "score": 2.0}])
    assert read_review_for(path, index).excluded == ()
    lines = path.read_text().splitlines()
    assert lines[1:] == [" rose / 0 .jpg,label, rose ,tulip,0.5,,",
                         "tulip/ 1 .jpg,outlier,tulip,,2.0,,"]
    path.write_text(f"{lines[0]}\n{lines[1].replace('0.5,,', '0.5,relabel,')}\n"
                    "tulip/ 1 .jpg,outlier,tulip,,2.0,relabel, rose \n")
    decisions = read_review_for(path, index)
    assert decisions.relabelled == {" rose / 0 .jpg": "tulip", "tulip/ 1 .jpg": " rose "}


def test_header_only_file_decides_nothing(image_folder: Path, tmp_path: Path) -> None:
    """What `petal data review` writes when it finds nothing is a file petal reads."""
    index = scan_folder(image_folder, progress=False)
    write_review_file(tmp_path / "review.csv", [], [])
    decisions = read_review_for(tmp_path / "review.csv", index)
    assert decisions.excluded == () and decisions.relabelled == {}


def test_a_photo_found_twice_is_one_row(image_folder: Path, tmp_path: Path) -> None:
    """A likely label mistake that is also an outlier is one row: deciding it cannot leave a
    second row at keep that contradicts the decision."""
    path = tmp_path / "review.csv"
    write_review_file(path, [{"path": "cat/cat0.jpg", "given": "cat", "suggested": "dog",
                              "score": 0.9}], [{"path": "cat/cat0.jpg", "score": 3.0},
                                               {"path": "fox/fox1.jpg", "score": 2.0}])
    rows = list(csv.DictReader(path.open()))
    assert [(r["path"], r["finding"], r["label"]) for r in rows] == [
        ("cat/cat0.jpg", "label+outlier", ""), ("fox/fox1.jpg", "outlier", "")]


@pytest.mark.parametrize("text", [
    "path,action\ncat/cat0.jpg,exclude\ncat/cat0.jpg,keep\n",
    "path,action\ncat/cat0.jpg,keep\ncat/cat0.jpg,exclude\n",
    "path,action,label\ncat/cat0.jpg,relabel,dog\ncat/cat0.jpg,relabel,fox\n",
])
def test_contradicting_rows_are_refused(image_folder: Path, tmp_path: Path, text: str) -> None:
    index = scan_folder(image_folder, progress=False)
    (tmp_path / "review.csv").write_text(text)
    with pytest.raises(PetalError, match="line 3: cat/cat0.jpg was already given another action"):
        read_review_for(tmp_path / "review.csv", index)


def test_wide_files_are_refused_and_long_ones_read_in_bounded_memory(
        image_folder: Path, tmp_path: Path) -> None:
    """A file of many empty columns is refused at its first line; a long file costs about its
    own size in memory, not a dictionary per row (2 GB for 63 MB before)."""
    index = scan_folder(image_folder, progress=False)
    wide = tmp_path / "wide.csv"
    wide.write_text("path,action" + "," * 1000 + "\n" + ("cat/cat0.jpg,keep" + "," * 1000
                                                          + "\n") * 2000)
    with pytest.raises(PetalError, match="line 1: 1002 columns, more than the 64"):
        read_review_for(wide, index)
    long = tmp_path / "long.csv"
    row = "cat/cat0.jpg,keep" + "," * 60 + "\n"
    long.write_text("path,action" + "," * 60 + "\n" + row * 200_000)
    size = long.stat().st_size
    tracemalloc.start()
    try:
        assert read_review_for(long, index).excluded == ()
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * size, f"peak {peak / 2**20:.0f} MiB for a {size / 2**20:.0f} MiB file"


@pytest.mark.parametrize(("actions", "message"), [
    ({f"{c}/{c}{i}.jpg": ("relabel", "cat") for c in ("dog", "fox") for i in range(4)},
     "no usable image after the review file's decisions: dog, fox"),
    ({f"fox/fox{i}.jpg": ("exclude", "fox") for i in range(4)},
     "no usable image after the review file's decisions: fox"),
])
def test_decisions_that_empty_a_class_are_refused(image_folder: Path, tmp_path: Path,
                                                  actions: dict, message: str,
                                                  capsys: pytest.CaptureFixture) -> None:
    """The folder's own checks (every class has photos, at least two classes) hold after the
    review file too: relabelling every photo to one class trained a one-class model at
    100 %."""
    index = scan_folder(image_folder, progress=False)
    path = _review_csv(tmp_path / "review.csv", actions)
    decisions = read_review_for(path, index)
    with pytest.raises(PetalError, match=message):
        make_split(index, decisions=decisions)
    with pytest.raises(PetalError, match="to train on after the review file's decisions"):
        make_split(index).with_decisions(decisions)
    assert main(["train", "--data", str(image_folder), "--review", str(path), "--out",
                 str(tmp_path / "run"), "--no-progress"]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
