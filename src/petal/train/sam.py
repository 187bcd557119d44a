"""Sharpness-aware minimisation (Foret et al. 2021) inside Lightning's automatic optimisation.

Each step takes the gradient at the weights w, moves to w + rho * g / |g| (the steepest
nearby point), takes the gradient there and lets the base optimiser (Adam, SGD) step from w
with it. pytorch_optimizer's `SAM` does the perturbation; this module adapts it to the
closure Lightning passes to `optimizer.step`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from pytorch_optimizer import SAM
from torch import nn


class LightningSAM(SAM):
    """pytorch_optimizer's SAM, whose `step` expects the gradients at w to exist already.

    Lightning computes gradients only inside the closure it hands to `step` (training step,
    backward, gradient clipping), so this `step` calls the closure once at w and SAM calls
    it again at the perturbed weights, as LBFGS calls its closure several times. While the
    weights are perturbed, `perturbed` is True.
    """

    perturbed = False

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor:
        if closure is None:
            raise RuntimeError("sharpness-aware minimisation needs the step's closure")
        with torch.enable_grad():
            loss = closure()
        super().step(closure)
        return loss

    def first_step(self, zero_grad: bool = False) -> None:
        super().first_step(zero_grad)
        self.perturbed = True

    def second_step(self, zero_grad: bool = False) -> None:
        self.perturbed = False
        super().second_step(zero_grad)


@contextmanager
def running_statistics_kept(network: nn.Module) -> Iterator[None]:
    """Batch norm layers normalise by batch statistics but leave their running ones as they
    are: the pass at the perturbed weights must not count twice towards them.

    pytorch_optimizer's disable_running_stats / enable_running_stats zero the momentum too,
    but leave num_batches_tracked counting the extra pass and the momentum unrestored if
    the pass raises; this restores both."""
    layers = [m for m in network.modules()
              if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(layer.momentum, layer.num_batches_tracked.clone()) for layer in layers]
    for layer in layers:
        layer.momentum = 0.0  # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for layer, (momentum, tracked) in zip(layers, saved, strict=True):
            layer.momentum = momentum
            layer.num_batches_tracked.copy_(tracked)
