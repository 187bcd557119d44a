"""How a model wants its input: side length, crop and normalisation, stored with the model."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from petal.errors import PetalError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Largest input side, before or after the crop: every image is resized to it, so it bounds
# what one image can cost (ImageNet models take 224-600 px).
MAX_SIDE = 2048


@dataclass(frozen=True)
class InputSpec:
    """Square input of `size` px, cut from an image resized so its shorter side is `resize_size`.

    Pixels are scaled to [0, 1], then normalised per channel: (x - mean) / std. With
    `mirror`, the model's answer is the mean of its probabilities for the image and for its
    left-right mirror (the recipe field tta_flip); the network that inference loads does
    this itself, in torch and in an exported ONNX graph alike.
    """

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    crop_pct: float = 0.875
    mirror: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or not 1 <= self.size <= MAX_SIDE:
            raise PetalError(f"input size must be 1 to {MAX_SIDE} pixels, got {self.size!r}")
        values = (*self.mean, *self.std)
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0 or not all(
                math.isfinite(v) for v in values):
            raise PetalError(f"normalisation needs 3 finite means and 3 positive stds, "
                             f"got {self.mean}, {self.std}")
        if not 0 < self.crop_pct <= 1 or self.resize_size > MAX_SIDE:
            raise PetalError(f"crop_pct must be in (0, 1] with size / crop_pct <= {MAX_SIDE}, "
                             f"got {self.crop_pct}")

    @property
    def resize_size(self) -> int:
        """The shorter side images are resized to before the central `size` crop."""
        return round(self.size / self.crop_pct)

    def whole_square(self) -> InputSpec:
        """The same stored square seen whole: `resize_size` px, nothing cropped away."""
        return dataclasses.replace(self, size=self.resize_size, crop_pct=1.0)

    def to_json(self) -> dict[str, Any]:
        # resize_size is derived, written for readers of model.json that are not petal.
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std),
                "crop_pct": self.crop_pct, "resize_size": self.resize_size,
                "mirror": self.mirror}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InputSpec:
        try:
            mirror = data.get("mirror", False)
            if not isinstance(mirror, bool):
                raise TypeError(f"mirror must be true or false, not {mirror!r}")
            return cls(size=int(data["size"]), mean=tuple(float(v) for v in data["mean"]),
                       std=tuple(float(v) for v in data["std"]), crop_pct=float(data["crop_pct"]),
                       mirror=mirror)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise PetalError(f"malformed input spec {data!r} ({exc}): "
                             "save the model again with petal") from exc
