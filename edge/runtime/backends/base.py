"""The Backend protocol and the registry of runtimes, keyed by runtime name.

One module per runtime (litert.py, onnxruntime.py, openvino.py). Each imports its runtime
package inside ``load`` so a missing runtime is reported (RuntimeMissingError), never fatal.
Backends take and return *model-domain float32* arrays: int8 variants quantise inputs and
dequantise outputs themselves with the scale/zero-point of their TensorSpecs.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from edge.contract import RUNTIMES, Artifact
from edge.errors import BackendError, RuntimeMissingError

log = logging.getLogger(__name__)

# The backend module of each runtime the contract names: edge/runtime/backends/<runtime>.py.
BACKEND_MODULES = {runtime: f"{__package__}.{runtime}" for runtime in RUNTIMES}


@dataclass(frozen=True)
class RuntimeInfo:
    """What edgekit knows about a runtime, declared once, as ``INFO`` in its backend module.

    ``packages``: (importable module, its pip distributions) in the order the backend tries
    them; the first distribution is the one to install. ``extra``: edgekit's pip extra.
    """

    name: str
    title: str
    suffix: str
    packages: tuple[tuple[str, tuple[str, ...]], ...]
    extra: str

    @property
    def install_hint(self) -> str:
        pip_name = self.packages[0][1][0]
        return f"install it with: pip install {pip_name}  (or: pip install 'edgekit[{self.extra}]')"


def runtime_info(runtime: str) -> RuntimeInfo:
    """The runtime's declared facts (imports only its backend module, never the runtime)."""
    if runtime not in BACKEND_MODULES:
        raise BackendError(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    info: RuntimeInfo = importlib.import_module(BACKEND_MODULES[runtime]).INFO
    return info


class Backend(Protocol):
    """A loaded model on one runtime."""

    runtime: str

    def load(self, model_path: Path, artifact: Artifact) -> None:
        """Load the artifact's model file (companions lie beside it)."""

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Run a float32 batch ``x`` (batch first) and return float32 scores, batch first."""
        ...

    def cancel(self) -> bool:
        """Ask the inference running now to stop; called from another thread (the serving
        watchdog, when the time limit passed). The interrupted ``infer`` raises. False when
        the runtime cannot interrupt a run (LiteRT): the call then ends on its own."""
        ...

    def describe(self) -> dict[str, Any]:
        """Runtime name, version, device and threads, for status and telemetry."""
        ...

    def close(self) -> None:
        """Release the model."""


def create(runtime: str, **options: Any) -> Backend:
    """A new, unloaded backend for ``runtime``; RuntimeMissingError if not installed."""
    if runtime not in BACKEND_MODULES:
        raise BackendError(f"unknown runtime {runtime!r} (one of {', '.join(RUNTIMES)})")
    module = importlib.import_module(BACKEND_MODULES[runtime])
    backend: Backend = module.create(**options)
    return backend


def available() -> dict[str, dict[str, Any]]:
    """Which runtimes can be used here: ``{runtime: {"available": bool, ...}}``."""
    out: dict[str, dict[str, Any]] = {}
    for runtime, mod_name in BACKEND_MODULES.items():
        try:
            module = importlib.import_module(mod_name)
            out[runtime] = module.probe()
        except RuntimeMissingError as exc:
            out[runtime] = {"available": False, "reason": str(exc)}
        except Exception as exc:  # a broken runtime install is reported, never fatal
            log.warning("runtime %s unusable: %s", runtime, exc)
            out[runtime] = {"available": False, "reason": f"{type(exc).__name__}: {exc}"}
    return out
