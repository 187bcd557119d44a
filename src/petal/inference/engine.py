"""What an engine (torch_engine, onnx_engine) hands the Classifier: functions on batches of
float32 (N, 3, size, size) input, normalised as the model card says."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

# input -> (logits (N, classes), penultimate features (N, D)) and, for a network that has
# them, class activation maps (N, classes, h, w)
BatchRunner = Callable[[np.ndarray], tuple[np.ndarray, ...]]
# input, (N,) classes -> Grad-CAM maps (N, h, w) of those classes
GradientMaps = Callable[[np.ndarray, np.ndarray], np.ndarray]
