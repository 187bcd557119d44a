"""Evaluation: metrics and figures on the model's own split, other folders, class mapping, TTA."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import petal
from conftest import FLOWERS, pattern, write_image
from petal.analysis.metrics import compute_metrics
from petal.cli import main
from petal.data.class_map import map_folders, match_class, parse_class_map
from petal.data.scan import scan_folder
from petal.errors import PetalError
from petal.jobs.evaluate import EvalSet, central_crops, decoded_squares, probabilities
from petal.report.figures import plot_worst_mistakes
from petal.stats import describe_accuracy, wilson_interval

REQUIRED = {"accuracy", "top_k_accuracy", "per_class", "confusion_matrix", "ece", "n_images",
            "class_mapping", "tta", "data", "skipped"}
FIGURES = ["confusion_matrix.png", "worst_mistakes.png", "reliability.png"]


def _cache(run: Path) -> list[str]:
    return ["--cache-dir", str(run.parent / "cache")]  # the fixture's own decoded cache


@pytest.fixture
def run_copy(tiny_run: Path, tmp_path: Path) -> Path:
    """tiny_run copied, so default output folders land in this test's tmp_path."""
    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("checkpoints", "eval*"))
    (tmp_path / "cache").symlink_to(tiny_run.parent / "cache")
    return copy


