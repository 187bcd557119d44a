"""Cached-feature training: the cut, the feature cache and its keys, and the saved model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

import petal
from petal.errors import PetalError, PetalWarning
from petal.inference.model_folder import load_model
from petal.inference.preprocess import center_crop, to_input
from petal.models import build_model
from petal.training.cut import cut_network
from petal.training.feature_cache import CachedFeatures, FeatureCache, features_key, view_crop
from petal.training.fit import TrainRequest
from petal.training.orchestrator import train_model
from petal.training.recipes import get_recipe


@pytest.mark.parametrize(("name", "cuts"), [
    ("efficientnet_lite0", ["blocks.5", "blocks.6", "conv_head", "classifier"]),
    ("resnet18", ["layer3", "layer4", "fc"]),
    ("timm:resnet10t", ["classifier"]),
])
def test_top_of_trunk_is_the_model(name: str, cuts: list[str]) -> None:
    model, _ = build_model(name, 4, weights=None, input_size=64)
    model.eval()
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(images)
        for cut in cuts:
            parts = cut_network(model, cut)
            assert torch.allclose(parts.top.eval()(parts.trunk(images)), expected, atol=1e-5)
            top = {id(p) for p in parts.top.parameters()}
            assert top and all(p.requires_grad for p in parts.top.parameters())
            assert not any(p.requires_grad for p in parts.trunk.parameters() if id(p) not in top)
    with pytest.raises(PetalError, match="not a step"):
        cut_network(model, "nowhere")


def test_views_are_the_central_crop_and_its_mirror() -> None:
    square = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    centre = view_crop(square, 6, mirrored=False)
    assert np.array_equal(centre, square[2:8, 2:8])
    assert np.array_equal(view_crop(square, 6, mirrored=True), centre[:, ::-1])


def test_cached_features_flip_maps_in_training_and_stack_the_mirror_in_validation() -> None:
    maps = np.arange(2 * 2 * 3 * 4, dtype=np.float16).reshape(2, 2, 3, 4)
    training = CachedFeatures(maps, np.array([0, 1]), flip=True)
    rows = [training[(1, seed)][0].numpy() for seed in range(20)]
    assert all(np.array_equal(r, maps[1]) or np.array_equal(r, maps[1][:, :, ::-1])
               for r in rows)
    assert any(np.array_equal(r, maps[1]) for r in rows)
    assert any(not np.array_equal(r, maps[1]) for r in rows)
    validation = CachedFeatures(maps, np.array([0, 1]), mirrored=maps[:, :, :, ::-1])
    row, label = validation[1]
    assert row.shape == (2, 2, 3, 4) and label == 1
    assert np.array_equal(row[1].numpy(), maps[1][:, :, ::-1])


def test_feature_key_follows_weights_cut_and_spec() -> None:
    model, spec = build_model("efficientnet_lite0", 3, input_size=64)
    arch = {"name": "efficientnet_lite0"}
    trunk6 = cut_network(model, "blocks.6").trunk
    key = features_key(arch, "blocks.6", spec, trunk6)
    assert key == features_key(arch, "blocks.6", spec, trunk6)
    assert key != features_key(arch, "blocks.5", spec, cut_network(model, "blocks.5").trunk)
    with torch.no_grad():
        model.blocks[0][0].conv_dw.weight.add_(0.01)
    assert key != features_key(arch, "blocks.6", spec, trunk6)


def test_feature_cache_computes_once(tmp_path: Path) -> None:
    model, spec = build_model("efficientnet_lite0", 3, input_size=64)
    trunk = cut_network(model, "blocks.6").trunk
    cache = FeatureCache(tmp_path, trunk, "k", spec)
    pixels = np.random.default_rng(0).integers(0, 256, (5, spec.resize_size,
                                                        spec.resize_size, 3), dtype=np.uint8)
    keys = [f"{i:02x}" * 8 for i in range(5)]
    features = cache.view(pixels, keys, progress=False)
    assert features.shape == (5, *cache.row_shape) and features.dtype == np.float16
    direct = trunk(torch.from_numpy(to_input(np.stack([center_crop(p, 64) for p in pixels]),
                                             spec))).detach().numpy()
    assert np.abs(features.astype(np.float32) - direct).max() < 1e-2  # float16 storage
    poisoned = FeatureCache(tmp_path, trunk, "k", spec)
    poisoned.run = lambda batch: pytest.fail("stored features are not recomputed")
    assert np.array_equal(poisoned.view(pixels, keys, progress=False), features)


def test_damaged_trunk_file_is_exported_again(tmp_path: Path) -> None:
    model, spec = build_model("efficientnet_lite0", 3, input_size=64)
    trunk = cut_network(model, "blocks.6").trunk
    FeatureCache(tmp_path, trunk, "k", spec)
    (tmp_path / "features" / "k" / "trunk.onnx").write_bytes(b"\x00" * 100)
    with pytest.warns(PetalWarning, match="exported again"):
        cache = FeatureCache(tmp_path, trunk, "k", spec)
    pixels = np.zeros((1, spec.resize_size, spec.resize_size, 3), np.uint8)
    assert cache.view(pixels, ["00" * 8], progress=False).shape == (1, *cache.row_shape)


def test_cached_recipe_saves_an_ordinary_model(image_folder: Path, tmp_path: Path) -> None:
    recipe = get_recipe("original-transfer", ["mode=cached", "eval_crop=center",
                                              "train_from=blocks.6", "input_size=64",
                                              "batch_size=4", "epochs=2", "tta_flip=true"])
    result = train_model(TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / "run",
                                      cache_dir=str(tmp_path / "cache")), folds=0,
                         progress=False)
    views = sorted(p.name for p in (tmp_path / "cache" / "features").glob("*/view*"))
    assert views == ["view0", "view1"]  # the central crops, and their mirrors for validation
    # each photo was read once, for its features: no decoded square was stored
    assert not (tmp_path / "cache" / "decoded").exists()
    classifier = petal.load(result.run_dir)
    assert classifier.card.architecture["name"] == "efficientnet_lite0"
    prediction = classifier.predict(image_folder / "cat" / "cat0.jpg")
    assert prediction.label in {"cat", "dog", "fox"}
    untouched, _ = build_model("efficientnet_lite0", 3, weights="imagenet", input_size=64)
    loaded, _ = load_model(result.run_dir)
    # the trunk kept its ImageNet weights; the top trained
    assert torch.equal(loaded.blocks[0][0].conv_dw.weight, untouched.blocks[0][0].conv_dw.weight)
    assert not torch.equal(loaded.conv_head.weight, untouched.conv_head.weight)
    # the novelty threshold, fitted on stored trunk features, is what inference computes
    split = json.loads((result.run_dir / "split.json").read_text())
    answers = classifier.predict([image_folder / item["path"] for item in split["val"]])
    stored = load_file(str(result.model_dir / "novelty.safetensors"))["val_scores"]
    assert [a.novelty for a in answers] == pytest.approx(stored.tolist(), abs=1e-3)
