"""ResNet9: the from-scratch network of the original flower notebook, layer for layer.

Input: 64 x 64 px by default (any side >= 8 works: the classifier pools globally),
normalised with ImageNet's mean and std as the original did, so ResNet9 and the
pretrained backbones share one preprocessing. `width` scales every channel count
(0.5 gives a net about 4x cheaper); 1.0 is the original.
"""

from __future__ import annotations

from torch import Tensor, nn

from petal.errors import PetalError
from petal.models.spec import IMAGENET_MEAN, IMAGENET_STD, InputSpec
from petal.models.weights import Weights

INPUT_SIZE = 64


def conv_block(in_channels: int, out_channels: int, pool: bool = False) -> nn.Sequential:
    """3x3 conv, BatchNorm, ReLU, then a 2x2 max-pool when `pool`."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    ]
    if pool:
        layers.append(nn.MaxPool2d(2))
    return nn.Sequential(*layers)


class ResNet9(nn.Module):
    def __init__(self, num_classes: int, width: float = 1.0) -> None:
        super().__init__()
        c64, c128, c256, c512 = (max(1, round(c * width)) for c in (64, 128, 256, 512))
        self.conv1 = conv_block(3, c64)
        self.conv2 = conv_block(c64, c128, pool=True)
        self.res1 = nn.Sequential(conv_block(c128, c128), conv_block(c128, c128))
        self.conv3 = conv_block(c128, c256, pool=True)
        self.conv4 = conv_block(c256, c512, pool=True)
        self.res2 = nn.Sequential(conv_block(c512, c512), conv_block(c512, c512))
        self.classifier = nn.Sequential(nn.AdaptiveMaxPool2d(1), nn.Flatten(),
                                        nn.Linear(c512, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2(self.conv1(x))
        x = self.res1(x) + x
        x = self.conv4(self.conv3(x))
        x = self.res2(x) + x
        return self.classifier(x)


def input_spec(input_size: int | None) -> InputSpec:
    return InputSpec(size=input_size or INPUT_SIZE, mean=IMAGENET_MEAN, std=IMAGENET_STD)


def build(num_classes: int, weights: Weights, width: float = 1.0) -> ResNet9:
    """A randomly initialised ResNet9; it has no pretrained weights."""
    if weights is not None:
        raise PetalError("resnet9 trains from scratch and has no pretrained weights: "
                         "drop --weights (or pass --weights none)")
    if not isinstance(width, (int, float)) or width <= 0:
        raise PetalError(f"resnet9 width must be a positive number (1.0 is the original), "
                         f"got {width!r}")
    return ResNet9(num_classes, float(width))
