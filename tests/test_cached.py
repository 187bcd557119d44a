"""Cached-feature training: the cut, the feature cache and its keys, and the saved model."""

from __future__ import annotations

import json
import time
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

import petal
from petal.errors import PetalError, PetalWarning
from petal.modelio import load_model
from petal.models import build_model
from petal.preprocess import center_crop, to_input
from petal.train.cached import FeatureCache, features_key, view_crop
from petal.train.cut import cut_names, cut_network
from petal.train.fit import TrainRequest, fit, resume
from petal.train.recipes import get_recipe


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
    assert set(cuts) <= set(cut_names(model))
    with pytest.raises(PetalError, match="not a step"):
        cut_network(model, "nowhere")


def test_views_are_fixed_crops() -> None:
    square = np.arange(10 * 10 * 3, dtype=np.uint8).reshape(10, 10, 3)
    centre = view_crop(square, 6, 0, "ab" * 8)
    assert np.array_equal(centre, square[2:8, 2:8])
    assert np.array_equal(view_crop(square, 6, 1, "ab" * 8), centre[:, ::-1])
    random_view = view_crop(square, 6, 2, "ab" * 8)
    assert random_view.shape == (6, 6, 3)
    assert np.array_equal(random_view, view_crop(square, 6, 2, "ab" * 8))


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


@pytest.mark.parametrize("engine", ["onnx", "torch"])
def test_feature_cache_computes_once(engine: str, tmp_path: Path) -> None:
    model, spec = build_model("efficientnet_lite0", 3, input_size=64)
    trunk = cut_network(model, "blocks.6").trunk
    cache = FeatureCache(tmp_path, trunk, "k", spec, engine=engine)
    pixels = np.random.default_rng(0).integers(0, 256, (5, spec.resize_size,
                                                        spec.resize_size, 3), dtype=np.uint8)
    keys = [f"{i:02x}" * 8 for i in range(5)]
    features = cache.view(0, pixels, keys, progress=False)
    assert features.shape == (5, *cache.row_shape) and features.dtype == np.float16
    direct = trunk(torch.from_numpy(to_input(np.stack([center_crop(p, 64) for p in pixels]),
                                             spec))).detach().numpy()
    assert np.abs(features.astype(np.float32) - direct).max() < 1e-2  # float16 storage
    poisoned = FeatureCache(tmp_path, trunk, "k", spec, engine=engine)
    poisoned.run = lambda batch: pytest.fail("stored features are not recomputed")
    assert np.array_equal(poisoned.view(0, pixels, keys, progress=False), features)


def test_damaged_trunk_file_is_exported_again(tmp_path: Path) -> None:
    model, spec = build_model("efficientnet_lite0", 3, input_size=64)
    trunk = cut_network(model, "blocks.6").trunk
    FeatureCache(tmp_path, trunk, "k", spec)
    (tmp_path / "features" / "k" / "trunk.onnx").write_bytes(b"\x00" * 100)
    with pytest.warns(PetalWarning, match="exported again"):
        cache = FeatureCache(tmp_path, trunk, "k", spec)
    pixels = np.zeros((1, spec.resize_size, spec.resize_size, 3), np.uint8)
    assert cache.view(0, pixels, ["00" * 8], progress=False).shape == (1, *cache.row_shape)


def test_cached_recipe_saves_an_ordinary_model(image_folder: Path, tmp_path: Path) -> None:
    recipe = get_recipe("seed-transfer", ["mode=cached", "eval_crop=center", "cut=blocks.6",
                                          "views=3", "input_size=64", "batch_size=4",
                                          "epochs=2", "tta_flip=true"])
    result = fit(TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / "run",
                              cache_dir=str(tmp_path / "cache")), time.perf_counter(),
                 progress=False)
    views = sorted(p.name for p in (tmp_path / "cache" / "features").glob("*/view*"))
    assert views == ["view0", "view1", "view2"]
    classifier = petal.load(result.run_dir)
    assert classifier.card.architecture["name"] == "efficientnet_lite0"
    prediction = classifier.predict(image_folder / "cat" / "cat0.jpg")
    assert prediction.label in {"cat", "dog", "fox"}
    untouched, _ = build_model("efficientnet_lite0", 3, weights="imagenet", input_size=64)
    loaded, _ = load_model(result.run_dir)
    # the trunk kept its ImageNet weights; the top trained
    assert torch.equal(loaded.blocks[0][0].conv_dw.weight, untouched.blocks[0][0].conv_dw.weight)
    assert not torch.equal(loaded.conv_head.weight, untouched.conv_head.weight)


def test_probe_starts_the_fine_tune_from_the_trained_top(image_folder: Path,
                                                        tmp_path: Path) -> None:
    # At a vanishing LR the fine-tune leaves the head where the probe put it (LP-FT).
    recipe = get_recipe("seed-transfer", ["probe=fast-transfer epochs=2 batch_size=4",
                                          "input_size=64", "batch_size=4", "epochs=1",
                                          "lr=1e-12"])
    result = fit(TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / "run",
                              cache_dir=str(tmp_path / "cache")), time.perf_counter(),
                 progress=False)
    probed, probe_card = load_model(result.run_dir / "probe")
    tuned, card = load_model(result.run_dir)
    assert probe_card.recipe["name"] == "fast-transfer" and probe_card.recipe["epochs"] == 2
    assert probe_card.architecture == card.architecture  # input_size 64 came from seed-transfer
    assert torch.allclose(tuned.classifier.weight, probed.classifier.weight, atol=1e-6)
    fresh, _ = build_model("efficientnet_lite0", 3, weights="imagenet", input_size=64)
    assert not torch.allclose(tuned.classifier.weight, fresh.classifier.weight, atol=1e-3)


class _FirstHead(L.Callback):
    """Keeps the classifier weights the fine-tune starts from."""

    def on_train_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.weight = module.network.classifier.weight.detach().clone()


def test_lr_finder_after_a_probe_starts_from_the_probed_top(image_folder: Path,
                                                            tmp_path: Path) -> None:
    # --lr auto with a probe: the LR range test runs on the probed network, and the
    # fine-tune starts from the probed top again, not from where the range test left it.
    recipe = get_recipe("seed-transfer", ["probe=fast-transfer epochs=2 batch_size=4",
                                          "input_size=64", "batch_size=4", "epochs=1"])
    first_head = _FirstHead()
    result = fit(TrainRequest(data=image_folder, recipe=recipe, out=tmp_path / "run",
                              cache_dir=str(tmp_path / "cache"), lr="auto"),
                 time.perf_counter(), progress=False, extra_callbacks=[first_head])
    probed, _ = load_model(result.run_dir / "probe")
    assert torch.equal(first_head.weight, probed.classifier.weight)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert config["lr_found"] > 0 and (result.run_dir / "lr_find.png").is_file()


@pytest.mark.parametrize("fields", [["probe=seed-resnet9"], ["probe=fastest"],
                                    ["probe=fast-transfer", "mode=cached"],
                                    ["probe=fast-transfer epochs=zero"]])
def test_bad_probe_is_rejected(fields: list[str]) -> None:
    with pytest.raises(PetalError, match="probe|recipe|epochs"):
        get_recipe("seed-transfer", fields)


def test_resume_of_a_run_stopped_in_its_probe_says_so(tmp_path: Path) -> None:
    (tmp_path / "run" / "probe").mkdir(parents=True)
    with pytest.raises(PetalError, match="during its probe"):
        resume(tmp_path / "run", time.perf_counter(), progress=False)
