"""`petal data review`: out-of-fold predictions find a wrongly filed photo and an outlier."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from petal.analysis.confident import hard_cases, label_issues
from petal.cli import main
from petal.data.scan import ImageRecord
from petal.data.split import deal_folds
from petal.errors import PetalError
from petal.jobs.review import Review, format_review, review
from petal.jobs.review_page import write_review

COLOURS = {"red": (210, 30, 30), "green": (30, 180, 40), "blue": (30, 40, 210)}


@pytest.fixture(scope="module")
def mislabelled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three plain colours, 12 noisy photos each; one red photo filed under blue, and a
    black-and-white checkerboard filed under green."""
    root = tmp_path_factory.mktemp("review") / "data"
    for name in COLOURS:
        (root / name).mkdir(parents=True)
    for name, rgb in COLOURS.items():
        rng = np.random.default_rng(sum(rgb))
        for i in range(12):
            pixels = np.clip(np.array(rgb) + rng.normal(0, 20, (64, 64, 3)), 0, 255)
            folder = "blue" if (name, i) == ("red", 0) else name
            Image.fromarray(pixels.astype(np.uint8)).save(root / folder / f"{name}{i}.png")
    board = (np.indices((64, 64)).sum(axis=0) // 8 % 2 * 255).astype(np.uint8)
    Image.fromarray(board).convert("RGB").save(root / "green" / "board.png")
    return root


def test_the_wrongly_filed_photo_comes_first(mislabelled: Path, tmp_path: Path) -> None:
    result = review(mislabelled, folds=3, cache_dir=tmp_path / "cache", progress=False)
    first = result.label_issues[0]
    assert (first["path"], first["given"], first["suggested"]) == ("blue/red0.png", "blue", "red")
    assert result.outliers and result.outliers[0]["path"] == "green/board.png"
    assert result.n_images == 37 and result.folds == 3


def test_review_cli(mislabelled: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "review"
    monkeypatch.chdir(mislabelled.parent)  # a relative folder: review.json says where it is
    assert main(["data", "review", "data", "--folds", "3", "--json", "--out",
                 f"{out}/", "--cache-dir", str(tmp_path / "cache"), "--no-progress"]) == 0
    captured = capsys.readouterr()
    found = json.loads(captured.out)
    assert f"Wrote {out}/: review.json" in captured.err  # one slash, however --out ends
    assert found["label_issues"][0]["path"] == "blue/red0.png"
    assert set(found["label_issues"][0]) == {"path", "given", "suggested", "score"}
    assert {"exact_duplicates", "near_duplicates", "label_conflicts"} <= found["duplicates"].keys()
    sheets = [name for name, key in [("hard_cases.png", "hard"),
                                     ("label_issues.png", "label_issues"),
                                     ("outliers.png", "outliers")] if found[key]]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*sheets, "review.csv", "review.html", "review.json"])
    page = (out / "review.html").read_text()
    assert "blue/red0.png" in page and page.count("data:image/jpeg;base64,") == (
        len(found["label_issues"]) + len(found["outliers"]) + len(found["hard"]))
    assert "blue/red0.png,label,blue,red," in (out / "review.csv").read_text()
    assert json.loads((out / "review.json").read_text())["root"] == str(mislabelled)
    assert main(["data", "review", str(mislabelled), "--folds", "20"]) == 1
    assert "at least 20 images" in capsys.readouterr().err


def test_folds_deal_each_class_evenly_and_keep_copies_together() -> None:
    """The review deals its folds as cross-validation does (petal.data.split.deal_folds)."""
    def phash(text: str) -> str:  # unlike any other's: about 32 bits apart
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    images = [ImageRecord(f"{label}/{i}.jpg", label, f"{label}{i}", 1, 1, 1, phash(f"{label}{i}"))
              for label, n in (("a", 10), ("b", 7), ("c", 5)) for i in range(n)]
    images.append(dataclasses.replace(images[0], path="a/copy.jpg"))  # a copy of a/0.jpg
    folds = deal_folds(images, 5)
    for label in "abc":
        counts = [sum(r.label == label for r in members) for members in folds]
        assert max(counts) - min(counts) <= 1 + (label == "a")
    assert sum({"a/0.jpg", "a/copy.jpg"} <= {r.path for r in members} for members in folds) == 1
    with pytest.raises(PetalError, match="at least 2"):
        review(Path("unread"), folds=1)