def _evaluate_json(args: list[str], capsys: pytest.CaptureFixture) -> dict:
    assert main(["evaluate", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def _assert_figures(folder: Path) -> None:
    for name in FIGURES:
        with Image.open(folder / name) as image:
            image.load()
            assert image.width > 300 and image.height > 150, name


def _direct_accuracy(run: Path, root: Path, labelled: list[tuple[str, str]]) -> float:
    predictions = petal.load(run).predict([str(root / path) for path, _ in labelled], top_k=1)
    return float(np.mean([p.label == label for p, (_, label) in zip(predictions, labelled)]))


def test_own_split(run_copy: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["evaluate", str(run_copy), *_cache(run_copy)]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "top-2 accuracy" in out and "ECE" in out
    assert "precision" in out and str(run_copy / "eval") in out
    metrics = json.loads((run_copy / "eval" / "metrics.json").read_text())
    assert REQUIRED <= metrics.keys()
    _assert_figures(run_copy / "eval")
    split = json.loads((run_copy / "split.json").read_text())
    card = json.loads((run_copy / "model" / "model.json").read_text())
    val = [(item["path"], item["label"]) for item in split["val"]]
    assert metrics["n_images"] == len(val) and metrics["tta"] is False
    assert metrics["class_mapping"] == {c: c for c in card["classes"]}
    assert metrics["accuracy"] == pytest.approx(_direct_accuracy(run_copy, Path(card["data"]), val))
    assert metrics["accuracy"] == pytest.approx(card["metrics"]["val_acc"], abs=1e-5)
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (3, 3) and matrix.sum() == len(val)
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / matrix.sum())
    assert [row["support"] for row in metrics["per_class"].values()] == list(matrix.sum(axis=1))


def test_eval_pixels_are_the_pixels_predict_sees(tiny_run: Path, tmp_path: Path) -> None:
    classifier = petal.load(tiny_run)
    root = tmp_path / "data"
    write_image(root / "a" / "small.jpg", seed=1)
    write_image(root / "a" / "large.jpg", seed=2, size=(331, 250))  # decoded at reduced scale
    write_image(root / "a" / "wide.png", seed=3, size=(120, 45))
    if FLOWERS.is_dir():
        (root / "a" / "photo.jpg").symlink_to(sorted((FLOWERS / "rose").iterdir())[0])
    index = scan_folder(root, progress=False)
    chosen = EvalSet(root, [(r.path, r.label, r.sha256) for r in index.images], {"a": "cat"}, [])
    squares = decoded_squares(chosen, classifier.spec.resize_size, tmp_path / "cache", False)
    expected = np.stack([classifier.prepare(root / r.path) for r in index.images])
    np.testing.assert_array_equal(central_crops(squares, classifier.spec.size), expected)


def test_tta_averages_image_and_mirror(tiny_run: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    classifier = petal.load(tiny_run)
    size = classifier.spec.resize_size
    squares = np.stack([np.asarray(pattern(seed, (size, size))) for seed in range(3)])
    crops = central_crops(squares, classifier.spec.size)
    expected = (classifier.answer(crops).probabilities
                + classifier.answer(crops[:, :, ::-1]).probabilities) / 2
    np.testing.assert_allclose(probabilities(classifier, squares, tta=True, progress=False),
                               expected, rtol=1e-6)
    metrics = _evaluate_json([str(tiny_run), "--tta", "--out", str(tmp_path / "tta"),
                              *_cache(tiny_run)], capsys)
    assert metrics["tta"] is True
    assert json.loads((tmp_path / "tta" / "metrics.json").read_text())["tta"] is True


def _plural_folder(tiny_run: Path, dest: Path) -> Path:
    """The tiny data's cats and dogs as Cats/ and dogs/, no foxes, plus a corrupt file."""
    source = tiny_run.parent / "data"
    shutil.copytree(source / "cat", dest / "Cats")
    shutil.copytree(source / "dog", dest / "dogs")
    (dest / "Cats" / "broken.jpg").write_bytes((source / "cat" / "cat0.jpg").read_bytes()[:200])
    return dest


def test_other_folder_plural_names_and_missing_class(tiny_run: Path, run_copy: Path,
                                                     tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    data = _plural_folder(tiny_run, tmp_path / "pets")
    assert main(["evaluate", str(run_copy), "--data", str(data), "--include-training",
                 *_cache(run_copy)]) == 0
    captured = capsys.readouterr()
    assert "Cats -> cat" in captured.out and "dogs -> dog" in captured.out
    assert "warning: 12 of the 16 images were used to train this model" in captured.out
    assert "skipped" in captured.err and "broken.jpg" in captured.err
    folder = run_copy / "eval-pets"
    metrics = json.loads((folder / "metrics.json").read_text())
    _assert_figures(folder)
    assert metrics["class_mapping"] == {"Cats": "cat", "dogs": "dog"}
    assert metrics["n_images"] == 16 and metrics["split"] is None
    assert [s["path"] for s in metrics["skipped"]] == ["Cats/broken.jpg"]
    fox = metrics["per_class"]["fox"]
    assert fox["support"] == 0 and fox["recall"] is None
    assert [sum(row) for row in metrics["confusion_matrix"]] == [8, 8, 0]
    labelled = [(p.relative_to(data).as_posix(), label)
                for folder, label in [("Cats", "cat"), ("dogs", "dog")]
                for p in sorted((data / folder).iterdir()) if p.name != "broken.jpg"]
    assert metrics["accuracy"] == pytest.approx(_direct_accuracy(run_copy, data, labelled))


def test_training_photos_are_left_out(tiny_run: Path, run_copy: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture) -> None:
    """The model's own training photos, found by content under any name, are not scored."""
    data = _plural_folder(tiny_run, tmp_path / "pets")
    split = json.loads((run_copy / "split.json").read_text())
    unseen = [(("Cats" if i["label"] == "cat" else "dogs") + "/" + Path(i["path"]).name,
               i["label"]) for i in split["val"] if i["label"] in ("cat", "dog")]
    metrics = _evaluate_json([str(run_copy), "--data", str(data), *_cache(run_copy)], capsys)
    assert metrics["training_images"] == {"found": 12, "included": False, "checked": True}
    assert metrics["n_images"] == len(unseen) == 4
    assert metrics["accuracy"] == pytest.approx(_direct_accuracy(run_copy, data, unseen))
    assert main(["evaluate", str(run_copy), "--data", str(data), *_cache(run_copy)]) == 0
    assert "Left out 12 photo(s) this model was trained on" in capsys.readouterr().out
    only_training = tmp_path / "seen"
    (only_training / "cat").mkdir(parents=True)
    for item in split["train"][:3]:
        shutil.copy(tiny_run.parent / "data" / item["path"], only_training / "cat")
    assert main(["evaluate", str(run_copy), "--data", str(only_training),
                 *_cache(run_copy)]) == 1
    assert "--include-training" in capsys.readouterr().err


def test_folder_matching_no_class(tiny_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    write_image(tmp_path / "pets" / "zebras" / "z.jpg", seed=5)
    write_image(tmp_path / "pets" / "cat" / "c.jpg", seed=6)
    assert main(["evaluate", str(tiny_run), "--data", str(tmp_path / "pets"),
                 "--out", str(tmp_path / "out"), *_cache(tiny_run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and "zebras" in err and "cat, dog, fox" in err
    assert "--class-map" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_class_map_pairs_and_file(tiny_run: Path, tmp_path: Path,
                                  capsys: pytest.CaptureFixture) -> None:
    data = tmp_path / "pets"
    shutil.copytree(tiny_run.parent / "data" / "cat", data / "kitties")
    shutil.copytree(tiny_run.parent / "data" / "fox", data / "Foxes")
    common = [str(tiny_run), "--data", str(data), "--out", str(tmp_path / "out"),
              *_cache(tiny_run)]
    metrics = _evaluate_json([*common, "--class-map", "kitties=cat"], capsys)
    assert metrics["class_mapping"] == {"Foxes": "fox", "kitties": "cat"}
    (tmp_path / "map.json").write_text(json.dumps({"kitties": "cat", "Foxes": "dog"}))
    metrics = _evaluate_json([*common, "--class-map", str(tmp_path / "map.json")], capsys)
    assert metrics["class_mapping"] == {"Foxes": "dog", "kitties": "cat"}
    assert metrics["per_class"]["fox"]["support"] == 0


@pytest.mark.parametrize("class_map, message", [
    ("kitties=lion", "lion"),
    ("kitties", "FOLDER=CLASS"),
])
def test_bad_class_map(tiny_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                       class_map: str, message: str) -> None:
    shutil.copytree(tiny_run.parent / "data" / "cat", tmp_path / "pets" / "kitties")
    assert main(["evaluate", str(tiny_run), "--data", str(tmp_path / "pets"), "--class-map",
                 class_map, "--out", str(tmp_path / "out"), *_cache(tiny_run)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error:") and message in err and "Traceback" not in err


def test_split_part_and_default_out(run_copy: Path, capsys: pytest.CaptureFixture) -> None:
    own_train = [str(run_copy), "--split", str(run_copy / "split.json"), "--part", "train"]
    assert main(["evaluate", *own_train, *_cache(run_copy)]) == 1  # not by default
    assert "--include-training" in capsys.readouterr().err
    metrics = _evaluate_json([*own_train, "--include-training", *_cache(run_copy)], capsys)
    split = json.loads((run_copy / "split.json").read_text())
    assert metrics["part"] == "train" and metrics["n_images"] == len(split["train"])
    assert Path(metrics["out"]) == run_copy / "eval-train"
    assert (run_copy / "eval-train" / "metrics.json").is_file()


def test_changed_data_is_refused(run_copy: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    card_file = run_copy / "model" / "model.json"
    data = tmp_path / "moved"
    shutil.copytree(json.loads(card_file.read_text())["data"], data)
    card = json.loads(card_file.read_text())
    card_file.write_text(json.dumps({**card, "data": str(data)}))
    victim = next(iter(json.loads((run_copy / "split.json").read_text())["val"]))["path"]
    write_image(data / victim, seed=999)
    assert main(["evaluate", str(run_copy), *_cache(run_copy)]) == 1
    assert "petal data split" in capsys.readouterr().err
    shutil.rmtree(data)
    assert main(["evaluate", str(run_copy), *_cache(run_copy)]) == 1
    assert "--data DIR" in capsys.readouterr().err


def test_standalone_model_folder(tiny_run: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture) -> None:
    model = tmp_path / "exported"
    shutil.copytree(tiny_run / "model", model)
    assert main(["evaluate", str(model), *_cache(tiny_run)]) == 1
    assert "split file" in capsys.readouterr().err  # ../split.json did not travel with it
    metrics = _evaluate_json([str(model), "--data", str(tiny_run.parent / "data"),
                              *_cache(tiny_run)], capsys)
    assert Path(metrics["out"]) == model / "eval-data" and metrics["n_images"] == 24


def test_match_class_forgives_case_and_plural() -> None:
    flowers = ["daisy", "dandelion", "rose", "sunflower", "tulip"]
    for folder, expected in [("roses", "rose"), ("Daisies", "daisy"), ("SUNFLOWERS", "sunflower"),
                             ("tulip", "tulip"), ("Dandelions", "dandelion"), ("lily", None)]:
        assert match_class(folder, flowers) == expected, folder
    assert match_class("rose", ["roses", "daisies"]) == "roses"
    assert match_class("daisy", ["roses", "daisies"]) == "daisies"
    assert match_class("fox", ["foxes", "glasses"]) == "foxes"
    assert match_class("Glass", ["foxes", "glasses"]) == "glasses"
    assert match_class("red rose", ["red_roses"]) == "red_roses"
    with pytest.raises(PetalError, match="--class-map"):
        match_class("Roses", ["ROSE", "rose"])


def test_class_map_parsing(tmp_path: Path) -> None:
    assert parse_class_map("a=cat, b = dog") == {"a": "cat", "b": "dog"}
    assert parse_class_map(None) == {} and parse_class_map({"a": "cat"}) == {"a": "cat"}
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(PetalError, match="JSON object"):
        parse_class_map(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(PetalError, match="not valid JSON"):
        parse_class_map(str(tmp_path / "broken.json"))
    assert map_folders(["KITTIES", "dogs"], ["cat", "dog"], {"kitties": "cat"}) == {
        "KITTIES": "cat", "dogs": "dog"}


def test_compute_metrics_by_hand() -> None:
    classes = ["a", "b", "c"]
    probs = np.array([[0.9, 0.1, 0.0], [0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.5, 0.2]],
                     dtype=np.float32)
    targets = np.array([0, 1, 1, 0])  # predicted a, a, b, b: 2 of 4 right; c never appears
    metrics = compute_metrics(probs, targets, classes, top_k=2)
    assert metrics["accuracy"] == 0.5 and metrics["top_k_accuracy"] == 1.0
    assert metrics["confusion_matrix"] == [[1, 1, 0], [1, 1, 0], [0, 0, 0]]
    assert metrics["per_class"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert metrics["per_class"]["c"] == {"precision": None, "recall": None, "f1": None,
                                         "support": 0}
    assert metrics["macro_avg"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5}
    confidence, correct = probs.max(axis=1), probs.argmax(axis=1) == targets
    bins = np.minimum((confidence * 15).astype(int), 14)
    ece = sum(abs(correct[bins == b].mean() - confidence[bins == b].mean()) * (bins == b).mean()
              for b in set(bins))
    assert metrics["ece"] == pytest.approx(ece, abs=1e-5)
    assert metrics["n_correct"] == 2
    assert metrics["accuracy_interval"] == pytest.approx(wilson_interval(2, 4), abs=1e-6)


@pytest.mark.parametrize(("correct", "n", "low", "high"), [
    (0, 10, 0.0, 0.2775), (5, 10, 0.2366, 0.7634), (10, 10, 0.7225, 1.0),
    (412, 431, 0.9322, 0.9716)])
def test_wilson_interval_against_published_values(correct: int, n: int, low: float,
                                                  high: float) -> None:
    # Newcombe (1998); 412 of 431 solved as the quadratic (p^ - p)^2 = z^2 p (1 - p) / n
    assert wilson_interval(correct, n) == pytest.approx((low, high), abs=1e-4)


def test_accuracy_is_said_with_its_images_and_small_sets_with_an_interval() -> None:
    assert describe_accuracy(412, 431) == "95.6 % (412 of 431 images)"
    assert describe_accuracy(23, 26) == "88.5 % (23 of 26 images; 95 % interval 71.0-96.0 %)"


def test_no_mistakes_figure(tmp_path: Path) -> None:
    path = plot_worst_mistakes([], tmp_path / "worst.png", n_images=12, n_mistakes=0)
    with Image.open(path) as image:
        assert image.width > 300


def test_flowers_end_to_end(flowers_run: Path, tmp_path: Path,
                            capsys: pytest.CaptureFixture) -> None:
    metrics = _evaluate_json([str(flowers_run), "--out", str(tmp_path / "eval"),
                              *_cache(flowers_run)], capsys)
    card = json.loads((flowers_run / "model" / "model.json").read_text())
    split = json.loads((flowers_run / "split.json").read_text())
    val = [(item["path"], item["label"]) for item in split["val"]]
    assert metrics["n_images"] == card["metrics"]["n_val"] == len(val)
    assert metrics["accuracy"] == pytest.approx(card["metrics"]["val_acc"], abs=1e-5)
    assert metrics["accuracy"] == pytest.approx(
        _direct_accuracy(flowers_run, Path(card["data"]), val))
    assert set(metrics["per_class"]) == set(card["classes"])
    _assert_figures(tmp_path / "eval")
