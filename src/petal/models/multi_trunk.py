"""Several pretrained trunks as one network, named `efficientnet_lite0+efficientnet_lite2`.

Every trunk sees the same central crop, the model's input (`size` px, pixels scaled to [0, 1]
and not normalised further); each resizes it to its own input size (bilinear, antialiased,
which torch and ONNX's Resize compute alike), normalises it as its ImageNet weights expect
and pools its last feature map into a vector. Each vector is standardised (a LayerNorm
without parameters, so that trunks whose features differ in scale start out weighing
alike), the vectors are concatenated, and one linear layer scores the classes: what the
novelty score reads is that concatenation.

Class activation maps: each trunk's last feature map weighted by its slice of the linear
layer and divided by the standardisation's scale, resized to the finest trunk's grid and
summed. Each trunk's map averages to its share of the class score, so the sum averages to
the class score, up to a constant per class and image (the standardisation's shift), which
the heat map's scaling to the positive evidence does not see.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from petal.models.spec import InputSpec

SEPARATOR = "+"
# trunks in one model, at most: each costs its own pass; a card naming thousands would make
# loading it build them all
MAX_TRUNKS = 8
SIZE_MARK = "@"
NORM_EPS = 1e-5  # LayerNorm's default
# timm classes whose features are the average-pooled last feature map, nothing after it
POOLED_LAST = frozenset({"EfficientNet", "ResNet"})


def parse_name(name: str) -> list[tuple[str, int | None]]:
    """`a@260+b` -> [("a", 260), ("b", None)]; ValueError on an empty part or a bad size."""
    if name.count(SEPARATOR) >= MAX_TRUNKS:
        raise ValueError(f"more than {MAX_TRUNKS} trunks")
    parts = []
    for part in name.split(SEPARATOR):
        trunk, mark, size = part.strip().partition(SIZE_MARK)
        if not trunk or (mark and not size.strip().isdigit()):
            raise ValueError(f"{part!r} is not NAME or NAME{SIZE_MARK}SIZE")
        parts.append((trunk.strip(), int(size) if mark else None))
    return parts


def pixel_spec(size: int, crop_pct: float) -> InputSpec:
    """The input of a model of several trunks: pixels scaled to [0, 1], each trunk normalising
    its own view."""
    return InputSpec(size=size, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), crop_pct=crop_pct)


class TrunkInput(nn.Module):
    """The shared crop (N, 3, S, S) in [0, 1] as one trunk takes it: resized, normalised."""

    def __init__(self, spec: InputSpec) -> None:
        super().__init__()
        self.size = spec.size
        self.register_buffer("mean", torch.tensor(spec.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(spec.std).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-1] != self.size:
            images = F.interpolate(images, size=(self.size, self.size), mode="bilinear",
                                   antialias=True, align_corners=False)
        return (images - self.mean) / self.std


class Trunk(nn.Module):
    """One pretrained network without its classifier: (N, 3, S, S) -> pooled features (N, D).

    `network(x)` must return the pooled vector: a timm model after `reset_classifier(0)`."""

    def __init__(self, name: str, network: nn.Module, spec: InputSpec) -> None:
        super().__init__()
        self.name, self.spec = name, spec
        self.features: int = network.num_features
        self.prepare = TrunkInput(spec)
        self.network = network

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.network(self.prepare(images))

    def pool(self) -> nn.Module | None:
        """The layer whose input is the last feature map and whose output, average-pooled, is
        the trunk's features; None where petal knows no such layer (a ViT, a ConvNeXt, whose
        pooled features are normalised again)."""
        pooled_last = type(self.network).__name__ in POOLED_LAST
        return self.network.global_pool if pooled_last else None


def scores(classifier: nn.Linear, pooled: Sequence[torch.Tensor]) -> torch.Tensor:
    """Class scores from each trunk's pooled features: standardised, concatenated, scored."""
    return classifier(torch.cat([F.layer_norm(p, p.shape[-1:], eps=NORM_EPS) for p in pooled],
                                dim=1))


class MultiTrunk(nn.Module):
    """Trunks whose standardised, concatenated features one linear layer scores."""

    def __init__(self, trunks: Sequence[Trunk], num_classes: int) -> None:
        super().__init__()
        self.trunks = nn.ModuleList(trunks)
        self.classifier = nn.Linear(sum(t.features for t in trunks), num_classes)

    def get_classifier(self) -> nn.Linear:
        return self.classifier

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return scores(self.classifier, [trunk(images) for trunk in self.trunks])

    def map_taps(self) -> list[nn.Module] | None:
        """The layers whose inputs the class maps are made of (each trunk's pooling layer),
        or None when a trunk has none (a ViT)."""
        pools = [trunk.pool() for trunk in self.trunks]
        return None if any(p is None for p in pools) else pools

    def class_maps(self, feature_maps: Sequence[torch.Tensor]) -> torch.Tensor:
        """(N, classes, h, w) from each trunk's last feature map (module docstring)."""
        maps, start = [], 0
        grid = max(m.shape[-1] for m in feature_maps)
        for feature_map in feature_maps:
            channels = feature_map.shape[1]
            weight = self.classifier.weight[:, start:start + channels]
            start += channels
            pooled = feature_map.mean((2, 3))
            scale = (pooled.var(dim=1, unbiased=False) + NORM_EPS).rsqrt()
            trunk_map = torch.einsum("nchw,kc->nkhw", feature_map, weight)
            trunk_map = trunk_map * scale.view(-1, 1, 1, 1)
            if trunk_map.shape[-1] != grid:
                trunk_map = F.interpolate(trunk_map, size=(grid, grid), mode="bilinear",
                                          align_corners=False)
            maps.append(trunk_map)
        return torch.stack(maps).sum(0)


class MultiTop(nn.Module):
    """The trained part of a cut MultiTrunk: each trunk's top, from its stored features, then
    the shared classifier (petal.training.cut); it shares the model's parameters."""

    def __init__(self, tops: Sequence[nn.Module], classifier: nn.Linear) -> None:
        super().__init__()
        self.tops = nn.ModuleList(tops)
        self.classifier = classifier

    def get_classifier(self) -> nn.Linear:
        return self.classifier

    def forward(self, features: Sequence[torch.Tensor]) -> torch.Tensor:
        return scores(self.classifier, [top(f) for top, f in zip(self.tops, features,
                                                                  strict=True)])
