"""The files behind the review page and the labelling queue, and the queue's order: fast unit
tests on tiny files made here (the pages themselves: test_decide_pages.py)."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import pytest

from conftest import write_image
from petal.analysis.queue import margins, queue_order, queue_with_unknown_last
from petal.data.decisions import read_review_for, write_review_file
from petal.data.new_labels import LABELS_CSV, LinkedData, NewLabels, file_name
from petal.data.review_sheet import ReviewSheet, relative_image_path
from petal.data.scan import NONE_FOLDER, none_photos, scan_folder
from petal.errors import PetalError, PetalWarning
from petal.serve.label_app import linked_data

# ---- the queue's order


def test_margin_is_the_gap_between_the_two_likeliest() -> None:
    p = np.array([[0.5, 0.3, 0.2], [0.9, 0.05, 0.05], [0.34, 0.33, 0.33]])
    assert margins(p) == pytest.approx([0.2, 0.85, 0.01])


def test_the_least_sure_come_first_when_nothing_else_differs() -> None:
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 16))
    sure = np.linspace(0.5, 0.99, 40)
    probabilities = np.stack([sure, 1 - sure], axis=1)
    order = queue_order(probabilities, features, np.zeros((0, 16)), batch=40, pool_factor=1)
    assert order[0] == 0  # the least sure of all starts the first batch
    assert sorted(order) == list(range(40))


def test_a_batch_spreads_over_the_features_rather_than_taking_near_copies() -> None:
    """Ten near-copies of one unsure photo and ten distinct, slightly surer ones: margin alone
    would take the ten copies; the queue takes one of them and the distinct ones."""
    rng = np.random.default_rng(1)
    copies = np.ones((10, 8)) + rng.normal(0, 1e-3, (10, 8))
    distinct = rng.normal(size=(10, 8)) * 5
    features = np.concatenate([copies, distinct])
    probabilities = np.array([[0.5, 0.5]] * 10 + [[0.6, 0.4]] * 10)
    first = queue_order(probabilities, features, np.zeros((0, 8)), batch=10, pool_factor=2)[:10]
    assert sum(i < 10 for i in first) == 1


def test_photos_like_the_labelled_ones_wait() -> None:
    """Two equally unsure photos: the one near a photo the model was trained on comes last."""
    features = np.array([[1.0, 0.0], [0.0, 1.0]])
    probabilities = np.array([[0.5, 0.5], [0.5, 0.5]])
    labelled = np.array([[1.0, 0.01]])
    assert list(queue_order(probabilities, features, labelled, batch=1)) == [1, 0]


# ---- review.csv as the page edits it


def test_sheet_keeps_a_persons_columns_and_escapes_what_it_writes(tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    path.write_text("path,finding,given,suggested,score,action,label,my notes\n"
                    "cat/0.jpg,label,cat,dog,0.9,,dog,=looks odd\n"
                    "dog/1.jpg,outlier,dog,,2.0,keep,dog,\n")
    sheet = ReviewSheet.read(path)
    assert [r["action"] for r in sheet.findings()] == ["", "keep"]
    sheet.decide("cat/0.jpg", "relabel", "-fox")
    sheet.decide("dog/1.jpg", "")  # taken back
    sheet.save()
    rows = list(csv.reader(path.open(newline="")))
    assert rows[1] == ["cat/0.jpg", "label", "cat", "dog", "0.9", "relabel", "'-fox",
                       "=looks odd"]  # the person's cell as it was; petal's escaped
    assert rows[2][5] == ""
    assert ReviewSheet.read(path).findings()[0]["label"] == "-fox"
    with pytest.raises(PetalError, match="not a photo of this review"):
        sheet.decide("cat/9.jpg", "keep")
    with pytest.raises(PetalError, match="action 'delete'"):
        sheet.decide("cat/0.jpg", "delete")


@pytest.mark.parametrize("path", ["../x.jpg", "/etc/passwd", "a/../../x.jpg", "", "a\\..\\x",
                                  "cat/x\0.jpg"])
def test_paths_that_leave_the_folder_are_refused(path: str) -> None:
    with pytest.raises(PetalError):
        relative_image_path(path)


def test_a_new_review_keeps_earlier_decisions(image_folder: Path, tmp_path: Path) -> None:
    """Running `petal data review --out` again over a decided file loses no decision: a photo
    still found keeps its action, one no longer found keeps its row."""
    index = scan_folder(image_folder, progress=False)
    path = tmp_path / "review.csv"
    write_review_file(path, [{"path": "cat/cat0.jpg", "given": "cat", "suggested": "dog",
                              "score": 0.9}, {"path": "dog/dog1.jpg", "given": "dog",
                                              "suggested": "fox", "score": 0.5}], [])
    sheet = ReviewSheet.read(path)
    sheet.decide("cat/cat0.jpg", "exclude")
    sheet.decide("dog/dog1.jpg", "relabel", "fox")
    sheet.save()
    write_review_file(path, [{"path": "cat/cat0.jpg", "given": "cat", "suggested": "fox",
                              "score": 0.7}], [{"path": "fox/fox2.jpg", "score": 3.0}],
                      earlier=ReviewSheet.read(path).findings())
    rows = {r["path"]: r for r in ReviewSheet.read(path).findings()}
    assert (rows["cat/cat0.jpg"]["action"], rows["cat/cat0.jpg"]["suggested"]) == ("exclude",
                                                                                   "fox")
    assert (rows["dog/dog1.jpg"]["action"], rows["dog/dog1.jpg"]["label"]) == ("relabel", "fox")
    assert rows["fox/fox2.jpg"]["action"] == ""
    decisions = read_review_for(path, index)
    assert decisions.excluded == ("cat/cat0.jpg",)
    assert decisions.relabelled == {"dog/dog1.jpg": "fox"}



def test_a_new_review_keeps_a_persons_own_columns(image_folder: Path, tmp_path: Path) -> None:
    """`petal data review --out` again: every column a person added stays as written (one
    named like another but for its case, an unnamed one, a name with a trailing space, a
    second `Score`), with its cells, on rows found again and on rows only they filled in."""
    out = review_folder(image_folder, tmp_path / "review")
    sheet = out / "review.csv"
    own = ["my_note", "My_Note", "", "who ", "Score"]
    lines = sheet.read_text().splitlines()
    sheet.write_text("\r\n".join([lines[0] + "," + ",".join(own),
                                   lines[1] + ",=odd ear,b,c,ana,9", lines[2] + ",,,,,"]
                                  + ["fox/fox1.jpg,,,,,,,seen twice,,,bo,"]) + "\r\n")
    review_folder(image_folder, out)
    again = ReviewSheet.read(sheet)
    rows = {r["path"]: r for r in again.findings()}
    assert again.own_columns() == own
    assert rows["cat/cat0.jpg"]["own"] == ["=odd ear", "b", "c", "ana", "9"]
    assert rows["cat/cat0.jpg"]["score"] == "0.9"  # petal's own score column, not theirs
    assert rows["dog/dog1.jpg"]["own"] == [""] * 5
    assert rows["fox/fox1.jpg"]["own"] == ["seen twice", "", "", "bo", ""]
    assert rows["fox/fox1.jpg"]["action"] == ""


def test_names_with_line_breaks_keep_their_rows(tmp_path: Path) -> None:
    """A carriage return or a newline in a file name is quoted in every CSV petal writes, so
    each row reads back whole."""
    odd = ["cat/cr\rname.jpg", "cat/lf\nname.jpg", "cat/crlf\r\nname.jpg"]
    path = tmp_path / "review.csv"
    write_review_file(path, [{"path": p, "given": "cat", "suggested": "dog", "score": 0.5}
                             for p in odd], [])
    sheet = ReviewSheet.read(path)
    assert [r["path"] for r in sheet.findings()] == odd
    sheet.decide(odd[0], "exclude")
    sheet.save()
    assert [r["action"] for r in ReviewSheet.read(path).findings()] == ["exclude", "", ""]
    photos = tmp_path / "photos"
    names = [write_image(photos / name.split("/")[1], seed=i) for i, name in enumerate(odd)]
    new = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    for photo in names:
        new.decide(new.photos / photo.name, sha(photo), "label", "dog")
    again = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    assert sorted(again.rows) == sorted(str(new.photos / p.name) for p in names)
    assert len(list((tmp_path / "new/dog").iterdir())) == 3


# ---- NEW_DATA, the folder `petal label` fills


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    for i in range(3):
        write_image(tmp_path / "photos" / f"p{i}.jpg", seed=i)
    write_image(tmp_path / "photos" / "sub" / "p0.jpg", seed=7)  # the same name elsewhere
    return tmp_path / "photos"


def test_photos_called_unknown_come_after_the_hesitations_most_novel_first() -> None:
    rng = np.random.default_rng(3)
    probabilities = rng.dirichlet(np.ones(3), size=12)
    probabilities[[2, 5, 9]] = [1 / 3, 1 / 3, 1 / 3]  # the least sure of all ...
    novelty = np.full(12, 0.1)
    novelty[[2, 5, 9]] = [0.8, 0.9, 0.7]  # ... but of none of the classes
    order = queue_with_unknown_last(probabilities, rng.normal(size=(12, 8)), np.zeros((0, 8)),
                                    novelty, threshold=0.5)
    assert sorted(order) == list(range(12)) and list(order[-3:]) == [5, 2, 9]
    plain = queue_with_unknown_last(probabilities, rng.normal(size=(12, 8)), np.zeros((0, 8)),
                                    None, threshold=0.5)
    assert sorted(plain) == list(range(12))  # a model without a novelty score: one queue

def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_labels_become_links_and_move_with_the_decision(photos: Path, tmp_path: Path) -> None:
    new = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    one, other = new.photos / "p0.jpg", new.photos / "sub" / "p0.jpg"
    (photos / "sub" / "p0.jpg").write_bytes((photos / "p0.jpg").read_bytes())  # one content
    new.decide(one, sha(one), "label", "cat")
    new.decide(other, sha(other), "label", "cat")
    assert (tmp_path / "new/cat" / file_name(one)).resolve() == one.resolve()
    assert len(list((tmp_path / "new/cat").iterdir())) == 2  # same name and content: two files
    new.decide(other, sha(other), "")  # the other taken back: this one's link stays
    assert len(list((tmp_path / "new/cat").iterdir())) == 1
    new.decide(one, sha(one), "label", "dog")  # relabelled: the link moves ...
    assert [p.name for p in (tmp_path / "new/dog").iterdir()] == [file_name(one)]
    assert not (tmp_path / "new/cat").exists()  # ... and no class folder is left empty
    new.decide(other, sha(other), "none")  # none of the classes: kept, but not as a class
    new.decide(one, sha(one), "")
    assert [p.relative_to(tmp_path / "new") for p in (tmp_path / "new").rglob("*")
            if p.is_symlink()] == [Path(NONE_FOLDER) / file_name(other)]
    assert none_photos(tmp_path / "new") == [tmp_path / "new" / NONE_FOLDER / file_name(other)]
    new.decide(other, sha(other), "label", "cat")  # changed its mind: the link moves
    assert not (tmp_path / "new" / NONE_FOLDER).exists()
    new.decide(other, sha(other), "none")
    rows = list(csv.DictReader((tmp_path / "new" / LABELS_CSV).open()))
    assert [(r["source"], r["decision"], r["label"]) for r in rows] == [(str(other), "none", "")]
    with pytest.raises(PetalError, match="label 'fox'"):
        new.decide(one, sha(one), "label", "fox")
    # a photo that changed since the scan: refused, and nothing saved (not even the row)
    before = (tmp_path / "new" / LABELS_CSV).read_bytes()
    for decision, label in [("label", "dog"), ("none", "")]:
        with pytest.raises(PetalError, match="changed since petal read it: nothing was saved"):
            new.decide(one, "0" * 64, decision, label)
    assert (tmp_path / "new" / LABELS_CSV).read_bytes() == before
    assert not (tmp_path / "new/dog").exists()


def test_a_hand_edit_of_the_labels_file_is_kept(photos: Path, tmp_path: Path) -> None:
    new = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    one, two = new.photos / "p1.jpg", new.photos / "p2.jpg"
    new.decide(one, sha(one), "label", "cat")
    with open(tmp_path / "new" / LABELS_CSV, "a") as labels:  # by hand, while it runs
        labels.write(f"{two},{sha(two)},none,\n")
    new.decide(one, sha(one), "label", "dog")
    rows = list(csv.DictReader((tmp_path / "new" / LABELS_CSV).open()))
    assert [(r["source"], r["label"]) for r in rows] == [(str(one), "dog"), (str(two), "")]


def test_reopening_mends_links_a_kill_left_behind(photos: Path, tmp_path: Path) -> None:
    new = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos, copy=True)
    one = new.photos / "p1.jpg"
    new.decide(one, sha(one), "label", "dog")
    copied = tmp_path / "new/dog" / file_name(one)
    assert copied.is_file() and not copied.is_symlink()
    assert copied.read_bytes() == one.read_bytes()
    # killed after labels.csv said cat and before the copy moved
    text = (tmp_path / "new" / LABELS_CSV).read_text().replace(",label,dog", ",label,cat")
    (tmp_path / "new" / LABELS_CSV).write_text(text)
    (tmp_path / "new" / f".{LABELS_CSV}.x1y2.tmp").write_text("half a file")
    (tmp_path / "new/dog" / ".p9-00000000.jpg.abcd.tmp").write_text("half a link")
    with pytest.warns(PetalWarning, match="1 link.*does not ask for.*dog/p1-"):
        NewLabels.open(tmp_path / "new", ["cat", "dog"], photos, copy=True)
    assert not copied.exists()
    assert (tmp_path / "new/cat" / file_name(one)).is_file()
    assert not list((tmp_path / "new").rglob("*.tmp"))  # what the kill left is gone


def test_reopening_removes_links_labels_csv_does_not_ask_for(photos: Path,
                                                            tmp_path: Path) -> None:
    """A row deleted by hand, or a take-back killed between labels.csv and the unlink: the
    link goes, said in one line; a person's own file in a class folder stays."""
    new = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    one, two = new.photos / "p1.jpg", new.photos / "p2.jpg"
    new.decide(one, sha(one), "label", "cat")
    new.decide(two, sha(two), "label", "cat")
    (tmp_path / "new/cat/mine.jpg").write_bytes(one.read_bytes())  # put there by a person
    labels = tmp_path / "new" / LABELS_CSV
    labels.write_text("".join(line for line in labels.read_text().splitlines(keepends=True)
                              if "p2.jpg" not in line))
    with pytest.warns(PetalWarning, match="1 link.*does not ask for.*cat/p2-"):
        again = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    assert sorted(p.name for p in (tmp_path / "new/cat").iterdir()) == sorted(
        [file_name(one), "mine.jpg"])
    assert list(again.rows) == [str(one)]
    assert scan_folder(tmp_path / "new", progress=False).counts() == {"cat": 2}


