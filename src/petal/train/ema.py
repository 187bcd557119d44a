"""An exponential moving average of the weights, validated and saved in their place.

Lightning's WeightAveraging callback does the work (the average is what validation sees,
what the checkpoints hold and what training ends with; `--resume` restores both); this
module only supplies the averaging rule.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from lightning.pytorch.callbacks import WeightAveraging

AveragingRule = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def ema_with_warmup(decay: float) -> AveragingRule:
    """The averaging rule: the decay ramps up as (1 + n) / (10 + n) towards `decay`, as in
    timm's ModelEma, so the first epochs are not dragged back towards the starting weights
    (torch's plain EMA rule weights them by decay ** steps)."""

    def average(averaged: torch.Tensor, current: torch.Tensor,
                num_averaged: torch.Tensor) -> torch.Tensor:
        rate = min(decay, (1.0 + float(num_averaged)) / (10.0 + float(num_averaged)))
        return averaged + (current - averaged) * (1.0 - rate)

    return average


def weight_ema(decay: float) -> WeightAveraging:
    """A callback that averages every parameter and batch norm statistic after each step."""
    return WeightAveraging(avg_fn=ema_with_warmup(decay))
