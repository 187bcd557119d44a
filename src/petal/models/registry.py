"""One registry turns a model name into a model and the input it expects.

Names: `resnet9` (from scratch), `efficientnet_lite0/1/2` (ImageNet weights installed,
work offline), any torchvision classification model (`resnet34`, `mobilenet_v3_small`,
...), any timm model as `timm:NAME`, and several pretrained trunks under one head as
`TRUNK+TRUNK` (each optionally `TRUNK@SIZE`; petal.models.multi_trunk).
`architecture_config` gives the JSON-able dict (model.json's "architecture") from which
`rebuild_model` makes the same network again, randomly initialised and without network or
weight files, ready for a saved state dict.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from petal.errors import PetalError
from petal.models import (
    efficientnet_lite,
    multi_trunk,
    resnet9,
    timm_models,
    torchvision_models,
)
from petal.models.features import CamLayers
from petal.models.spec import MAX_SIDE, InputSpec
from petal.models.weights import IMAGENET, Weights, parse_weights

TIMM_PREFIX = "timm:"


def _pooled_linear(pool: object, head: object) -> CamLayers | None:
    if isinstance(pool, nn.Module) and isinstance(head, nn.Linear):
        return CamLayers.pooled_linear(pool, head)
    return None


def _timm_cam(model: nn.Module) -> CamLayers | None:
    """timm CNNs (EfficientNet-Lite included): global_pool, then the classifier."""
    return _pooled_linear(getattr(model, "global_pool", None), model.get_classifier())


def _torchvision_cam(model: nn.Module) -> CamLayers | None:
    """torchvision ResNet-style networks: avgpool, then fc."""
    return _pooled_linear(getattr(model, "avgpool", None), getattr(model, "fc", None))


def _resnet9_cam(model: nn.Module) -> CamLayers:
    """ResNet9: its classifier's max pooling, then its linear layer."""
    return CamLayers.pooled_linear(model.classifier[0], model.classifier[2])


def _multi_cam(model: nn.Module) -> CamLayers | None:
    """Several trunks: each one's map, summed (petal.models.multi_trunk)."""
    taps = model.map_taps()
    return CamLayers(taps, model.class_maps) if taps is not None else None


def _features_layer(model: nn.Module) -> nn.Module | None:
    """torchvision's VGG, MobileNet, EfficientNet, DenseNet, ConvNeXt: `features` ends in the
    last feature map."""
    return model.features if isinstance(getattr(model, "features", None), nn.Module) else None


def _last_stage(model: nn.Module) -> nn.Module | None:
    """timm CNNs built in stages (ConvNeXt, ...): the last stage ends in the last feature map."""
    stages = getattr(model, "stages", None)
    return stages[-1] if isinstance(stages, nn.Sequential) and len(stages) else None


@dataclass(frozen=True)
class _Family:
    input_spec: Callable[[str, int | None], InputSpec]
    build: Callable[..., nn.Module]  # (arch, num_classes, weights, spec, **options)
    options: frozenset[str] = frozenset()
    default_weights: str | None = IMAGENET
    cam: Callable[[nn.Module], CamLayers | None] = _timm_cam
    # where Grad-CAM reads the last feature map when `cam` finds no pooled linear head
    gradcam_layer: Callable[[nn.Module], nn.Module | None] = _last_stage


def _resnet9_spec(_arch: str, input_size: int | None) -> InputSpec:
    return resnet9.input_spec(input_size)


def _resnet9_build(_arch: str, num_classes: int, weights: Weights, _spec: InputSpec,
                   **options: Any) -> nn.Module:
    return resnet9.build(num_classes, weights, **options)


_RESNET9 = _Family(_resnet9_spec, _resnet9_build, frozenset({"width"}), default_weights=None,
                   cam=_resnet9_cam)
_LITE = _Family(efficientnet_lite.input_spec, efficientnet_lite.build)
_TORCHVISION = _Family(torchvision_models.input_spec, torchvision_models.build,
                       cam=_torchvision_cam, gradcam_layer=_features_layer)
