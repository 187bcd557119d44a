"""The split: stratified, deterministic, duplicate groups on one side, conflicts left out."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from conftest import pattern, write_image
from petal.cli import main
from petal.data.duplicates import duplicate_groups
from petal.data.scan import scan_folder
from petal.data.split import Split, check_split_matches, make_split
from petal.errors import PetalError, PetalWarning


@pytest.fixture
def folder_with_copies(tmp_path: Path) -> Path:
    """Two classes of 20 images; copies of some images; one file in both classes."""
    root = tmp_path / "data"
    for c, label in enumerate(["a", "b"]):
        for i in range(20):
            write_image(root / label / f"{i:02d}.png", seed=1000 * c + i)
    for i in range(5):  # exact and near copies inside class a
        shutil.copy(root / "a" / f"{i:02d}.png", root / "a" / f"{i:02d}-copy.png")
        pattern(i).resize((44, 36)).save(root / "a" / f"{i:02d}-near.jpg", quality=60)
    shutil.copy(root / "a" / "10.png", root / "b" / "conflict.png")
    return root


def _sides(split: Split) -> dict[str, str]:
    return {item.path: part for part in ("train", "val", "test") for item in split.part(part)}


def test_groups_never_straddle_parts(folder_with_copies: Path) -> None:
    index = scan_folder(folder_with_copies, progress=False)
    for seed in range(8):
        split = make_split(index, seed=seed, val_fraction=0.3)
        side = _sides(split)
        kept = [r for r in index.images if r.path in side]
        for group in duplicate_groups(kept):
            assert len({side[kept[i].path] for i in group}) == 1, seed


def test_stratified_and_conflicts_excluded(folder_with_copies: Path) -> None:
    index = scan_folder(folder_with_copies, progress=False)
    split = make_split(index, seed=0, val_fraction=0.25, test_fraction=0.25)
    assert split.excluded_conflicts == ["a/10.png", "b/conflict.png"]
    assert not {"a/10.png", "b/conflict.png"} & set(_sides(split))
    counts = split.counts()
    assert counts["val"]["b"] == 5 and counts["test"]["b"] == 5  # 20 * 0.25 each
    assert counts["val"]["a"] <= 9 and counts["test"]["a"] <= 9  # 34 images in groups of 1 or 3
    total = sum(sum(c.values()) for c in counts.values())
    assert total == len(index.images) - 2

    kept = make_split(index, seed=0, keep_conflicts=True)
    side = _sides(kept)
    assert kept.excluded_conflicts == [] and side["a/10.png"] == side["b/conflict.png"]


def test_same_seed_same_file_other_seed_other_split(folder_with_copies: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    outs = []
    for name, seed in (("one", "0"), ("two", "0"), ("three", "5")):
        out = tmp_path / f"{name}.json"
        assert main(["data", "split", str(folder_with_copies), "--seed", seed,
                     "--out", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert json.loads(outs[0])["val"] != json.loads(outs[2])["val"]
    assert "conflicting copies left out" in capsys.readouterr().out


def test_split_does_not_depend_on_listing_order(folder_with_copies: Path) -> None:
    index = scan_folder(folder_with_copies, progress=False)
    reversed_index = scan_folder(folder_with_copies, progress=False)
    reversed_index.images.reverse()
    assert make_split(index).to_json() == make_split(reversed_index).to_json()


def test_round_trip_and_staleness(image_folder: Path, tmp_path: Path) -> None:
    index = scan_folder(image_folder, progress=False)
    split = make_split(index, val_fraction=0.25)
    split.save(tmp_path / "split.json")
    loaded = Split.load(tmp_path / "split.json")
    assert loaded.to_json() == split.to_json()
    check_split_matches(loaded, index)
    write_image(image_folder / "cat" / "cat0.jpg", seed=999)  # the file changes
    with pytest.raises(PetalError, match="changed"):
        check_split_matches(loaded, scan_folder(image_folder, progress=False))


@pytest.mark.parametrize("args", [["--val-fraction", "0"], ["--val-fraction", "0.6",
                                                            "--test-fraction", "0.5"]])
def test_bad_fractions(image_folder: Path, args: list[str], capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "split", str(image_folder), *args]) == 1
    assert "fractions" in capsys.readouterr().err


def test_small_classes_keep_two_validation_images_or_say_so(tmp_path: Path) -> None:
    for c, (label, count) in enumerate([("big", 6), ("small", 4)]):
        for i in range(count):
            write_image(tmp_path / label / f"{i}.jpg", seed=50 * c + i)
    with pytest.warns(PetalWarning, match=r"validation images of small \(1\)"):
        split = make_split(scan_folder(tmp_path, progress=False))
    assert split.counts()["val"] == {"big": 2, "small": 1}


def test_flowers_default_split(flowers: Path, tmp_path: Path) -> None:
    index = scan_folder(flowers, progress=False)
    split = make_split(index)
    sizes = {part: sum(c.values()) for part, c in split.counts().items()}
    assert sizes == {"train": 3884, "val": 431, "test": 0}  # the original had 431 in val
    assert len(split.excluded_conflicts) == 8
    side = _sides(split)
    kept = [r for r in index.images if r.path in side]
    for group in duplicate_groups(kept):
        assert len({side[kept[i].path] for i in group}) == 1
