"""Any torchvision classification model by name, with its ImageNet weights or a local file."""

from __future__ import annotations

from typing import Any

import torchvision
from torch import nn
from torchvision.models import get_model, get_model_weights, list_models

from petal.errors import PetalError
from petal.models.spec import InputSpec
from petal.models.weights import IMAGENET, Weights, download_error, load_state_file, load_strict

IMAGENET_CLASSES = 1000


def names() -> list[str]:
    return list_models(module=torchvision.models)


def input_spec(arch: str, input_size: int | None) -> InputSpec:
    """The preprocessing of the model's default ImageNet weights (size, crop, mean, std)."""
    preset = get_model_weights(arch).DEFAULT.transforms()
    crop, resize = preset.crop_size[0], preset.resize_size[0]
    return InputSpec(size=input_size or crop, mean=tuple(preset.mean), std=tuple(preset.std),
                     crop_pct=crop / resize)


def _builder_kwargs(arch: str, size: int) -> dict[str, Any]:
    """Constructor arguments torchvision's builders force when they load ImageNet weights.

    Passing them whatever the weights makes a model rebuilt without weights (to load a
    saved state) compute exactly what the pretrained one did.
    """
    if arch in ("googlenet", "inception_v3"):
        return {"transform_input": True, "aux_logits": True, "init_weights": False}
    if arch.startswith("vit_"):
        return {"image_size": size}
    if arch == "maxvit_t":
        return {"input_size": (size, size)}
    return {}


def _drop_auxiliary_heads(model: nn.Module) -> None:
    # googlenet and inception_v3 return extra auxiliary logits while training; petal
    # trains the main head only, so the model always returns one tensor.
    if getattr(model, "aux_logits", False):
        model.aux_logits = False
        for name in ("aux1", "aux2", "AuxLogits"):
            if hasattr(model, name):
                setattr(model, name, None)


def _replace_head(model: nn.Module, num_classes: int) -> None:
    """Swap the final classification layer (the last Linear, or squeezenet's 1x1 conv) for a
    freshly initialised one of `num_classes`."""
    layers = [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    name, old = layers[-1]
    if isinstance(old, nn.Linear):
        new: nn.Module = nn.Linear(old.in_features, num_classes, bias=old.bias is not None)
    else:
        new = nn.Conv2d(old.in_channels, num_classes, kernel_size=1, bias=old.bias is not None)
    parent, _, attr = name.rpartition(".")
    setattr(model.get_submodule(parent), attr, new)


def build(arch: str, num_classes: int, weights: Weights, spec: InputSpec) -> nn.Module:
    """The model with `weights` loaded into its 1000-class ImageNet head, then that head
    replaced by a fresh one unless `num_classes` is 1000."""
    try:
        model = get_model(arch, **_builder_kwargs(arch, spec.size))
    except (ValueError, AssertionError) as exc:  # how ViT and MaxViT refuse an input size
        raise PetalError(f"{arch} cannot take {spec.size} px inputs ({str(exc).splitlines()[0]}): "
                         "choose another input size") from exc
    if weights == IMAGENET:
        try:
            state = get_model_weights(arch).DEFAULT.get_state_dict(
                progress=True, check_hash=True, map_location="cpu", weights_only=True)
        except OSError as exc:
            raise download_error(arch, exc) from exc
        load_strict(model, state, f"torchvision's {arch} ImageNet weights", arch)
    elif weights is not None:
        load_strict(model, load_state_file(weights), str(weights), arch)
    _drop_auxiliary_heads(model)
    if num_classes != IMAGENET_CLASSES:
        _replace_head(model, num_classes)
    return model
