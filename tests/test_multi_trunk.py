"""Models of several pretrained trunks (`a+b@size`), and any trunk in the fast path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
import safetensors.torch
import timm
import torch
import torchvision

import petal
from conftest import COLOURS, colour_photos, pattern
from petal.cli import main
from petal.errors import PetalError
from petal.inference.explain import heat_maps
from petal.inference.export import export
from petal.inference.model_folder import load_model
from petal.models import architecture_config, build_model, cam_layers
from petal.models.features import AnswerWithFeatures
from petal.models.multi_trunk import NORM_EPS, MultiTrunk
from petal.serve.app import ServeOptions, create_app
from petal.serve.served import load_models
from petal.serve.server import BackgroundServer
from petal.training.cut import cut_trunks
from petal.training.fit import TrainRequest
from petal.training.orchestrator import train_model
from petal.training.recipes import get_recipe

TWO = "efficientnet_lite0@64+efficientnet_lite1@48"  # small sizes: seconds on a CPU
THREE = "efficientnet_lite0@64+efficientnet_lite1@48+efficientnet_lite2@56"


def train_colours(root: Path, model: str, cache: Path, *overrides: str,
                  weights: str | None = None) -> Path:
    """fast-transfer of `model` on noisy red and blue squares (2 epochs, one split)."""
    if not (root / "data").is_dir():
        for name, rgb in COLOURS.items():
            colour_photos(root / "data", name, rgb, 20, side=48)
    run = root / f"run-{len(list(root.glob('run-*')))}"
    recipe = get_recipe("fast-transfer", ["epochs=2", "batch_size=8", *overrides])
    train_model(TrainRequest(data=root / "data", recipe=recipe, out=run, model=model,
                             weights=weights, cache_dir=str(cache)), folds=0, progress=False)
    return run


@pytest.fixture(scope="module")
def multi_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("multi")
    return train_colours(root, TWO, root / "cache")


@pytest.fixture(scope="module")
def multi_onnx(multi_run: Path) -> Path:
    """The model exported once (the export of two trunks takes about half a minute)."""
    return export(multi_run, out=multi_run.parent / "m.onnx").path


def test_names_are_resolved_with_each_trunk_size() -> None:
    config = architecture_config("efficientnet_lite0+EfficientNet_Lite2@300", 3)
    assert config["name"] == "efficientnet_lite0@224+efficientnet_lite2@300"
    assert config["input_size"] == 300  # the shared crop: the largest trunk's
    spec = petal.models.input_spec(config["name"])
    assert (spec.size, spec.mean, spec.std) == (300, (0, 0, 0), (1, 1, 1))
    assert architecture_config(config["name"], 3) == config  # canonical names are stable


@pytest.mark.parametrize(("name", "says"), [
    ("efficientnet_lite0+resnet34", "timm:resnet50"),
    ("efficientnet_lite0@big+efficientnet_lite1", "NAME@SIZE"),
    ("efficientnet_lite0+", "NAME@SIZE"),
    ("efficientnet_lite0@8+efficientnet_lite1", "32 to"),
    ("efficientnet_lite0@288", "--set input_size"),
    ("efficientnet_lite0+efficientnet_lite9", "Did you mean"),
    ("+".join(["efficientnet_lite0"] * 9), "more than 8 trunks"),
])
def test_bad_names_are_refused(name: str, says: str) -> None:
    with pytest.raises(PetalError, match=says):
        architecture_config(name, 3)


def test_a_weights_file_is_refused_for_several_trunks(tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    safetensors.torch.save_file({"x": torch.zeros(1)}, str(weights))
    with pytest.raises(PetalError, match="each trunk's ImageNet weights"):
        build_model(TWO, 3, weights=weights)


def test_the_network_is_its_cut_parts_and_its_maps_sum_to_the_scores() -> None:
    torch.manual_seed(0)
    model, spec = build_model("efficientnet_lite0@64+efficientnet_lite1@64", 4,
                              weights="imagenet")
    model.eval()
    images = torch.rand(3, 3, spec.size, spec.size)
    trunks, top = cut_trunks(model, "conv_head")
    with torch.inference_mode():
        expected = model(images)
        stored = [t.trunk(t.prepare(images)) for t in trunks]
        assert torch.allclose(top.eval()(stored), expected, atol=1e-4)
        logits, features, maps = AnswerWithFeatures(model, spec, cam_layers(
            "efficientnet_lite0@64+efficientnet_lite1@64", model))(images)
        pooled = [t(images) for t in model.trunks]
    assert torch.allclose(logits, expected, atol=1e-5)
    assert features.shape == (3, sum(t.features for t in model.trunks))
    # each trunk's map averages to its share of the score, up to the standardisation's shift
    weight, bias = model.classifier.weight, model.classifier.bias
    shift, start = bias.expand(3, -1).clone(), 0
    for vector in pooled:
        width = vector.shape[1]
        mean = vector.mean(1, keepdim=True)
        scale = (vector.var(1, unbiased=False, keepdim=True) + NORM_EPS).rsqrt()
        shift -= (mean * scale) * weight[:, start:start + width].sum(1)
        start += width
    assert torch.allclose(maps.mean((2, 3)) + shift, logits, atol=1e-3)


def test_a_trained_model_of_two_trunks_answers_alike_everywhere(multi_run: Path,
                                                                multi_onnx: Path) -> None:
    card = petal.load(multi_run).card
    assert card.architecture["name"] == TWO and isinstance(load_model(multi_run)[0], MultiTrunk)
    assert card.novelty is not None and card.accuracy["n"] > 0
    onnx_file = multi_onnx
    photos = sorted((multi_run.parent / "data").rglob("*.png"))[::7]
    by_torch, by_onnx = petal.load(multi_run), petal.load(onnx_file)
    arrays = np.stack([by_torch.prepare(photo) for photo in photos])
    said_torch, said_onnx = by_torch.answer(arrays), by_onnx.answer(arrays)
    assert np.allclose(said_torch.probabilities, said_onnx.probabilities, atol=1e-4)
    assert np.allclose(said_torch.novelty, said_onnx.novelty, atol=1e-4)
    assert said_torch.maps is not None and np.allclose(said_torch.maps, said_onnx.maps,
                                                       atol=1e-3)
    heat = heat_maps(by_onnx, arrays).heat
    assert heat.shape == (len(photos), card.input.size, card.input.size) and heat.max() > 0
    right = said_torch.probabilities.argmax(1) == [card.classes.index(p.parent.name)
                                                   for p in photos]
    assert right.mean() >= 0.75  # red against blue: an easy task even after two epochs


def test_the_exported_model_of_two_trunks_runs_without_torch(multi_run: Path,
                                                             multi_onnx: Path) -> None:
    onnx_file = multi_onnx
    photo = sorted((multi_run.parent / "data").rglob("*.png"))[0]
    code = (f"import sys, petal\nprint(petal.load({str(onnx_file)!r}).predict({str(photo)!r}))"
            "\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert "blue" in done.stdout or "red" in done.stdout


def test_a_model_of_two_trunks_is_served_and_explained(multi_run: Path, tmp_path: Path) -> None:
    models = load_models([f"two={multi_run}"])
    photo = tmp_path / "p.jpg"
    pattern(3, size=(90, 70)).save(photo)
    with BackgroundServer(create_app(models, ServeOptions())) as url:
        with photo.open("rb") as handle:
            answer = httpx.post(f"{url}/api/predict?explain=true", files={"file": handle},
                                timeout=60)
    assert answer.status_code == 200, answer.text
    said = answer.json()["predictions"][0]
    assert said["top_k"][0]["label"] in ("red", "blue") and np.isfinite(said["novelty"])
    assert said["explanation"].startswith("data:image/png;base64,")
    assert main(["explain", str(multi_run), str(photo), "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "p.png").is_file()


def test_adding_a_trunk_computes_only_its_features(multi_run: Path) -> None:
    root = multi_run.parent
    cache = root / "cache" / "features"
    before = {p.name for p in cache.iterdir()}
    train_colours(root, THREE, root / "cache")
    added = {p.name for p in cache.iterdir()} - before
    assert len(added) == 1  # Lite2's; Lite0's and Lite1's are read from the cache


@pytest.mark.parametrize(("name", "trains_from"), [("timm:test_efficientnet", "conv_head"),
                                                   ("timm:test_convnext", "classifier"),
                                                   ("timm:test_vit", "classifier"),
                                                   ("resnet18", "fc")])
def test_any_trunk_with_a_weights_file_trains_in_the_fast_path(
        tmp_path: Path, capsys: pytest.CaptureFixture, name: str, trains_from: str) -> None:
    """A user's own weights (made here: timm's tiny test networks and torchvision's ResNet18,
    randomly initialised and saved with their ImageNet-sized head, as safetensors and as a
    torch.save state dict) in fast-transfer's cached path."""
    if name.startswith("timm:"):
        weights = tmp_path / "weights.safetensors"
        safetensors.torch.save_file(timm.create_model(name[5:]).state_dict(), str(weights))
    else:
        weights = tmp_path / "weights.pth"
        torch.save(torchvision.models.resnet18().state_dict(), weights)
    run = train_colours(tmp_path, name, tmp_path / "cache", weights=str(weights))
    said = capsys.readouterr().out
    assert (f"it trains from {trains_from!r}" in said) == (trains_from != "conv_head")
    assert (tmp_path / "cache" / "features").is_dir()
    card = petal.load(run).card
    assert card.architecture["name"] == name
    assert petal.load(run).predict(str(sorted((tmp_path / "data").rglob("*.png"))[0])).label \
        in ("red", "blue")


def test_cached_mirrored_views_of_several_trunks_are_refused_before_any_work(
        tmp_path: Path) -> None:
    with pytest.raises(PetalError, match="tta_flip with several trunks"):
        train_colours(tmp_path, TWO, tmp_path / "cache", "tta_flip=true")
    assert not (tmp_path / "cache").exists()