def test_the_original_data_is_linked_in_when_the_folder_is_made(
        image_folder: Path, photos: Path, tmp_path: Path) -> None:
    classes = ["cat", "dog", "fox"]
    new = NewLabels.open(tmp_path / "new", classes, photos,
                         original=linked_data(image_folder, classes, None, progress=False))
    index = scan_folder(tmp_path / "new", progress=False)
    assert index.counts() == {"cat": 4, "dog": 4, "fox": 4}
    assert all((tmp_path / "new" / r.path).is_symlink() for r in index.images)
    assert {r.path.split("/")[1] for r in index.images} == {"data"}  # under CLASS/data/
    # a second round linking the first's folder: deciding on a photo never touches the
    # linked copy of it
    one = new.photos / "p0.jpg"
    new.decide(one, sha(one), "label", "cat")
    second = NewLabels.open(tmp_path / "new2", classes, photos, original=linked_data(
        tmp_path / "new", classes, None, progress=False))
    assert scan_folder(tmp_path / "new2", progress=False).counts()["cat"] == 5
    second.decide(one, sha(one), "label", "cat")
    second.decide(one, sha(one), "")
    assert scan_folder(tmp_path / "new2", progress=False).counts()["cat"] == 5


def test_photos_of_none_of_the_classes_are_linked_in_too(image_folder: Path, photos: Path,
                                                         tmp_path: Path) -> None:
    """A second round keeps the first round's "none of these": not a class, still there."""
    classes = ["cat", "dog", "fox"]
    write_image(image_folder / NONE_FOLDER / "bird.jpg", seed=55)
    assert scan_folder(image_folder, progress=False).classes == classes
    new = NewLabels.open(tmp_path / "new", classes, photos,
                         original=linked_data(image_folder, classes, None, progress=False))
    assert none_photos(tmp_path / "new") == [
        tmp_path / "new" / NONE_FOLDER / "data" / NONE_FOLDER / "bird.jpg"]
    one = new.photos / "p1.jpg"
    new.decide(one, sha(one), "none")
    assert len(none_photos(tmp_path / "new")) == 2
    new.decide(one, sha(one), "")  # a take-back never touches the linked old one
    assert len(none_photos(tmp_path / "new")) == 1
    with pytest.raises(PetalError, match="'_none' cannot be a class folder"):
        NewLabels.open(tmp_path / "other", ["cat", NONE_FOLDER], photos)


