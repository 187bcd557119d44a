"""Prediction: the Python API, `petal predict` outputs and skipped files, figures, `compare`."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import petal
from conftest import FLOWERS
from petal.cli import main
from petal.data.image import ImageLoadError, load_image
from petal.stats import softmax


@pytest.fixture
def photos(tiny_run: Path, tmp_path: Path) -> Path:
    """A folder of tiny photos to predict: two at the top, two in a sub-folder."""
    source = tiny_run.parent / "data"
    folder = tmp_path / "photos"
    (folder / "more").mkdir(parents=True)
    for name, target in [("cat/cat0.jpg", "b.jpg"), ("dog/dog1.jpg", "a.jpg"),
                         ("fox/fox2.jpg", "more/c.jpg"), ("cat/cat3.jpg", "more/d.jpg")]:
        shutil.copy(source / name, folder / target)
    return folder


def _expected(run: Path, files: list[Path], top_k: int) -> list[dict]:
    return [p.to_json() for p in petal.load(run).predict([str(f) for f in files], top_k=top_k)]


def _sorted_files(folder: Path) -> list[Path]:
    return [folder / "a.jpg", folder / "b.jpg", folder / "more" / "c.jpg",
            folder / "more" / "d.jpg"]


def test_api_round_trip(tiny_run: Path) -> None:
    classifier = petal.load(tiny_run)
    card = json.loads((tiny_run / "model" / "model.json").read_text())
    assert classifier.classes == card["classes"]
    path = tiny_run.parent / "data" / "fox" / "fox1.jpg"
    from_path = classifier.predict(path, top_k=3)
    from_pil = classifier.predict(Image.open(path), top_k=3)
    from_array = classifier.predict(np.asarray(Image.open(path).convert("RGB")), top_k=3)
    for other in (from_pil, from_array):
        assert (other.labels, other.probabilities) == (from_path.labels, from_path.probabilities)
    assert from_path.source == str(path) and sorted(from_path.labels) == card["classes"]
    assert sum(from_path.probabilities) == pytest.approx(1, abs=1e-5)
    many = classifier.predict([path, str(path)], top_k=1)
    assert isinstance(many, list) and len(many) == 2 and len(many[0].labels) == 1
    assert many[0].probabilities == many[1].probabilities
    assert many[0].probabilities == pytest.approx(from_path.probabilities[:1])  # batch of 2 vs 1


def test_api_round_trip_on_a_photo(tiny_run: Path) -> None:
    """A large JPEG: the decoded array equals the file when decoded the way petal decodes it."""
    if not FLOWERS.is_dir():
        pytest.skip(f"the flowers data set is not at {FLOWERS}")
    classifier = petal.load(tiny_run)
    photo = sorted((FLOWERS / "tulip").iterdir())[0]
    from_path = classifier.predict(photo)
    from_pil = classifier.predict(Image.open(photo))
    array = np.asarray(load_image(photo, min_size=classifier.spec.resize_size))
    from_array = classifier.predict(array)
    assert from_pil.probabilities == from_path.probabilities == from_array.probabilities


@pytest.mark.parametrize("array", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 4), np.uint8),
                                   np.zeros((8, 8, 3), np.float32)])
def test_bad_array_is_refused(tiny_run: Path, array: np.ndarray) -> None:
    with pytest.raises(ImageLoadError, match="H x W x 3 uint8"):
        petal.load(tiny_run).predict(array)


def test_predict_table(tiny_run: Path, photos: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["predict", str(tiny_run), str(photos), "--top-k", "3", "--no-reject"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:3] == ["path", "label", "prob"]
    assert lines[-1].startswith("Predicted 4 image(s) (0 unknown), skipped 0")
    files = _sorted_files(photos)
    for line, expected in zip(lines[1:-1], _expected(tiny_run, files, 3), strict=True):
        cells = line.split()
        assert cells[0] == expected["source"]
        assert cells[1::2] == [entry["label"] for entry in expected["top_k"]]
        assert [float(c.rstrip("%")) for c in cells[2::2]] == pytest.approx(
            [100 * entry["probability"] for entry in expected["top_k"]], abs=0.051)


def test_predict_json(tiny_run: Path, photos: Path, capsys: pytest.CaptureFixture) -> None:
    files = _sorted_files(photos)
    assert main(["predict", str(tiny_run), str(photos), "--json", "--top-k", "2"]) == 0
    assert json.loads(capsys.readouterr().out) == _expected(tiny_run, files, 2)


def test_predict_csv(tiny_run: Path, photos: Path, capsys: pytest.CaptureFixture) -> None:
    files = _sorted_files(photos)
    assert main(["predict", str(tiny_run), *map(str, files[:2]), "--csv", "--top-k", "3"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 6 and [r["rank"] for r in rows[:3]] == ["1", "2", "3"]
    expected = [(item["source"], rank, entry["label"], entry["probability"])
                for item in _expected(tiny_run, files[:2], 3)
                for rank, entry in enumerate(item["top_k"], 1)]
    for row, (source, rank, label, probability) in zip(rows, expected):
        assert (row["path"], int(row["rank"]), row["label"]) == (source, rank, label)
        assert float(row["probability"]) == pytest.approx(probability, abs=1e-6)


def test_unreadable_files_are_skipped(tiny_run: Path, photos: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    (photos / "broken.jpg").write_bytes((photos / "a.jpg").read_bytes()[:150])
    (photos / "notes.txt").write_text("not a photo")
    assert main(["predict", str(tiny_run), str(photos), "--json",
                 "--batch-size", "2"]) == 0
    captured = capsys.readouterr()
    sources = [item["source"] for item in json.loads(captured.out)]
    assert sources == [str(f) for f in _sorted_files(photos)]
    assert f"skipped {photos / 'broken.jpg'}:" in captured.err
    assert f"skipped {photos / 'notes.txt'}: not an image" in captured.err
    assert "skipped 2" in captured.err


def test_special_files_and_strips_are_skipped(tiny_run: Path, photos: Path) -> None:
    """A named pipe, a symlink loop and a 20000 x 1 strip: reported, the rest predicted."""
    os.mkfifo(photos / "pipe.jpg")
    (photos / "loop1.jpg").symlink_to(photos / "loop2.jpg")
    (photos / "loop2.jpg").symlink_to(photos / "loop1.jpg")
    Image.new("RGB", (20_000, 1)).save(photos / "strip.png")
    petal_cli = Path(sys.executable).with_name("petal")
    done = subprocess.run([petal_cli, "predict", str(tiny_run), str(photos), "--json"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert [p["source"] for p in json.loads(done.stdout)] == [str(f) for f in
                                                              _sorted_files(photos)]
    for name, why in [("pipe.jpg", "not a regular file"), ("loop1.jpg", "symbolic links"),
                      ("loop2.jpg", "symbolic links"), ("strip.png", "a strip")]:
        assert f"skipped {photos / name}: " in done.stderr and why in done.stderr, name
    assert "skipped 4" in done.stderr and "Traceback" not in done.stderr


def test_nothing_readable_exits_1(tiny_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "notes.txt").write_text("not a photo")
    assert main(["predict", str(tiny_run), str(tmp_path / "notes.txt"),
                 str(tmp_path / "missing.jpg")]) == 1
    err = capsys.readouterr().err
    assert "skipped" in err and "file does not exist" in err
    assert "error: no image could be predicted" in err and "Traceback" not in err


def _assert_png(path: Path, min_width: int = 200) -> None:
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width >= min_width


def test_prediction_figure(tiny_run: Path, photos: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture) -> None:
    figure = tmp_path / "figures" / "predictions.png"
    assert main(["predict", str(tiny_run), str(photos), "--figure", str(figure)]) == 0
    assert str(figure) in capsys.readouterr().out
    _assert_png(figure)


def test_compare(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    other = tmp_path / "other-run"
    shutil.copytree(tiny_run / "model", other)  # a standalone model folder
    image = tiny_run.parent / "data" / "dog" / "dog2.jpg"
    out = tmp_path / "compare.png"
    assert main(["compare", str(image), "--models", str(tiny_run), str(other),
                 "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    expected = petal.load(tiny_run).predict(image, top_k=3)
    assert lines[0].startswith(f"{tiny_run.name} (resnet9): {expected.label} ")
    assert lines[1].startswith("other-run (resnet9):") and len(lines[1].split(",")) == 3
    _assert_png(out, min_width=600)


def test_compare_unreadable_image(tiny_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "x.jpg").write_bytes(b"not a jpeg")
    assert main(["compare", str(tmp_path / "x.jpg"), "--models", str(tiny_run)]) == 1
    assert "error: cannot use" in capsys.readouterr().err


@pytest.mark.parametrize("verb", ["predict", "evaluate", "compare"])
def test_bad_model_folders(verb: str, tiny_run: Path, tmp_path: Path,
                           capsys: pytest.CaptureFixture) -> None:
    image = str(tiny_run.parent / "data" / "cat" / "cat0.jpg")
    foreign = tmp_path / "foreign"
    shutil.copytree(tiny_run / "model", foreign)
    card = json.loads((foreign / "model.json").read_text())
    (foreign / "model.json").write_text(json.dumps({**card, "format": "petal-model/0"}))
    for model, message in [(tmp_path / "nowhere", "does not exist"),
                           (foreign, "petal-model/0")]:
        args = {"predict": ["predict", str(model), image],
                "evaluate": ["evaluate", str(model)],
                "compare": ["compare", image, "--models", str(model)]}[verb]
        assert main(args) == 1
        err = capsys.readouterr().err
        assert err.startswith("error:") and message in err and "Traceback" not in err


def _crafted(card: dict) -> dict[str, object]:
    """Hand-edited model.json contents, each of which must be refused with a clear message."""
    arch = card["architecture"]
    return {
        "a list": ([card], "holds a JSON list"),
        "nested deep": ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        "fewer classes": ({**card, "classes": card["classes"][:-1]}, "class names are given"),
        "huge num_classes": ({**card, "classes": [f"c{i}" for i in range(10**6)],
                              "architecture": {**arch, "num_classes": 10**6}}, "classes must be"),
        "huge input": ({**card, "input": {**card["input"], "size": 10**9}}, "input size"),
        "tiny crop_pct": ({**card, "input": {**card["input"], "crop_pct": 1e-6}}, "crop_pct"),
        "wider network": ({**card, "architecture": {**arch, "options": {"width": 64.0}}},
                          "does not hold the network"),
        "split elsewhere": ({**card, "split": "/etc/passwd"}, "split '/etc/passwd'"),
        "duplicate classes": ({**card, "classes": [card["classes"][0]] * len(card["classes"])},
                              "distinct names"),
        "mirror not a bool": ({**card, "input": {**card["input"], "mirror": "yes"}},
                              "mirror must be true or false"),
    }


@pytest.mark.parametrize("case", ["a list", "nested deep", "fewer classes", "huge num_classes",
                                  "huge input", "tiny crop_pct", "wider network",
                                  "split elsewhere", "duplicate classes",
                                  "mirror not a bool"])
def test_crafted_model_cards_are_refused(case: str, tiny_run: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    crafted = tmp_path / "crafted"
    shutil.copytree(tiny_run / "model", crafted)
    content, message = _crafted(json.loads((crafted / "model.json").read_text()))[case]
    text = content if isinstance(content, str) else json.dumps(content)
    (crafted / "model.json").write_text(text)
    image = str(tiny_run.parent / "data" / "cat" / "cat0.jpg")
    assert main(["predict", str(crafted), image]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_model_card_that_is_a_named_pipe(tiny_run: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture) -> None:
    crafted = tmp_path / "crafted"
    shutil.copytree(tiny_run / "model", crafted)
    (crafted / "model.json").unlink()
    os.mkfifo(crafted / "model.json")
    image = str(tiny_run.parent / "data" / "cat" / "cat0.jpg")
    assert main(["predict", str(crafted), image]) == 1  # no writer: a blocking open would hang
    assert "neither a model folder" in capsys.readouterr().err


def test_to_input_matches_torchvision_normalize() -> None:
    """The fast NumPy preprocessing equals ToTensor + Normalize with the spec's mean and std."""
    import torch
    from torchvision.transforms import v2

    from petal.inference.preprocess import to_input
    from petal.models.spec import InputSpec

    spec = InputSpec(size=8, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    images = np.random.default_rng(0).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    normalize = v2.Compose([v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize(spec.mean, spec.std)])
    expected = normalize(torch.from_numpy(images).permute(0, 3, 1, 2)).numpy()
    actual = to_input(images, spec)
    assert actual.shape == (2, 3, 8, 8) and actual.flags.c_contiguous
    np.testing.assert_allclose(actual, expected, atol=1e-5)


# --- a model trained with a mirrored view answers with it, everywhere -------------------------

@pytest.fixture(scope="module")
def mirror_run(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny ResNet9 recipe with tta_flip: validation averaged each image with its mirror."""
    from conftest import _fit

    out = tmp_path_factory.mktemp("mirror") / "run"
    return _fit(tiny_run.parent / "data", out, ["width=0.125", "input_size=32", "batch_size=4",
                                                 "epochs=2", "tta_flip=true"])


def test_mirror_model_answers_as_it_was_validated(mirror_run: Path, tiny_run: Path,
                                                  tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    import torch

    from petal.inference.export import export
    from petal.inference.model_folder import load_model
    from petal.inference.preprocess import to_input

    card = json.loads((mirror_run / "model" / "model.json").read_text())
    assert card["input"]["mirror"] is True
    # evaluate (no --tta) scores what predict delivers, and that is the card's figure
    assert main(["evaluate", str(mirror_run), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["mirror"] is True and metrics["tta"] is False
    assert metrics["accuracy"] == pytest.approx(card["metrics"]["val_acc"], abs=1e-6)
    # predict's probabilities are the mean over the photo and its mirror, calibrated
    photos = sorted((tiny_run.parent / "data").rglob("*.jpg"))[:5]
    classifier = petal.load(mirror_run)
    arrays = np.stack([classifier.prepare(p) for p in photos])
    network, _ = load_model(mirror_run)
    with torch.inference_mode():
        both = [network(torch.from_numpy(to_input(a, classifier.spec))).softmax(1).numpy()
                for a in (arrays, arrays[:, :, ::-1])]
    calibrated = softmax(np.log((both[0] + both[1]) / 2) / card["calibration"]["temperature"])
    assert np.allclose(classifier.answer(arrays).probabilities, calibrated, atol=1e-5)
    # the exported ONNX graph carries the mirror: the same answer without torch's help
    onnx_model = petal.load(export(mirror_run, out=tmp_path / "m.onnx").path)
    assert np.allclose(onnx_model.answer(arrays).probabilities,
                       classifier.answer(arrays).probabilities, atol=1e-4)
