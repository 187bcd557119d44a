"""Any timm model, named `timm:NAME`, with its published pretrained weights or a local file."""

from __future__ import annotations

from pathlib import Path

import timm
from timm.data import resolve_data_config
from timm.models import get_pretrained_cfg, is_model_pretrained
from torch import nn

from petal.errors import PetalError
from petal.models.spec import InputSpec
from petal.models.weights import IMAGENET, Weights, download_error, load_state_file, load_strict


def names() -> list[str]:
    """timm's architectures, and each with the tag of its pretrained weights (resnet50.a1_in1k)."""
    return timm.list_models() + timm.list_pretrained()


def is_known(arch: str) -> bool:
    return arch in timm.list_pretrained() if "." in arch else timm.is_model(arch)


def input_spec(arch: str, input_size: int | None) -> InputSpec:
    """The preprocessing timm records for the model's pretrained weights."""
    cfg = get_pretrained_cfg(arch)
    data = resolve_data_config(pretrained_cfg=cfg.to_dict() if cfg else None)
    return InputSpec(size=input_size or data["input_size"][-1], mean=tuple(data["mean"]),
                     std=tuple(data["std"]), crop_pct=data["crop_pct"])


def create(arch: str, spec: InputSpec, pretrained: bool = False) -> nn.Module:
    """The model with its original head, built for `spec.size` if its input size is fixed (ViTs)."""
    cfg = get_pretrained_cfg(arch)
    kwargs = {"img_size": spec.size} if cfg and cfg.fixed_input_size else {}
    if not pretrained:
        return timm.create_model(arch, **kwargs)
    if not is_model_pretrained(arch):
        raise PetalError(f"timm has no pretrained weights for {arch}: "
                         "pass --weights none (random initialisation) or --weights PATH")
    try:
        return timm.create_model(arch, pretrained=True, **kwargs)
    except OSError as exc:
        raise download_error(f"timm:{arch}", exc) from exc


def with_head(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the classifier with a fresh one unless it already has `num_classes` outputs."""
    if model.num_classes != num_classes:
        model.reset_classifier(num_classes)
    return model


def build(arch: str, num_classes: int, weights: Weights, spec: InputSpec) -> nn.Module:
    model = create(arch, spec, pretrained=weights == IMAGENET)
    if isinstance(weights, Path):
        load_strict(model, load_state_file(weights), str(weights), f"timm:{arch}")
    return with_head(model, num_classes)