def test_the_review_is_applied_to_the_photos_linked_in(image_folder: Path, photos: Path,
                                                       tmp_path: Path) -> None:
    """The decisions made on the review page hold in the new folder too."""
    (tmp_path / "review.csv").write_text("path,action,label\ncat/cat0.jpg,exclude,\n"
                                         "dog/dog1.jpg,relabel,fox\n")
    classes = ["cat", "dog", "fox"]
    NewLabels.open(tmp_path / "new", classes, photos, original=linked_data(
        image_folder, classes, tmp_path / "review.csv", progress=False))
    index = scan_folder(tmp_path / "new", progress=False)
    assert index.counts() == {"cat": 3, "dog": 3, "fox": 5}
    assert "fox/data/dog/dog1.jpg" in {r.path for r in index.images}
    with pytest.raises(PetalError, match="no folder for the model's class"):
        linked_data(image_folder, ["cat", "wolf"], None, progress=False)


def test_the_same_photos_through_a_link_are_the_same_rows(photos: Path, tmp_path: Path) -> None:
    new = NewLabels.open(tmp_path / "new", ["cat"], photos)
    new.decide(new.photos / "p1.jpg", sha(photos / "p1.jpg"), "label", "cat")
    (tmp_path / "alias").symlink_to(photos)
    again = NewLabels.open(tmp_path / "new", ["cat"], tmp_path / "alias")
    assert list(again.rows) == [str(photos.resolve() / "p1.jpg")]


