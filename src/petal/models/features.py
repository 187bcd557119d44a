"""What inference runs, with what the novelty score needs: the network's answer and the
features its classifier head reads (the penultimate layer), from any model petal builds.

The features are taken by a hook on the head's input, so every family (ResNet9, timm,
torchvision) gives them without knowing its layout; the hook is traced into an exported
ONNX graph as a second output, so torch and ONNX Runtime see the same features.
"""

from __future__ import annotations

import torch
from torch import nn

from petal.models.mirror import answering
from petal.models.spec import InputSpec


def classifier_head(network: nn.Module) -> nn.Module:
    """The layer that maps features to class scores: timm's `get_classifier()`, otherwise the
    last Linear (or 1x1 Conv2d, as in SqueezeNet) in the network."""
    if hasattr(network, "get_classifier"):
        head = network.get_classifier()  # a tuple for distilled timm models (two heads)
        return nn.ModuleList(head) if isinstance(head, tuple) else head
    candidates = [m for m in network.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return candidates[-1]


class AnswerWithFeatures(nn.Module):
    """(logits as inference answers them, features (N, D) of each image as it is, unmirrored).

    Spatial head inputs (a 1x1-conv head) are averaged over their positions.
    """

    def __init__(self, network: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.answer = answering(network, spec)
        self.head = classifier_head(network)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        seen: list[torch.Tensor] = []
        hook = self.head.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
        try:
            logits = self.answer(images)
        finally:
            hook.remove()
        features = seen[0][:images.shape[0]]  # a mirroring answer ran [images, mirrors]
        if features.dim() == 4:
            features = features.mean((2, 3))
        return logits, features.flatten(1)
