"""The test-time mirror as part of the network: what a model trained with tta_flip answers.

Inference runs the trained network through `answering`, which wraps it in `MirrorAverage`
when its input spec says `mirror`, so torch, an exported ONNX graph and TorchScript all
answer the same as the validation that produced the model card's accuracy (which averaged
the same way).
"""

from __future__ import annotations

import torch
from torch import nn

from petal.models.spec import InputSpec


class MirrorAverage(nn.Module):
    """The network's class probabilities averaged over each image and its left-right mirror,
    returned as their logarithm: logits whose softmax is that average."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        both = self.network(torch.cat([images, images.flip(3)])).softmax(1)
        count = images.shape[0]
        return ((both[:count] + both[count:]) / 2).log()


def answering(network: nn.Module, spec: InputSpec) -> nn.Module:
    """What inference runs for a trained network fed as `spec` says."""
    return MirrorAverage(network).eval() if spec.mirror else network