def test_new_data_is_refused_where_it_would_write_into_photos(
        image_folder: Path, photos: Path, tmp_path: Path) -> None:
    original = LinkedData(image_folder, [])
    for out in [photos, photos / "new", tmp_path, image_folder / "new"]:
        with pytest.raises(PetalError, match="overlap"):
            NewLabels.open(out, ["cat"], photos, original=original)
    (tmp_path / "a-file").write_text("")
    with pytest.raises(PetalError, match="is a file"):
        NewLabels.open(tmp_path / "a-file", ["cat"], photos)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("a person's file")
    with pytest.raises(PetalError, match="already holds files"):
        NewLabels.open(tmp_path / "busy", ["cat"], photos)
    assert sorted(p.name for p in photos.rglob("*")) == ["p0.jpg", "p0.jpg", "p1.jpg", "p2.jpg",
                                                         "sub"]  # nothing made in them


@pytest.mark.parametrize("line", [
    "relative/p.jpg,{sha},label,cat", "/etc/passwd,{sha},label,cat",
    "{photos}/../outside.jpg,{sha},label,cat", "{photos}/p0.jpg,short,label,cat",
    "{photos}/p0.jpg,{sha},label,wolf", "{photos}/p0.jpg,{sha},delete,"])
def test_a_labels_file_petal_cannot_use_is_refused(photos: Path, tmp_path: Path,
                                                   line: str) -> None:
    (tmp_path / "new").mkdir()
    (tmp_path / "new" / LABELS_CSV).write_text("source,sha256,decision,label\n" + line.format(
        sha="d" * 64, photos=photos.resolve()) + "\n")
    with pytest.raises(PetalError, match="line 2"):
        NewLabels.open(tmp_path / "new", ["cat"], photos, copy=True)
    assert not (tmp_path / "new" / "cat").exists()


