"""Hostile files and paths around runs and exports: output paths that are not regular files,
code in the working folder, exports cut short or swapped, class names that climb out of a
folder, output folders inside the photos, options a resume cannot honour, opsets the exporter
cannot write."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import petal
from conftest import card_edited_copy, write_image
from petal.cli import main
from petal.data.new_labels import NewLabels
from petal.data.scan import scan_folder
from petal.errors import PetalError, PetalWarning
from petal.fsutil import NotARegularFile, atomic_write_bytes
from petal.inference.onnx_engine import ONNX_FILE, novelty_path, sidecar_path
from petal.serve.review_app import ReviewFolder
from test_auto_engine import fresh_copy

PETAL = Path(sys.executable).with_name("petal")


def one_error_line(err: str, *phrases: str) -> None:
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert all(phrase in err for phrase in phrases), err


@pytest.fixture
def not_regular(tmp_path: Path) -> dict[str, Path]:
    """A symbolic link to a file of a person's, a named pipe and a folder."""
    (tmp_path / "mine.txt").write_text("a person's file")
    (tmp_path / "link").symlink_to(tmp_path / "mine.txt")
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "folder").mkdir()
    return {"symbolic link": tmp_path / "link", "named pipe": tmp_path / "fifo",
            "folder": tmp_path / "folder"}


def assert_untouched(paths: dict[str, Path]) -> None:
    assert paths["symbolic link"].is_symlink()
    assert paths["symbolic link"].read_text() == "a person's file"
    assert stat.S_ISFIFO(os.lstat(paths["named pipe"]).st_mode)
    assert list(paths["folder"].iterdir()) == []


def test_an_out_path_that_is_not_a_regular_file_is_refused(
        tiny_run: Path, image_folder: Path, not_regular: dict[str, Path],
        capsys: pytest.CaptureFixture) -> None:
    for kind, path in not_regular.items():
        with pytest.raises(NotARegularFile, match=kind):
            atomic_write_bytes(path, b"x")
        assert main(["export", str(tiny_run), "--out", str(path)]) == 1
        one_error_line(capsys.readouterr().err, kind, "petal writes only regular files")
        assert main(["data", "split", str(image_folder), "--out", str(path),
                     "--no-progress"]) == 1
        one_error_line(capsys.readouterr().err, kind)
        assert main(["compare", str(image_folder / "cat/cat0.jpg"), "--models",
                     str(tiny_run), "--out", str(path)]) == 1
        one_error_line(capsys.readouterr().err, kind)
    assert_untouched(not_regular)
    assert not list(not_regular["folder"].parent.glob("*.json"))  # no card beside any
    # beside the output: a card or novelty file that is a link refuses the export before it
    out = not_regular["folder"].parent / "m.onnx"
    sidecar_path(out).symlink_to(not_regular["symbolic link"])
    assert main(["export", str(tiny_run), "--out", str(out)]) == 1
    one_error_line(capsys.readouterr().err, "m.onnx.json is a symbolic link")
    assert not out.exists()


def _namespaces_work() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-rm", "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _namespaces_work(), reason="needs unshare -rm (a private mount "
                    "namespace, in which /dev/null is bound onto a file of the test's)")
def test_a_device_as_out_stays_a_device(tiny_run: Path, tmp_path: Path) -> None:
    """/dev/null bound onto a file in a private mount namespace: petal must not turn it into
    a regular file (as root, a rename over /dev/null itself did)."""
    null = tmp_path / "null"
    null.touch()
    script = ('mount --bind /dev/null "$NULL" && "$PETAL" export "$RUN" --out "$NULL"; '
              'status=$?; test -c "$NULL" && echo still-a-device; exit $status')
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "NULL": str(null), "PETAL": str(PETAL),
                               "RUN": str(tiny_run)})
    assert done.returncode == 1 and "still-a-device" in done.stdout, done.stderr
    one_error_line(done.stderr, "a named pipe, socket or device")
    assert not (tmp_path / "null.json").exists()


