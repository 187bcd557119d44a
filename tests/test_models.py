"""The model registry: ResNet9 as the original, every family, weights files, offline weights."""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import huggingface_hub.constants
import matplotlib
import numpy as np
import pytest
import safetensors.torch
import torch
import torchvision
from torch import nn

from petal.cli import main
from petal.data.image import load_image, resize_and_center_crop
from petal.errors import PetalError
from petal.models import (
    InputSpec,
    architecture_config,
    build_model,
    default_weights,
    input_spec,
    model_names,
    rebuild_model,
)
from petal.models.efficientnet_lite import map_keys, weight_file
from petal.models.resnet9 import ResNet9
from petal.models.timm_models import create
from petal.models.weights import load_state_file

GRACE_HOPPER = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
# ImageNet classes a good model sees in the portrait of Grace Hopper in uniform.
ACADEMIC_GOWN, BOW_TIE, MILITARY_UNIFORM, MORTARBOARD, SUIT, VESTMENT, WINDSOR_TIE = (
    400, 457, 652, 667, 834, 887, 906)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def resnet9_params(num_classes: int, width: float = 1.0) -> int:
    """ResNet9's parameter count from its architecture: conv3x3 + bias, BatchNorm scale + shift."""
    c64, c128, c256, c512 = (round(c * width) for c in (64, 128, 256, 512))

    def block(cin: int, cout: int) -> int:
        return 9 * cin * cout + cout + 2 * cout

    convs = (block(3, c64) + block(c64, c128) + 2 * block(c128, c128) + block(c128, c256)
             + block(c256, c512) + 2 * block(c512, c512))
    return convs + c512 * num_classes + num_classes


# --- InputSpec --------------------------------------------------------------------------

def test_input_spec_resize_size_and_json_round_trip():
    spec = InputSpec(size=224, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert spec.resize_size == 256
    assert InputSpec(size=240, mean=(0, 0, 0), std=(1, 1, 1), crop_pct=0.882).resize_size == 272
    data = json.loads(json.dumps(spec.to_json()))
    assert data["resize_size"] == 256
    assert InputSpec.from_json(data) == spec


@pytest.mark.parametrize("kwargs", [{"size": 0}, {"std": (1, 0, 1)}, {"crop_pct": 1.5}])
def test_input_spec_rejects_bad_values(kwargs):
    with pytest.raises(PetalError):
        InputSpec(**{"size": 32, "mean": (0, 0, 0), "std": (1, 1, 1), **kwargs})


def test_input_spec_from_malformed_json():
    with pytest.raises(PetalError, match="malformed"):
        InputSpec.from_json({"size": 224, "mean": [0.5]})


@pytest.mark.parametrize("name, size, resize, mean", [
    ("resnet9", 64, 73, (0.485, 0.456, 0.406)),
    ("resnet18", 224, 256, (0.485, 0.456, 0.406)),
    ("resnet50", 224, 232, (0.485, 0.456, 0.406)),
    ("timm:resnet10t", 176, 201, (0.485, 0.456, 0.406)),
    ("efficientnet_lite0", 224, 256, (0.5, 0.5, 0.5)),
    ("efficientnet_lite1", 240, 272, (0.5, 0.5, 0.5)),
    ("efficientnet_lite2", 260, 292, (0.5, 0.5, 0.5)),
])
def test_input_spec_defaults_per_model(name, size, resize, mean):
    spec = input_spec(name)
    assert (spec.size, spec.resize_size) == (size, resize)
    assert spec.mean == pytest.approx(mean)
    assert input_spec(name, input_size=96).size == 96


# --- ResNet9 ----------------------------------------------------------------------------

def test_resnet9_stage_shapes_and_forward():
    torch.manual_seed(0)
    model = ResNet9(num_classes=5).eval()
    assert [name for name, _ in model.named_children()] == [
        "conv1", "conv2", "res1", "conv3", "conv4", "res2", "classifier"]
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model.conv1(x)
        assert out.shape == (2, 64, 64, 64)
        out = model.conv2(out)
        assert out.shape == (2, 128, 32, 32)
        out = model.res1(out) + out
        assert out.shape == (2, 128, 32, 32)
        out = model.conv3(out)
        assert out.shape == (2, 256, 16, 16)
        out = model.conv4(out)
        assert out.shape == (2, 512, 8, 8)
        out = model.res2(out) + out
        assert out.shape == (2, 512, 8, 8)
        logits = model.classifier(out)
        assert logits.shape == (2, 5)
        assert torch.equal(model(x), logits)


def test_resnet9_parameters_match_the_original():
    assert n_params(ResNet9(5)) == resnet9_params(5)
    # The published count of the original ResNet9 with a 10-way head (CIFAR-10).
    assert n_params(ResNet9(10)) == 6_575_370
    keys = ResNet9(5).state_dict()
    assert {"conv1.0.weight", "conv1.1.running_var", "res1.1.0.weight", "res2.0.1.bias",
            "classifier.2.weight"} <= set(keys)


def test_resnet9_width_scales_channels():
    model, _ = build_model("resnet9", 5, width=0.5)
    assert n_params(model) == resnet9_params(5, width=0.5)
    assert n_params(model) < n_params(ResNet9(5)) / 3
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 5)


