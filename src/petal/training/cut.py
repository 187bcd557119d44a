"""Cut a pretrained network in two: a frozen trunk (run once, outputs cached) and a top that trains.

`cut_network(model, cut)` names the first step that trains; `top(trunk(x)) == model(x)`,
and both halves share the model's parameters, so training the top trains the model.
Supported: EfficientNet-style networks (efficientnet_lite*, timm EfficientNets, cuts
"blocks.N", "conv_head", "classifier"), torchvision ResNets ("layerN", "fc") and, at
"classifier", any timm model. A model of several trunks (petal.models.multi_trunk) is cut
trunk by trunk (`cut_trunks`), each where it can be.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from petal.errors import PetalError
from petal.models.multi_trunk import MultiTop, MultiTrunk


class Step(nn.Module):
    """One step of a network: `fn(x)`, with the modules holding its parameters registered."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], **modules: nn.Module) -> None:
        super().__init__()
        self.fn = fn
        self.parts = nn.ModuleDict(modules)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(x)


def _module(module: nn.Module) -> Step:
    return Step(module, module=module)


def network_steps(model: nn.Module) -> list[tuple[str, Step]]:
    """The network as named steps applied in order; a cut falls between two steps."""
    if hasattr(model, "conv_stem") and hasattr(model, "blocks") and hasattr(model, "conv_head"):
        return [("conv_stem", _module(model.conv_stem)), ("bn1", _module(model.bn1)),
                *[(f"blocks.{i}", _module(block)) for i, block in enumerate(model.blocks)],
                ("conv_head", _module(model.conv_head)), ("bn2", _module(model.bn2)),
                ("classifier", Step(model.forward_head, pool=model.global_pool,
                                    classifier=model.classifier))]
    if all(hasattr(model, name) for name in ("conv1", "layer4", "avgpool", "fc")):
        def head(x: torch.Tensor) -> torch.Tensor:
            return model.fc(torch.flatten(model.avgpool(x), 1))
        stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
        return [("stem", _module(stem)),
                *[(f"layer{i}", _module(getattr(model, f"layer{i}"))) for i in range(1, 5)],
                ("fc", Step(head, avgpool=model.avgpool, fc=model.fc))]
    if hasattr(model, "forward_features") and hasattr(model, "forward_head"):
        return [("features", Step(model.forward_features, model=model)),
                ("classifier", Step(model.forward_head, classifier=model.get_classifier()))]
    raise PetalError(f"cached training does not know how to cut a {type(model).__name__}: "
                     "use an EfficientNet, a torchvision ResNet or a timm model, or mode=full")


@dataclass
class CutNetwork:
    trunk: nn.Sequential
    top: nn.Sequential
    cut: str


def cut_network(model: nn.Module, cut: str) -> CutNetwork:
    """Split `model` before step `cut`; the trunk is frozen and in eval mode."""
    steps = network_steps(model)
    names = [name for name, _ in steps]
    if cut not in names[1:]:
        raise PetalError(f"cut {cut!r} is not a step of this network: use one of "
                         f"{', '.join(names[1:])}")
    at = names.index(cut)
    trunk = nn.Sequential(*[step for _, step in steps[:at]]).eval().requires_grad_(False)
    top = nn.Sequential(*[step for _, step in steps[at:]]).requires_grad_(True)
    return CutNetwork(trunk, top, cut)


def usable_cut(model: nn.Module, cut: str) -> str:
    """`cut`, or for a network without such a step (a recipe's `conv_head` on a ConvNeXt)
    its last one: the network then trains its classifier on stored pooled features."""
    names = [name for name, _ in network_steps(model)[1:]]
    return cut if cut in names else names[-1]


@dataclass
class StoredTrunk:
    """One frozen trunk of a cut model, whose outputs the feature cache stores."""

    name: str  # the trunk's name and input size: part of its features' cache key
    prepare: nn.Module | None  # runs in torch before `trunk` (a resize: see FeatureCache)
    trunk: nn.Sequential
    cut: str


def cut_trunks(model: nn.Module, cut: str) -> tuple[list[StoredTrunk], nn.Module]:
    """The frozen trunks of `model` and the top that trains on their stored outputs; each trunk
    is cut at `cut` where it has that step, else before its classifier (`usable_cut`)."""
    if not isinstance(model, MultiTrunk):
        parts = cut_network(model, usable_cut(model, cut))
        return [StoredTrunk("", None, parts.trunk, parts.cut)], parts.top
    stored, tops = [], []
    for trunk in model.trunks:
        parts = cut_network(trunk.network, usable_cut(trunk.network, cut))
        stored.append(StoredTrunk(trunk.name, trunk.prepare, parts.trunk, parts.cut))
        tops.append(parts.top)
    return stored, MultiTop(tops, model.classifier)