def test_code_in_the_working_folder_never_runs(tiny_run: Path, tmp_path: Path) -> None:
    """The first use's export starts a child process: only the installed petal may run in
    it, not a petal/ package in the folder where the user works."""
    run = fresh_copy(tiny_run, tmp_path / "run")
    work = tmp_path / "work"
    marker = tmp_path / "marker"
    (work / "petal").mkdir(parents=True)
    (work / "petal" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    photo = write_image(work / "x.jpg", seed=3)
    done = subprocess.run([str(PETAL), "predict", str(run), str(photo)], cwd=work,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert not marker.exists()
    assert "running on torch" not in done.stderr and (run / "model" / ONNX_FILE).is_file()


def _export_parts(run: Path) -> list[Path]:
    onnx = run / "model" / ONNX_FILE
    return [onnx, sidecar_path(onnx), novelty_path(onnx)]


@pytest.mark.parametrize("damage", ["novelty missing", "novelty of another run",
                                    "graph of another run", "graph cut short",
                                    "card of an earlier export"])
def test_an_export_not_whole_or_not_its_own_is_made_again(
        tiny_run: Path, colour_run: Path, tmp_path: Path, damage: str) -> None:
    """What a kill or a full disk between the export's renames leaves, and files copied in
    from another run: never trusted; the folder is exported again, unknown photos still
    called unknown."""
    run = fresh_copy(tiny_run, tmp_path / "run")
    other = fresh_copy(colour_run, tmp_path / "other")  # 2 classes, not tiny_run's 3
    petal.load(run), petal.load(other)
    onnx, card, novelty = _export_parts(run)
    if damage == "novelty missing":
        novelty.unlink()
    elif damage == "novelty of another run":
        shutil.copyfile(_export_parts(other)[2], novelty)
    elif damage == "graph of another run":
        shutil.copyfile(_export_parts(other)[0], onnx)
    elif damage == "graph cut short":
        onnx.write_bytes(onnx.read_bytes()[:1000])
    else:  # a new export killed before its card: the card describes another graph
        card.write_bytes(card.read_bytes().replace(b'"file_sha256": "', b'"file_sha256": "0'))
    with warnings.catch_warnings():
        warnings.simplefilter("error", PetalWarning)  # no "not beside" warning, no torch
        classifier = petal.load(run)
    assert classifier.engine == "onnx" and classifier.classes == ["cat", "dog", "fox"]
    assert classifier.novelty is not None
    recorded = json.loads(card.read_text())["export"]
    assert recorded["file_sha256"] == hashlib.sha256(onnx.read_bytes()).hexdigest()
    assert recorded["novelty_sha256"] == hashlib.sha256(novelty.read_bytes()).hexdigest()


def test_a_damaged_onnx_file_says_to_export_again(tiny_run: Path, tmp_path: Path) -> None:
    run = fresh_copy(tiny_run, tmp_path / "run")
    petal.load(run)
    onnx = run / "model" / ONNX_FILE
    onnx.write_bytes(onnx.read_bytes()[:1000])
    with pytest.raises(PetalError, match="export it again with `petal export`"):
        petal.load(onnx)


@pytest.mark.parametrize("name", ["../../escaped", "/abs_escape", "..", ".", "a\\b", "a\0b"])
def test_a_class_name_that_is_not_a_folder_name_is_refused(
        tiny_run: Path, tmp_path: Path, name: str) -> None:
    def rename(card: dict) -> None:
        card["classes"][0] = name

    crafted = card_edited_copy(tiny_run, tmp_path / "crafted", rename)
    with pytest.raises(PetalError, match="usable as a folder name"):
        petal.load(crafted, engine="torch")
    with pytest.raises(PetalError, match="cannot name a folder"):
        NewLabels.open(tmp_path / "new", [name, "dog"], tmp_path)
    assert not (tmp_path / "new").exists()
    review = tmp_path / "review"
    review.mkdir()
    (review / "review.json").write_text(json.dumps({
        "root": str(tmp_path), "classes": [name, "dog"], "n_images": 2, "folds": 2,
        "oof_accuracy": 1.0}))
    (review / "review.csv").write_text("path,action\n")
    with pytest.raises(PetalError, match="not a petal review"):
        ReviewFolder(review)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crafted", "review"]


def test_a_class_folder_named_with_a_backslash_is_refused(image_folder: Path) -> None:
    (image_folder / "cat").rename(image_folder / "c\\at")
    with pytest.raises(PetalError, match="rename the folder"):
        scan_folder(image_folder, progress=False)


@pytest.mark.parametrize("command", [
    ["data", "review", "{data}", "--out", "{data}/rev"],
    ["data", "split", "{data}", "--out", "{data}/split.json"],
    ["train", "--data", "{data}", "--out", "{data}/run"],
    ["run", "--data", "{data}", "--out", "{data}"],
    ["lr-find", "--data", "{data}", "--out", "{data}/cat"],
    ["evaluate", "{run}", "--data", "{data}", "--out", "{data}/eval"],
])
def test_nothing_is_written_into_the_photo_folder(
        tiny_run: Path, image_folder: Path, command: list[str],
        capsys: pytest.CaptureFixture) -> None:
    before = sorted(image_folder.rglob("*"))
    args = [arg.format(data=image_folder, run=tiny_run) for arg in command]
    assert main([*args, "--no-progress"]) == 1
    one_error_line(capsys.readouterr().err, "is inside the data folder",
                   "petal never writes into your photos")
    assert sorted(image_folder.rglob("*")) == before


def test_resume_refuses_the_options_it_cannot_honour(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--resume", "runs/x", "--set", "epochs=30", "--lr", "0.5", "--model",
                 "resnet9", "--precision", "64-true", "--data", "/nonexistent", "--out",
                 "elsewhere", "--folds", "3", "--no-progress"]) == 1
    one_error_line(capsys.readouterr().err, "--resume continues runs/x as it was started",
                   "--data", "--model", "--set", "--out", "--lr", "--precision", "--folds")


@pytest.mark.parametrize("opset", [0, 1, 13, 999])
def test_an_opset_the_exporter_cannot_write_is_refused(
        tiny_run: Path, tmp_path: Path, opset: int, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "m.onnx"
    assert main(["export", str(tiny_run), "--out", str(out), "--opset", str(opset)]) == 1
    one_error_line(capsys.readouterr().err, f"--opset {opset}")
    assert not out.exists()


# ---- a second hostile pass over the fixes above


def test_a_data_folder_inside_the_run_folder_is_refused(tiny_run: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    """--out proj with the photos in proj/model: saving the model would replace them."""
    photos = shutil.copytree(tiny_run.parent / "data", tmp_path / "proj" / "model")
    before = sorted(photos.rglob("*"))
    for command in (["train", "--data", str(photos), "--out", str(tmp_path / "proj")],
                    ["run", "--data", str(photos), "--out", str(tmp_path)]):
        assert main([*command, "--no-progress"]) == 1
        one_error_line(capsys.readouterr().err, "is inside --out", "a folder of its own")
    assert sorted(photos.rglob("*")) == before


@pytest.mark.skipif(not _namespaces_work(), reason="needs unshare -rm (a bind mount in a "
                    "private mount namespace)")
def test_a_bind_mount_of_the_data_folder_is_the_data_folder(image_folder: Path,
                                                            tmp_path: Path) -> None:
    alias = tmp_path / "alias"
    alias.mkdir()
    script = ('mount --bind "$DATA" "$ALIAS" && "$PETAL" data split "$DATA" --out '
              '"$ALIAS/split.json" --no-progress')
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "DATA": str(image_folder),
                                                       "ALIAS": str(alias), "PETAL": str(PETAL)})
    assert done.returncode == 1, done.stderr
    one_error_line(done.stderr, "is inside the data folder")
    assert not (image_folder / "split.json").exists()


def test_resume_refuses_options_given_at_their_default(capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--resume", "runs/x", "--recipe", "fast-transfer", "--precision",
                 "auto", "--no-progress"]) == 1
    one_error_line(capsys.readouterr().err, "--recipe", "--precision")