# ---- the review folder as the review page reads and writes it


def review_folder(image_folder: Path, out: Path) -> Path:
    from petal.jobs.review import Review
    from petal.jobs.review_page import write_review

    issues = [{"path": "cat/cat0.jpg", "given": "cat", "suggested": "dog", "score": 0.9},
              {"path": "dog/dog1.jpg", "given": "dog", "suggested": "fox", "score": 0.5}]
    write_review(Review(str(image_folder), ["cat", "dog", "fox"], 12, 5, issues, [],
                        {"exact_duplicates": [], "near_duplicates": [], "label_conflicts": []},
                        0.8), out)
    return out


def test_the_review_page_source_keeps_the_file_consistent(image_folder: Path,
                                                          tmp_path: Path) -> None:
    from petal.serve.local_page import Decision
    from petal.serve.review_app import ReviewFolder

    folder = ReviewFolder(review_folder(image_folder, tmp_path / "review"))
    sheet = folder.sheet_path
    # by hand: a row twice, and an action petal does not know
    lines = sheet.read_text().splitlines()
    sheet.write_text("\n".join([lines[0], lines[1], lines[2].replace(",,", ",maybe,", 1),
                                lines[1]]) + "\n")
    items = folder.items()
    assert [i["key"] for i in items] == ["cat/cat0.jpg", "dog/dog1.jpg"]  # each photo once
    assert items[1]["action"] == "" and "'maybe'" in items[1]["lines"][-1]
    folder.decide(Decision(key="cat/cat0.jpg", action="exclude"))
    assert [r["action"] for r in ReviewSheet.read(sheet).findings()] == ["exclude", "maybe",
                                                                          "exclude"]
    # relabelled as the class it is filed under: kept
    assert folder.decide(Decision(key="dog/dog1.jpg", action="relabel", label="dog"))[
        "action"] == "keep"
    index = scan_folder(image_folder, progress=False)
    assert read_review_for(sheet, index).excluded == ("cat/cat0.jpg",)


