"""Export a trained run to every runtime, quantise, evaluate, gate and bundle it.

The steps, one module each: ``run`` (read the training run dir), ``convert`` (fp32 LiteRT,
ONNX, OpenVINO IR), ``quantize`` (int8 for each runtime), ``evaluate`` (each variant on the
held-out test split through the same edge backend the device uses), ``gate`` (leave out
variants that lose too much accuracy), ``golden`` (the on-device self-test set) and
``pipeline`` (the orchestration behind ``edgekit export``).

Targets are named ``<runtime>-<precision>``. Importing this package is cheap: TensorFlow,
ONNX Runtime and OpenVINO are imported inside the functions that need them.
"""

from __future__ import annotations

from edge.contract import PRECISIONS, RUNTIMES
from edge.errors import ConfigError
from edge.runtime import runtime_info

TARGETS: tuple[str, ...] = tuple(f"{r}-{p}" for r in RUNTIMES for p in PRECISIONS)
MODEL_SUFFIX = {runtime: runtime_info(runtime).suffix for runtime in RUNTIMES}


def parse_targets(spec: str | list[str] | tuple[str, ...] | None) -> list[str]:
    """Validate a comma-separated (or listed) target selection, keeping the canonical order.

    ``None`` or an empty selection means every target. Unknown names are refused with the
    list of valid ones, so a typo never silently exports less than asked.
    """
    if spec is None:
        return list(TARGETS)
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    names = [s.strip().lower() for s in items if s.strip()]
    if not names:
        raise ConfigError(f"--targets is empty; valid targets: {', '.join(TARGETS)}")
    unknown = [n for n in names if n not in TARGETS]
    if unknown:
        raise ConfigError(
            f"unknown target(s) {', '.join(unknown)}; valid targets: {', '.join(TARGETS)}"
        )
    return [t for t in TARGETS if t in names]


def split_target(target: str) -> tuple[str, str]:
    """``"litert-int8"`` -> ``("litert", "int8")``."""
    runtime, _, precision = target.rpartition("-")
    return runtime, precision


def model_filename(target: str) -> str:
    """The bundle path of a target's model file, e.g. ``models/litert-int8.tflite``."""
    runtime, _ = split_target(target)
    return f"models/{target}{MODEL_SUFFIX[runtime]}"
