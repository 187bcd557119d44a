"""Explanations: class activation maps that point at what decides the class, the same from
torch and from an exported ONNX file, and clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import petal
from conftest import FLOWERS
from petal.cli import main
from petal.inference.explain import heat_maps, overlays
from petal.inference.export import export
from petal.inference.model_folder import ModelCard, save_model_folder
from petal.models import architecture_config, build_model

QUADRANTS = {"top_left": (0, 0), "bottom_right": (1, 1)}  # the class is where the patch is
SIDE = 64


def _patch_photo(path: Path, quadrant: tuple[int, int], seed: int) -> Path:
    """Grey noise with a white 14 px square somewhere inside one quadrant."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(60, 140, (SIDE, SIDE, 3)).astype(np.uint8)
    top, left = (q * SIDE // 2 + rng.integers(2, SIDE // 2 - 16) for q in quadrant)
    pixels[top:top + 14, left:left + 14] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def _peak_quadrant(heat: np.ndarray) -> tuple[int, int]:
    half = heat.shape[0] // 2
    sums = {(r, c): heat[r * half:(r + 1) * half, c * half:(c + 1) * half].sum()
            for r in (0, 1) for c in (0, 1)}
    return max(sums, key=sums.get)


@pytest.fixture(scope="module")
def quadrant_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from petal.training.fit import TrainRequest
    from petal.training.orchestrator import train_model
    from petal.training.recipes import get_recipe

    root = tmp_path_factory.mktemp("quadrants")
    for c, (name, quadrant) in enumerate(QUADRANTS.items()):
        for i in range(30):
            _patch_photo(root / "data" / name / f"{i}.png", quadrant, 100 * c + i)
        for i in range(8):
            _patch_photo(root / "test" / name / f"{i}.png", quadrant, 10_000 + 100 * c + i)
    recipe = get_recipe("fast-resnet9", [f"input_size={SIDE}", "batch_size=16", "epochs=8",
                                         "flip=false", "tta_flip=false"])
    train_model(TrainRequest(data=root / "data", recipe=recipe, out=root / "run",
                             cache_dir=str(root / "cache")), folds=0, progress=False)
    return root / "run"


def test_the_map_points_at_the_patch_that_decides_the_class(quadrant_run: Path) -> None:
    classifier = petal.load(quadrant_run)
    hits, total = 0, 0
    for name, quadrant in QUADRANTS.items():
        photos = sorted((quadrant_run.parent / "test" / name).iterdir())
        arrays = np.stack([classifier.prepare(p) for p in photos])
        answer = heat_maps(classifier, arrays, classifier.classes.index(name))
        hits += sum(_peak_quadrant(h) == quadrant for h in answer.heat)
        total += len(photos)
    assert hits >= 0.8 * total, f"{hits} of {total} maps peak where the patch is"


def test_explain_cli_writes_one_figure_per_image(quadrant_run: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    photos = sorted((quadrant_run.parent / "test" / "top_left").iterdir())[:2]
    out = tmp_path / "explained"
    assert main(["explain", str(quadrant_run), *map(str, photos), "--out", str(out),
                 "--class", "bottom_right"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["0.png", "1.png"]
    assert "where it looked for bottom_right" in capsys.readouterr().out
    figure = tmp_path / "gallery.png"
    assert main(["predict", str(quadrant_run), *map(str, photos), "--figure", str(figure),
                 "--explain"]) == 0
    assert figure.stat().st_size > 10_000


def test_figures_of_images_with_one_name_do_not_replace_each_other(
        quadrant_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    photo = next((quadrant_run.parent / "test" / "top_left").iterdir())
    images = [tmp_path / "img" / "daisy.jpg", tmp_path / "img2" / "daisy.jpg",
              tmp_path / "img" / "daisy.png", tmp_path / "img" / "Daisy.jpg"]
    for image in images:
        image.parent.mkdir(exist_ok=True)
        Image.open(photo).save(image)
    out = tmp_path / "explained"
    assert main(["explain", str(quadrant_run), *map(str, images), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["Daisy-4.png", "daisy-2.png", "daisy-3.png",
                                                     "daisy.png"]
    printed = capsys.readouterr().out
    for image, name in zip(images, ["daisy", "daisy-2", "daisy-3", "Daisy-4"]):
        assert f"{image}: " in printed and f"-> {out / name}.png" in printed


@pytest.mark.parametrize(("args", "message"), [
    (["--class", "hexagon"], "unknown class 'hexagon'"),
    ([], "no image could be explained"),
])
def test_bad_input_is_an_error_line(quadrant_run: Path, tmp_path: Path, args: list[str],
                                    message: str, capsys: pytest.CaptureFixture) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("not pixels\n")
    assert main(["explain", str(quadrant_run), str(notes), "--out", str(tmp_path / "x"),
                 *args]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[-1].startswith("error: ") and message in err
    assert main(["predict", str(quadrant_run), str(notes), "--explain"]) == 1
    assert "--figure" in capsys.readouterr().err


def _model_folder(name: str, folder: Path, size: int = 64) -> Path:
    network, spec = build_model(name, 2, weights=None, input_size=size)
    card = ModelCard(architecture_config(name, 2, size), ["a", "b"], spec)
    return save_model_folder(folder, network.eval(), card)


def test_other_heads_are_explained_by_grad_cam_in_torch(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    model = _model_folder("mobilenet_v3_small", tmp_path / "model")  # an MLP head
    photo = _patch_photo(tmp_path / "p.png", (0, 0), 1)
    classifier = petal.load(model)
    explanation = heat_maps(classifier, np.stack([classifier.prepare(photo)] * 2),
                            target=1)
    assert explanation.heat.shape == (2, 64, 64) and (explanation.explained == 1).all()
    assert main(["explain", str(model), str(photo), "--out", str(tmp_path / "x")]) == 0
    onnx_path = export(model, out=tmp_path / "m.onnx").path  # no maps in the graph
    assert main(["explain", str(onnx_path), str(photo), "--out", str(tmp_path / "y")]) == 1
    assert "no class activation map" in capsys.readouterr().err


def test_a_network_with_no_feature_map_says_so(tmp_path: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    model = _model_folder("timm:vit_tiny_patch16_224", tmp_path / "model")
    photo = _patch_photo(tmp_path / "p.png", (0, 0), 1)
    assert main(["explain", str(model), str(photo)]) == 1
    assert "no class activation map" in capsys.readouterr().err


def _correlations(first: np.ndarray, second: np.ndarray) -> list[float]:
    return [float(np.corrcoef(a.ravel(), b.ravel())[0, 1]) for a, b in zip(first, second)]


@pytest.mark.parametrize("model", ["resnet9", "efficientnet_lite0"])
def test_onnx_maps_match_torch_on_real_photos(model: str, flowers_run: Path,
                                              tmp_path: Path) -> None:
    if model == "resnet9":
        folder = flowers_run
    else:  # ImageNet weights with a new head: a real trunk's feature maps
        network, spec = build_model(model, 5, weights="imagenet", input_size=128)
        card = ModelCard(architecture_config(model, 5, 128), list("abcde"), spec)
        folder = save_model_folder(tmp_path / "model", network.eval(), card)
    onnx_path = export(folder, out=tmp_path / "model.onnx").path
    photos = sorted(FLOWERS.rglob("*.jpg"))[::700][:6]
    torch_classifier, onnx_classifier = petal.load(folder), petal.load(onnx_path)
    arrays = np.stack([torch_classifier.prepare(p) for p in photos])
    ours, theirs = heat_maps(torch_classifier, arrays), heat_maps(onnx_classifier, arrays)
    assert (ours.explained == theirs.explained).all()
    assert min(_correlations(ours.heat, theirs.heat)) > 0.99
    assert overlays(onnx_classifier, arrays[:1])[0].shape == arrays[0].shape