def test_a_review_row_of_a_deleted_photo_is_skipped(image_folder: Path, tmp_path: Path) -> None:
    review_folder(image_folder, tmp_path / "review")
    sheet = ReviewSheet.read(tmp_path / "review" / "review.csv")
    sheet.decide("cat/cat0.jpg", "exclude")
    sheet.decide("dog/dog1.jpg", "relabel", "fox")
    sheet.save()
    (image_folder / "cat" / "cat0.jpg").unlink()  # a person deletes the bad photo
    index = scan_folder(image_folder, progress=False)
    with pytest.warns(PetalWarning, match="1 row.*no longer in the data folder.*cat/cat0.jpg"):
        decisions = read_review_for(tmp_path / "review" / "review.csv", index)
    assert decisions.excluded == () and decisions.relabelled == {"dog/dog1.jpg": "fox"}



def test_a_kept_row_of_the_review_file_names_no_class(tmp_path: Path) -> None:
    path = tmp_path / "review.csv"
    write_review_file(path, [{"path": f"cat/{i}.jpg", "given": "cat", "suggested": "dog",
                              "score": 0.5} for i in range(3)], [])
    sheet = ReviewSheet.read(path)
    assert [r["label"] for r in sheet.findings()] == ["", "", ""]  # until someone relabels
    sheet.decide("cat/0.jpg", "keep")
    sheet.decide("cat/1.jpg", "relabel", "dog")
    sheet.decide("cat/2.jpg", "relabel", "dog")
    sheet.decide("cat/2.jpg", "exclude")  # changed their mind: no class left behind
    sheet.save()
    with open(path, newline="") as handle:
        rows = {r["path"]: (r["action"], r["label"]) for r in csv.DictReader(handle)}
    assert rows == {"cat/0.jpg": ("keep", ""), "cat/1.jpg": ("relabel", "dog"),
                    "cat/2.jpg": ("exclude", "")}
    index = scan_folder(_folder_of(tmp_path / "data", ["cat/0.jpg", "cat/1.jpg", "cat/2.jpg",
                                                       "dog/3.jpg"]))
    read = read_review_for(path, index)
    assert read.relabelled == {"cat/1.jpg": "dog"} and read.excluded == ("cat/2.jpg",)
    with open(path, "w", newline="") as handle:  # a relabel typed with no label: suggested
        handle.write("path,finding,given,suggested,score,action,label\r\n"
                     "cat/0.jpg,label,cat,dog,0.5,relabel,\r\n")
    assert read_review_for(path, index).relabelled == {"cat/0.jpg": "dog"}