def test_a_clean_small_set_lists_its_disagreements_and_draws_no_empty_sheet(
        tmp_path: Path) -> None:
    """Confident learning flags nothing here, yet two photos are predicted as another class:
    they are listed as hard or ambiguous; only the sheets with photos are drawn."""
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.7, 0.3], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1, 1])
    assert label_issues(probabilities, labels) == []
    assert hard_cases(probabilities, labels, set()) == [(3, 0, pytest.approx(0.4)),
                                                       (4, 0, pytest.approx(0.1))]
    assert hard_cases(probabilities, labels, {3}) == [(4, 0, pytest.approx(0.1))]
    root = tmp_path / "data"
    for name in ("a", "b"):
        (root / name).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / name / "x.png")
    hard = [{"path": "b/x.png", "given": "b", "suggested": "a", "score": 0.4}]
    result = Review(str(root), ["a", "b"], 2, 2, [], [], {"exact_duplicates": [],
                    "near_duplicates": [], "label_conflicts": []}, 0.5, hard)
    written = write_review(result, tmp_path / "out")
    assert written == ["review.json", "review.csv", "review.html", "hard_cases.png"]
    assert "b/x.png,hard,b,a,0.4,,\n" in (tmp_path / "out" / "review.csv").read_text()
    assert "Hard or ambiguous (1)" in format_review(result)


def test_confident_learning_flags_only_confident_disagreements() -> None:
    probabilities = np.array([[0.9, 0.1], [0.8, 0.2], [0.2, 0.8], [0.7, 0.3], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 1, 1])  # image 3 looks like class 0; image 4 is unsure
    # thresholds: class 0 = mean(0.9, 0.8) = 0.85, class 1 = mean(0.8, 0.3, 0.45) = 0.52
    assert label_issues(probabilities, labels) == []  # 0.7 < 0.85: not confident enough
    probabilities[3] = [0.9, 0.1]  # now above class 0's threshold
    assert label_issues(probabilities, labels) == [(3, 0, pytest.approx(0.9))]  # 1 - 0.1
    assert label_issues(probabilities, labels, "margin") == [(3, 0, pytest.approx(0.8))]


def test_the_two_rankings_order_the_same_findings_differently() -> None:
    """Self-confidence ranks first the photo whose given label is least likely; margin, the
    one whose suggested class leads its given label most."""
    probabilities = np.array([[0.9, 0.05, 0.05], [0.9, 0.1, 0.0], [0.0, 0.5, 0.5],
                              [0.1, 0.4, 0.5], [0.0, 0.0, 1.0], [0.0, 0.0, 1.0],
                              [0.95, 0.0, 0.05], [0.5, 0.5, 0.0]])
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 2])  # 6 and 7 look like other classes
    assert label_issues(probabilities, labels) == [(7, 1, pytest.approx(1.0)),  # given: 0
                                                   (6, 0, pytest.approx(0.95))]  # given: 0.05
    assert label_issues(probabilities, labels, "margin") == [
        (6, 0, pytest.approx(0.9)), (7, 1, pytest.approx(0.5))]
    with pytest.raises(ValueError, match="rank 'loss'"):
        label_issues(probabilities, labels, "loss")


def test_review_refuses_an_unknown_ranking(mislabelled: Path) -> None:
    with pytest.raises(PetalError, match="--rank loss: use one of self-confidence, margin"):
        review(mislabelled, rank="loss", progress=False)
