"""Run a model folder's network in torch: engine "torch" of `petal.load`.

The network gets what `Classifier` feeds every engine, float32 (N, 3, size, size) RGB
normalised as the model card says, and returns logits, the penultimate features the novelty
score reads and, for networks that have them, class activation maps; networks without them
are explained by Grad-CAM on demand (torch only).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from petal.inference import novelty
from petal.inference.engine import BatchRunner, GradientMaps
from petal.inference.model_folder import ModelCard, model_of
from petal.models import cam_layers, gradcam_layer
from petal.models.features import AnswerWithFeatures


def torch_runner(folder: Path, threads: int | None, device: str = "cpu"
                 ) -> tuple[ModelCard, BatchRunner, GradientMaps | None]:
    """The card of model folder `folder`, its batch runner on `device` ("cpu" or "cuda:N")
    and, for a network without class activation maps, its Grad-CAM."""
    if threads:
        torch.set_num_threads(threads)
    network, card = model_of(folder)
    cam = cam_layers(card.architecture["name"], network)
    model = AnswerWithFeatures(network, card.input, cam, card.temperature).to(
        device, memory_format=torch.channels_last)

    def run_batch(batch: np.ndarray) -> tuple[np.ndarray, ...]:
        with torch.inference_mode():
            inputs = torch.from_numpy(batch).to(device).contiguous(
                memory_format=torch.channels_last)
            return tuple(output.float().cpu().numpy() for output in model(inputs))

    layer = gradcam_layer(card.architecture["name"], network) if cam is None else None
    return card, run_batch, _gradcam(network, layer, device) if layer is not None else None


def _gradcam(network: torch.nn.Module, layer: torch.nn.Module, device: str) -> GradientMaps:
    """Grad-CAM at `layer` through torchcam. torchcam rather than pytorch-grad-cam: it needs
    nothing petal does not install already (the other brings OpenCV, scikit-learn and SciPy)
    and hooks only while a map is being made (and is imported only for such networks)."""
    from torchcam.methods import GradCAM

    def maps(batch: np.ndarray, classes: np.ndarray) -> np.ndarray:
        with GradCAM(network, target_layer=layer) as extractor, torch.enable_grad():
            scores = network(torch.from_numpy(batch).to(device))
            found = extractor([int(c) for c in classes], scores, normalized=False)[0]
        return found.detach().float().cpu().numpy()

    return maps


def torch_novelty(folder: Path, card: ModelCard) -> novelty.Novelty | None:
    """The novelty score of model folder `folder`, or None for a model trained without one."""
    if card.novelty is None:
        return None
    return novelty.load(folder / novelty.NOVELTY_FILE, card.novelty)
