"""edgekit edge side: everything that runs on the device.

Light by design: numpy, paho-mqtt, cryptography and one inference runtime.
Never imports ``cloud``, TensorFlow or Flask.

The public Python API (docs/runtimes.md, "Python API")::

    from edge import load_model
    with load_model("model.ekb", "edgekit.pub") as model:
        print(model.predict(x).label)

is imported on first use (module ``__getattr__``), so ``import edge`` stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from edge.runtime import Model, Prediction, UnverifiedBundleWarning, Variant, load_model

_LAZY = ("Model", "Prediction", "UnverifiedBundleWarning", "Variant", "load_model")
__all__ = ["Model", "Prediction", "UnverifiedBundleWarning", "Variant", "__version__", "load_model"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module("edge.runtime"), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module 'edge' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
