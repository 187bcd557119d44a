"""What inference runs, with what the novelty score and the explanations need: the network's
answer, the features its classifier head reads (the penultimate layer), and, where the
network ends in global pooling and a linear layer, its class activation maps.

The features are taken by a hook on the head's input, so every family (ResNet9, timm,
torchvision) gives them without knowing its layout; the hooks are traced into an exported
ONNX graph as extra outputs, so torch and ONNX Runtime see the same values.

Class activation maps (Zhou et al. 2016): the last feature map (N, C, h, w), taken at the
input of the pooling layer the registry names, weighted by each class's row of the linear
head: (N, classes, h, w). With average pooling the class score is exactly the map's mean
(plus the bias). With ResNet9's max pooling the gradient of a score reaches only each
channel's maximum, with that class's weight, so Grad-CAM's channel weights (the gradient
averaged over positions) are the head's weights / (h w): Grad-CAM is this map, scaled. Hence
no gradient library here (pytorch-grad-cam would give the same map through a backward pass
per image, and none through ONNX Runtime).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from petal.models.mirror import answering
from petal.models.spec import InputSpec


@dataclass(frozen=True)
class CamLayers:
    """Where class activation maps come from (registry.cam_layers): the layers whose inputs
    they are made of, and how (those inputs -> (N, classes, h, w))."""

    taps: list[nn.Module]
    maps: Callable[[list[torch.Tensor]], torch.Tensor]

    @classmethod
    def pooled_linear(cls, pool: nn.Module, head: nn.Linear) -> CamLayers:
        """One last feature map, at the input of `pool`, weighted by each class's row of
        `head`."""
        return cls([pool], lambda found: torch.einsum("nchw,kc->nkhw", found[0], head.weight))


def classifier_head(network: nn.Module) -> nn.Module:
    """The layer that maps features to class scores: timm's `get_classifier()`, otherwise the
    last Linear (or 1x1 Conv2d, as in SqueezeNet) in the network."""
    if hasattr(network, "get_classifier"):
        head = network.get_classifier()  # a tuple for distilled timm models (two heads)
        return nn.ModuleList(head) if isinstance(head, tuple) else head
    candidates = [m for m in network.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]
    return candidates[-1]


class AnswerWithFeatures(nn.Module):
    """(logits as inference answers them, divided by the model's `temperature`; features
    (N, D) of each image as it is, unmirrored) and, with `cam` layers, the class activation
    maps (N, classes, h, w) of the same view.

    Spatial head inputs (a 1x1-conv head) are averaged over their positions.
    """

    def __init__(self, network: nn.Module, spec: InputSpec, cam: CamLayers | None = None,
                 temperature: float = 1.0) -> None:
        super().__init__()
        self.answer = answering(network, spec)
        self.temperature = temperature  # logits / T: calibrated (petal.training.calibration)
        head = classifier_head(network)
        # a distilled timm model's two heads: the first (the class token's) is hooked
        self.head = head[0] if isinstance(head, nn.ModuleList) else head
        self.cam = cam

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # a mirroring answer runs [images, mirrors]: the first rows; stored features of
        # several trunks come as a list (petal.training.cut)
        count = len(images[0]) if isinstance(images, list) else images.shape[0]
        seen: list[torch.Tensor] = []
        taps: list[torch.Tensor] = []
        hooks = [self.head.register_forward_pre_hook(lambda _, args: seen.append(args[0]))]
        for tap in self.cam.taps if self.cam is not None else []:
            hooks.append(tap.register_forward_pre_hook(lambda _, args: taps.append(args[0])))
        try:
            logits = self.answer(images)
            if self.temperature != 1.0:
                logits = logits / self.temperature
        finally:
            for hook in hooks:
                hook.remove()
        features = seen[0][:count]
        if features.dim() == 4:
            features = features.mean((2, 3))
        if self.cam is None:
            return logits, features.flatten(1)
        return logits, features.flatten(1), self.cam.maps([found[:count] for found in taps])