@pytest.mark.parametrize("damage", ["card says no novelty", "TorchScript as model.onnx",
                                    "int8 as model.onnx"])
def test_an_export_of_another_kind_is_not_the_current_one(tiny_run: Path, tmp_path: Path,
                                                          damage: str) -> None:
    run = fresh_copy(tiny_run, tmp_path / "run")
    petal.load(run)
    onnx, card, novelty = _export_parts(run)
    if damage == "card says no novelty":
        written = json.loads(card.read_text())
        card.write_text(json.dumps({**written, "novelty": None}))
        novelty.unlink()
    elif damage == "TorchScript as model.onnx":
        assert main(["export", str(run), "--format", "torchscript", "--out", str(onnx)]) == 0
    else:
        assert main(["export", str(run), "--quantize", "--out", str(onnx)]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", PetalWarning)
        classifier = petal.load(run)
    assert classifier.engine == "onnx" and classifier.novelty is not None
    section = json.loads(card.read_text())["export"]
    assert section["format"] == "onnx" and "quantized" not in section


def test_a_persons_files_in_a_copy_folder_stay(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    one = write_image(photos / "a.jpg", seed=1)
    new = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos, copy=True)
    new.decide(new.photos / "a.jpg", hashlib.sha256(one.read_bytes()).hexdigest(), "label",
               "cat")
    (tmp_path / "new/cat/IMG-20240101.jpg").write_bytes(one.read_bytes())  # dates look like hex
    (tmp_path / "new/dog").mkdir()
    (tmp_path / "new/dog/scan-deadbeef.png").write_bytes(b"mine")
    NewLabels.open(tmp_path / "new", ["cat", "dog"], photos, copy=True)
    assert (tmp_path / "new/cat/IMG-20240101.jpg").is_file()
    assert (tmp_path / "new/dog/scan-deadbeef.png").read_bytes() == b"mine"


def test_a_photo_with_a_long_name_is_labelled_and_reopened(tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    long = write_image(photos / ("e" * 240 + ".jpg"), seed=2)
    new = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    new.decide(new.photos / long.name, hashlib.sha256(long.read_bytes()).hexdigest(), "label",
               "dog")
    again = NewLabels.open(tmp_path / "new", ["cat", "dog"], photos)
    assert list(again.rows) == [str(new.photos / long.name)]
    assert [p.resolve() for p in (tmp_path / "new/dog").iterdir()] == [long.resolve()]
    out = tmp_path / ("s" * 250 + ".json")  # a long --out name: its temporary name fits too
    atomic_write_bytes(out, b"{}")
    assert out.read_bytes() == b"{}"


@pytest.mark.parametrize("name", ["labels.csv", ".hidden"])
def test_a_class_that_is_not_a_class_folder_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(PetalError, match="cannot be a class folder"):
        NewLabels.open(tmp_path / "new", ["cat", name], tmp_path)


def test_names_that_are_not_utf8_are_read_written_and_shown(tiny_run: Path,
                                                            tmp_path: Path) -> None:
    """A Latin-1 file name (`caf\\xe9.jpg`), as an old archive unpacks it: evaluated, reviewed
    and shown on the pages without a traceback, and read back as the same name."""
    from petal.data.decisions import write_review_file
    from petal.data.review_sheet import ReviewSheet
    from petal.serve.local_page import named, shown

    data = shutil.copytree(tiny_run.parent / "data", tmp_path / "data")
    odd = os.fsdecode(b"caf\xe9.jpg")
    (data / "cat" / "cat0.jpg").rename(data / "cat" / odd)
    assert main(["evaluate", str(tiny_run), "--data", str(data), "--include-training",
                 "--out", str(tmp_path / "eval")]) == 0
    assert b"/cat/caf\xe9.jpg," in (tmp_path / "eval" / "predictions.csv").read_bytes()
    write_review_file(tmp_path / "review.csv", [{"path": f"cat/{odd}", "given": "cat",
                                                 "suggested": "dog", "score": 0.5}], [])
    assert [r["path"] for r in ReviewSheet.read(tmp_path / "review.csv").findings()] == [
        f"cat/{odd}"]
    assert shown(f"cat/{odd}") == "cat/caf\\xe9.jpg" and named(shown(f"cat/{odd}")) == \
        f"cat/{odd}"


@pytest.mark.parametrize("command", [
    ["explain", "{run}", "{photo}", "--out", "{data}/cat"],
    ["compare", "{photo}", "--models", "{run}", "--out", "{data}/cat/cmp.png"],
    ["predict", "{run}", "{photo}", "--figure", "{data}/cat/fig.png"],
    ["export", "{run}", "--out", "{data}/cat/x.onnx"],
])
def test_figures_and_files_of_a_model_stay_out_of_its_photos(
        tiny_run: Path, tmp_path: Path, command: list[str],
        capsys: pytest.CaptureFixture) -> None:
    data = tiny_run.parent / "data"
    photo = write_image(tmp_path / "x.jpg", seed=9)
    before = sorted(data.rglob("*"))
    assert main([arg.format(run=tiny_run, photo=photo, data=data) for arg in command]
                + ["--engine", "torch"] * (command[0] != "export")) == 1
    assert "is inside the data folder" in capsys.readouterr().err
    assert sorted(data.rglob("*")) == before