@pytest.mark.parametrize("weights", ["imagenet", __file__])
def test_resnet9_has_no_pretrained_weights(weights):
    with pytest.raises(PetalError, match="from scratch"):
        build_model("resnet9", 5, weights=weights)
    assert n_params(build_model("resnet9", 5, weights="none")[0]) == resnet9_params(5)


@pytest.mark.parametrize("name", ["efficientnet_lite0", "resnet18", "timm:resnet10t"])
def test_options_of_another_family_are_refused(name):
    with pytest.raises(PetalError, match="width does not apply"):
        build_model(name, 3, width=0.5)


@pytest.mark.parametrize("width", [0, -1.0, "wide"])
def test_resnet9_rejects_bad_width(width):
    with pytest.raises(PetalError, match="width"):
        build_model("resnet9", 5, width=width)


# --- every family: builds, runs, rebuilds from its config --------------------------------

@pytest.mark.parametrize("name, options", [
    ("resnet9", {}),
    ("resnet9", {"width": 0.25}),
    ("resnet18", {}),
    ("googlenet", {}),  # auxiliary heads dropped: training mode returns one tensor
    ("squeezenet1_1", {}),  # classifies with a 1x1 conv, not a Linear
    ("vit_b_32", {}),  # built for the requested input size
    ("timm:resnet10t", {}),
    ("timm:vit_tiny_patch16_224", {}),  # fixed input size: built for the requested one
    ("efficientnet_lite0", {}),
])
def test_family_builds_runs_and_rebuilds(name, options):
    torch.manual_seed(0)
    model, spec = build_model(name, 3, input_size=64, **options)
    assert spec.size == 64
    x = torch.randn(2, 3, 64, 64)
    out = model.train()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 3)

    config = json.loads(json.dumps(architecture_config(name, 3, input_size=64, **options)))
    assert config == {"name": name, "num_classes": 3, "input_size": 64, "options": options}
    rebuilt, rebuilt_spec = rebuild_model(config)
    assert rebuilt_spec == spec
    rebuilt.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(rebuilt.eval()(x), model.eval()(x), atol=1e-5)


def test_input_size_a_model_cannot_take():
    with pytest.raises(PetalError, match="vit_b_16 cannot take 100 px inputs"):
        build_model("vit_b_16", 3, input_size=100)


def test_model_names_lists_families():
    names = model_names()
    assert names[:4] == ["resnet9", "efficientnet_lite0", "efficientnet_lite1",
                         "efficientnet_lite2"]
    assert {"resnet34", "mobilenet_v3_small", "vit_b_16"} <= set(names)
    assert not any("fasterrcnn" in n or "deeplab" in n for n in names)  # classifiers only


def test_default_weights_and_canonical_names():
    assert default_weights("resnet9") is None
    assert default_weights("efficientnet_lite0") == default_weights("resnet34") == "imagenet"
    assert architecture_config(" ResNet18", 2)["name"] == "resnet18"


@pytest.mark.parametrize("name, suggestion", [
    ("resnet35", "resnet34"),
    ("ResNet9x", "resnet9"),
    ("efficientnet_lite3", "efficientnet_lite2"),
    ("timm:resnet10", "timm:resnet10t"),
    ("timm:resnet10t.c3_in1", "timm:resnet10t.c3_in1k"),
])
def test_unknown_model_suggests_close_names(name, suggestion):
    with pytest.raises(PetalError, match=f"unknown model.*{suggestion}"):
        build_model(name, 5)