_TIMM = _Family(timm_models.input_spec, timm_models.build)


def _trunk_parts(name: str) -> list[tuple[_Family, str, str, int | None]]:
    """(family, canonical name, architecture, input size or None) of each trunk of a model
    named `a+b@260`; PetalError unless each is an EfficientNet-Lite or a timm model."""
    try:
        parts = multi_trunk.parse_name(name)
    except ValueError as exc:
        raise PetalError(f"model {name!r}: {exc}; a model of several trunks is named "
                         "TRUNK+TRUNK, each optionally with its input size: "
                         "efficientnet_lite0@288+efficientnet_lite2") from exc
    found = []
    for trunk, size in parts:
        family, canonical, arch = _resolve(trunk)
        if family not in (_LITE, _TIMM):
            raise PetalError(f"{canonical} cannot be one of several trunks: use "
                             "efficientnet_lite0/1/2 or a timm model (timm:NAME; timm has the "
                             "torchvision architectures too, e.g. timm:resnet50)")
        if size is not None and not 32 <= size <= MAX_SIDE:
            raise PetalError(f"{canonical}@{size}: an input size is 32 to {MAX_SIDE} px")
        found.append((family, canonical, arch, size))
    return found


def _trunk_specs(name: str) -> list[tuple[_Family, str, str, InputSpec]]:
    return [(family, canonical, arch, family.input_spec(arch, size))
            for family, canonical, arch, size in _trunk_parts(name)]


def _multi_spec(name: str, input_size: int | None) -> InputSpec:
    """The shared crop: `input_size`, or the largest trunk's size, with that trunk's crop."""
    largest = max((spec for *_, spec in _trunk_specs(name)), key=lambda spec: spec.size)
    return multi_trunk.pixel_spec(input_size or largest.size, largest.crop_pct)


def _multi_name(name: str) -> str:
    """The canonical name: each trunk's, with its input size."""
    return multi_trunk.SEPARATOR.join(f"{canonical}{multi_trunk.SIZE_MARK}{spec.size}"
                                      for _, canonical, _, spec in _trunk_specs(name))


def _multi_build(name: str, num_classes: int, weights: Weights, _spec: InputSpec
                 ) -> nn.Module:
    if weights not in (IMAGENET, None):
        raise PetalError("--weights FILE names one network's weights: a model of several "
                         "trunks takes each trunk's ImageNet weights (or none)")
    trunks = [multi_trunk.Trunk(canonical, family.build(arch, 0, weights, spec), spec)
              for family, canonical, arch, spec in _trunk_specs(name)]
    return multi_trunk.MultiTrunk(trunks, num_classes)


_MULTI = _Family(_multi_spec, _multi_build, cam=_multi_cam, gradcam_layer=lambda _: None)


def model_names() -> list[str]:
    """petal's own models, then torchvision's classifiers (any timm model works as timm:NAME)."""
    return ["resnet9", *efficientnet_lite.NAMES, *torchvision_models.names()]


def _unknown(name: str, candidates: list[str], hint: str, prefix: str = "") -> PetalError:
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.6)
    suggestion = f" Did you mean {', '.join(prefix + c for c in close)}?" if close else ""
    return PetalError(f"unknown model {prefix + name!r}.{suggestion} {hint}")


