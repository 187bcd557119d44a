"""Models by name: `build_model` returns a network and the `InputSpec` that feeds it.

The registry, and with it torchvision and timm (seconds to import), loads on first use,
so code that only reads an `InputSpec` stays quick to start.
"""

from typing import Any

from petal.models.spec import InputSpec

_REGISTRY = ("architecture_config", "build_model", "cam_layers", "default_weights",
             "gradcam_layer", "input_spec", "model_names", "rebuild_model")

__all__ = ["InputSpec", *_REGISTRY]


def __getattr__(name: str) -> Any:
    if name in _REGISTRY:
        from petal.models import registry

        return getattr(registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