def test_option_of_another_family_is_refused():
    with pytest.raises(PetalError, match="width does not apply to resnet18"):
        build_model("resnet18", 5, width=0.5)
    with pytest.raises(PetalError, match="width does not apply"):
        architecture_config("timm:resnet10t", 5, width=0.5)


# --- efficientnet_lite: the offline ImageNet weights -------------------------------------

@pytest.fixture(scope="module")
def lite0_imagenet() -> tuple[nn.Module, InputSpec]:
    """The published 1000-class EfficientNet-Lite0 (num_classes=1000 keeps its head)."""
    return build_model("efficientnet_lite0", 1000, weights="imagenet")


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"])
def test_lite_weights_map_every_key(name):
    state = torch.load(weight_file(name), map_location="cpu", weights_only=True)
    model = create(f"tf_{name}", input_spec(name))
    mapped = map_keys(state, model)
    assert len(mapped) == len(state)  # no two source keys land on one target
    assert set(mapped) == set(model.state_dict())
    model.load_state_dict(mapped, strict=True)
    assert torch.equal(model.conv_stem.weight, state["_conv_stem.weight"])
    last = sum(len(stage) for stage in model.blocks) - 1
    assert torch.equal(model.blocks[-1][-1].conv_pwl.weight,
                       state[f"_blocks.{last}._project_conv.weight"])


def test_lite0_recognises_a_real_photo(lite0_imagenet):
    model, spec = lite0_imagenet
    square = resize_and_center_crop(load_image(GRACE_HOPPER), spec.resize_size)
    offset = (spec.resize_size - spec.size) // 2
    crop = square.crop((offset, offset, offset + spec.size, offset + spec.size))
    x = torch.from_numpy(np.asarray(crop, dtype=np.float32) / 255).permute(2, 0, 1)
    x = (x - torch.tensor(spec.mean)[:, None, None]) / torch.tensor(spec.std)[:, None, None]
    with torch.no_grad():
        top5 = model.eval()(x[None])[0].topk(5).indices.tolist()
    plausible = {ACADEMIC_GOWN, BOW_TIE, MILITARY_UNIFORM, MORTARBOARD, SUIT, VESTMENT, WINDSOR_TIE}
    assert top5[0] in plausible, top5
    assert MILITARY_UNIFORM in top5, top5


def test_lite_head_replaced_backbone_kept(lite0_imagenet):
    imagenet = lite0_imagenet[0].state_dict()
    model, _ = build_model("efficientnet_lite0", 5, weights="imagenet")
    assert model.classifier.out_features == 5
    for key, value in model.state_dict().items():
        if not key.startswith("classifier."):
            assert torch.equal(value, imagenet[key]), key
    assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 5)


def test_lite_loads_a_file_in_either_layout(tmp_path, lite0_imagenet):
    timm_layout = tmp_path / "lite0.safetensors"
    safetensors.torch.save_file(lite0_imagenet[0].state_dict(), timm_layout)
    for path in (timm_layout, weight_file("efficientnet_lite0")):
        model, _ = build_model("efficientnet_lite0", 5, weights=path)
        assert torch.equal(model.conv_head.weight, lite0_imagenet[0].conv_head.weight)
    with pytest.raises(PetalError, match="do not fit"):
        build_model("efficientnet_lite0", 5, weights=weight_file("efficientnet_lite1"))


# --- weights files -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def resnet18_state() -> dict[str, torch.Tensor]:
    torch.manual_seed(1)
    return torchvision.models.resnet18().state_dict()


def assert_backbone_equal(model: nn.Module, reference: dict[str, torch.Tensor], head: str) -> None:
    state = model.state_dict()
    for key, value in reference.items():
        if not key.startswith(head):
            assert torch.equal(state[key], value), key


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_weights_file_loads_into_original_head_then_head_replaced(tmp_path, resnet18_state, suffix):
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(resnet18_state, path)
    else:
        safetensors.torch.save_file(resnet18_state, path)
    model, _ = build_model("resnet18", 5, weights=str(path))
    assert model.fc.out_features == 5
    assert_backbone_equal(model, resnet18_state, "fc.")