def _resolve(name: str) -> tuple[_Family, str, str]:
    """(family, canonical name, architecture name within the family) for a user's model name."""
    name = name.strip().lower()
    if multi_trunk.SEPARATOR in name:
        return _MULTI, _multi_name(name), name
    if multi_trunk.SIZE_MARK in name:
        raise PetalError(f"model {name!r}: NAME{multi_trunk.SIZE_MARK}SIZE is for one of "
                         "several trunks (a+b@260); for one model set its input size with "
                         "--set input_size=SIZE")
    if name.startswith(TIMM_PREFIX):
        arch = name.removeprefix(TIMM_PREFIX)
        if not timm_models.is_known(arch):
            raise _unknown(arch, timm_models.names(), "timm.list_models() lists timm's models.",
                           prefix=TIMM_PREFIX)
        return _TIMM, name, arch
    if name == "resnet9":
        return _RESNET9, name, name
    if name in efficientnet_lite.NAMES:
        return _LITE, name, name
    if name in torchvision_models.names():
        return _TORCHVISION, name, name
    raise _unknown(name, model_names(),
                   "`petal models` lists them; any timm model works as timm:NAME.")


def _check(family: _Family, name: str, num_classes: int, options: dict[str, Any]) -> None:
    if not isinstance(num_classes, int) or num_classes < 1:
        raise PetalError(f"a model needs at least one class, got num_classes={num_classes!r}")
    if extra := sorted(set(options) - family.options):
        takes = ", ".join(sorted(family.options)) or "none"
        raise PetalError(f"option {', '.join(extra)} does not apply to {name} (it takes: {takes})")


def default_weights(name: str) -> str | None:
    """What --weights means when not given: "imagenet", or None for resnet9 (from scratch)."""
    return _resolve(name)[0].default_weights


def input_spec(name: str, input_size: int | None = None) -> InputSpec:
    """The input `build_model(name, ..., input_size=input_size)` expects, without building it."""
    family, _, arch = _resolve(name)
    return family.input_spec(arch, input_size)


def build_model(name: str, num_classes: int, weights: str | os.PathLike | None = None,
                input_size: int | None = None, **options: Any) -> tuple[nn.Module, InputSpec]:
    """Build `name` with a fresh `num_classes`-way head and return it with its input spec.

    weights: None or "none" for random initialisation, "imagenet" for the family's
    ImageNet weights (a download, except for efficientnet_lite*), or the path of a state
    dict saved from the architecture with its original head (.pth/.pt/.safetensors).
    Pretrained weights are loaded into the original head, which is then replaced, unless
    `num_classes` equals its size (1000 for ImageNet): then the model is the published one.
    input_size: the square input side in px; default the one the weights were trained at.
    options: per family; resnet9 takes `width` (channel multiplier, 1.0 = original).
    """
    family, canonical, arch = _resolve(name)
    _check(family, canonical, num_classes, options)
    source: Weights = parse_weights(weights)
    spec = family.input_spec(arch, input_size)
    return family.build(arch, num_classes, source, spec, **options), spec


def architecture_config(name: str, num_classes: int, input_size: int | None = None,
                        **options: Any) -> dict[str, Any]:
    """The `build_model` arguments, as JSON, that `rebuild_model` turns back into the network:
    {"name", "num_classes", "input_size" (resolved), "options": {...}}."""
    family, canonical, arch = _resolve(name)
    _check(family, canonical, num_classes, options)
    spec = family.input_spec(arch, input_size)
    return {"name": canonical, "num_classes": num_classes, "input_size": spec.size,
            "options": dict(options)}


def cam_layers(name: str, model: nn.Module) -> CamLayers | None:
    """Where a class activation map of `model` (built as `name`) comes from: the layer whose
    input is the last feature map, and the linear head that scores its pooled channels; None
    for an architecture without that ending (a ViT, an MLP head)."""
    return _resolve(name)[0].cam(model)


def gradcam_layer(name: str, model: nn.Module) -> nn.Module | None:
    """The layer whose output Grad-CAM weights, for a network without CAM layers; None where
    petal knows no such layer (a ViT)."""
    return _resolve(name)[0].gradcam_layer(model)


def rebuild_model(config: dict[str, Any]) -> tuple[nn.Module, InputSpec]:
    """The network of an `architecture_config`, randomly initialised, for a saved state dict."""
    return build_model(config["name"], config["num_classes"], weights=None,
                       input_size=config["input_size"], **config.get("options", {}))