def _folder_of(root: Path, paths: list[str]) -> Path:
    for seed, path in enumerate(paths):
        write_image(root / path, seed=seed)
    return root


def test_predict_leaves_out_what_the_labelling_queue_holds(tiny_run: Path, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    from petal.cli import main

    photos = _folder_of(tmp_path / "photos", [f"p{i}.jpg" for i in range(4)])
    new = NewLabels.open(tmp_path / "new", ["cat", "dog", "fox"], photos)
    new.decide(new.photos / "p0.jpg", sha(photos / "p0.jpg"), "label", "dog")
    new.decide(new.photos / "p1.jpg", sha(photos / "p1.jpg"), "none")
    elsewhere = tmp_path / "copied" / "renamed.jpg"  # the same photo under another name
    elsewhere.parent.mkdir()
    elsewhere.write_bytes((photos / "p0.jpg").read_bytes())
    assert main(["predict", str(tiny_run), str(photos), str(elsewhere), "--skip-labelled",
                 str(tmp_path / "new"), "--csv", "--engine", "torch", "--no-progress"]) == 0
    out = capsys.readouterr()
    assert {row["path"] for row in csv.DictReader(out.out.splitlines())} == {
        str(photos / "p2.jpg"), str(photos / "p3.jpg")}
    assert f"Left out 3 photo(s) already decided in {tmp_path / 'new'}" in out.err
    assert main(["predict", str(tiny_run), str(photos / "p0.jpg"), "--skip-labelled",
                 str(tmp_path / "new"), "--json"]) == 0  # nothing left: not a failure
    out = capsys.readouterr()
    assert out.out.strip() == "[]" and "none is left to predict" in out.err
    assert main(["predict", str(tiny_run), str(photos), "--skip-labelled",
                 str(tmp_path / "nowhere")]) == 1
    assert "labels.csv cannot be read" in capsys.readouterr().err


@pytest.mark.parametrize("make", ["folder", "fifo", "too large", "wrong header"])
def test_a_labels_file_petal_cannot_use_is_refused_in_one_line(
        make: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from petal.data import new_labels

    labels = tmp_path / "new" / LABELS_CSV
    labels.parent.mkdir()
    if make == "folder":
        labels.mkdir()
    elif make == "fifo":
        os.mkfifo(labels)  # a read would wait for a writer forever
    elif make == "too large":
        monkeypatch.setattr(new_labels, "MAX_LABELS_BYTES", 1000)
        labels.write_text("source,sha256,decision,label\r\n" + "x,y,none,\r\n" * 200)
    else:
        labels.write_text("path,action\r\ncat/0.jpg,keep\r\n")
    with pytest.raises(PetalError, match="cannot be read|the first line must be"):
        new_labels.labelled_hashes(tmp_path / "new")