def test_weights_file_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "resnet34.pth"
    torch.save(torchvision.models.resnet34().state_dict(), path)
    with pytest.raises(PetalError, match=r"do not fit resnet18 \(unexpected: layer1\.2\."):
        build_model("resnet18", 5, weights=path)


def test_weights_file_with_a_replaced_head_is_refused(tmp_path, resnet18_state):
    path = tmp_path / "finetuned.pth"
    torch.save({**resnet18_state, "fc.weight": torch.zeros(5, 512), "fc.bias": torch.zeros(5)},
               path)
    shape = r"wrong shape: fc\.weight \(5, 512\) \(needs \(1000, 512\)"
    with pytest.raises(PetalError, match=shape):
        build_model("resnet18", 5, weights=path)


def test_weights_file_with_pickled_objects_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"conv1.weight": torch.zeros(1), "payload": argparse.Namespace(run="code")}, path)
    with pytest.raises(PetalError, match="never runs code"):
        load_state_file(path)


@pytest.mark.parametrize("content", [torch.zeros(3), [torch.zeros(3)]])
def test_weights_file_that_is_not_a_state_dict_is_refused(tmp_path, content):
    path = tmp_path / "tensor.pt"
    torch.save(content, path)
    with pytest.raises(PetalError, match="not a state dict"):
        build_model("resnet18", 5, weights=path)


def test_damaged_or_missing_weights_file(tmp_path):
    damaged = tmp_path / "damaged.safetensors"
    damaged.write_bytes(b"\x00" * 20)
    with pytest.raises(PetalError, match="cannot read weights file"):
        build_model("resnet18", 5, weights=damaged)
    with pytest.raises(PetalError, match="not found"):
        build_model("resnet18", 5, weights=tmp_path / "absent.pth")


# --- downloads (torchvision through a local server; timm offline) --------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def weights_server(tmp_path, monkeypatch):
    """A local HTTP server for `www/`, and torch.hub's cache in tmp_path."""
    for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    root = tmp_path / "www"
    root.mkdir()
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_torchvision_imagenet_weights_download_then_head_replaced(
        weights_server, monkeypatch, resnet18_state, tmp_path):
    root, base = weights_server
    path = root / "weights.pth"
    torch.save(resnet18_state, path)
    # torch.hub checks that the file name carries the start of the file's SHA-256.
    name = f"resnet18-{hashlib.sha256(path.read_bytes()).hexdigest()[:8]}.pth"
    path.rename(root / name)
    monkeypatch.setattr(torchvision.models.ResNet18_Weights.DEFAULT.value, "url", f"{base}/{name}")

    model, spec = build_model("resnet18", 5, weights="imagenet")
    assert model.fc.out_features == 5
    assert_backbone_equal(model, resnet18_state, "fc.")
    assert (tmp_path / "torch" / "hub" / "checkpoints" / name).is_file()
    assert spec == input_spec("resnet18")


def test_torchvision_imagenet_weights_offline(weights_server, monkeypatch):
    with socket.socket() as probe:  # a port nothing listens on: the download fails at once
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    monkeypatch.setattr(torchvision.models.ResNet18_Weights.DEFAULT.value, "url",
                        f"http://127.0.0.1:{port}/resnet18-f37072fd.pth")
    with pytest.raises(PetalError, match="could not download.*--weights PATH.*efficientnet_lite0"):
        build_model("resnet18", 5, weights="imagenet")


def test_timm_pretrained_offline(monkeypatch, tmp_path):
    # As the Hugging Face hub behaves offline, without its minute of retries.
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(PetalError,
                       match="could not download the ImageNet weights of timm:resnet10t"):
        build_model("timm:resnet10t", 5, weights="imagenet")


def test_petal_models_lists_every_name_build_model_takes(capsys: pytest.CaptureFixture) -> None:
    assert main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == model_names() and "timm:NAME" in lines[-1]
    assert {"resnet9", "efficientnet_lite0", "efficientnet_lite2", "resnet34"} <= set(lines)
    for name in ("resnet9", "efficientnet_lite1", "squeezenet1_0"):
        build_model(name, 2, weights=None)  # each listed name builds
