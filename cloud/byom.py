"""Bring your own model: wrap .tflite / .onnx / OpenVINO .xml files as a signed bundle.

Input and output specs (including int8 scale/zero-point) are read from each model by its
own runtime. Golden outputs come from running the first fp32 model (else the first
model) on the golden inputs, and every variant must agree with them within tolerance, or
the bundle is refused. Latency is measured here; accuracy only with labelled data.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from cloud.bundle import DEFAULT_TOLERANCE, ArtifactSource, GoldenSet, build_bundle
from cloud.export.requires import with_requirements
from edge import __version__
from edge.contract import RUNTIMES, TensorSpec
from edge.errors import BackendError, ConfigError, EdgekitError
from edge.runtime import runtime_info
from edge.runtime.backends import base

SUFFIX_RUNTIME = {runtime_info(r).suffix: r for r in RUNTIMES}
LATENCY_RUNS = 30
N_RANDOM_GOLDEN = 8


def runtime_for(path: Path) -> str:
    runtime = SUFFIX_RUNTIME.get(path.suffix.lower())
    if runtime is None:
        raise ConfigError(f"{path.name}: unknown model type (use .tflite, .onnx or .xml+.bin)")
    if not path.is_file():
        raise ConfigError(f"model file {path} does not exist")
    return runtime


def _tflite_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec], bool]:
    from edge.runtime.backends.litert import _interpreter_class

    cls, _pkg, _ver = _interpreter_class()
    interp = cls(model_path=str(path))
    interp.allocate_tensors()

    def spec(d: dict[str, Any]) -> TensorSpec:
        dtype = np.dtype(d["dtype"]).name
        scale, zp = d.get("quantization", (0.0, 0))
        shape = [int(s) for s in d.get("shape_signature", d["shape"])]
        if dtype in ("int8", "uint8") and scale:
            return TensorSpec(d["name"], shape, dtype, float(scale), int(zp))
        return TensorSpec(d["name"], shape, dtype)

    ins = [spec(d) for d in interp.get_input_details()]
    outs = [spec(d) for d in interp.get_output_details()]
    quantised = any(np.dtype(t["dtype"]) == np.int8 for t in interp.get_tensor_details())
    return ins, outs, quantised


def _onnx_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec], bool]:
    import onnxruntime as ort

    from edge.runtime.backends.onnxruntime import _ORT_TYPES

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def spec(t: Any) -> TensorSpec:
        shape = [d if isinstance(d, int) and d > 0 else -1 for d in t.shape]
        return TensorSpec(t.name, shape, _ORT_TYPES.get(t.type, t.type))

    quantised = False
    try:
        import onnx

        graph = onnx.load(str(path), load_external_data=False).graph
        quantised = any(
            n.op_type in ("QuantizeLinear", "QLinearConv", "QLinearMatMul") for n in graph.node
        )
    except ImportError:
        pass
    return [spec(t) for t in sess.get_inputs()], [spec(t) for t in sess.get_outputs()], quantised


def _openvino_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec], bool]:
    import openvino as ov

    model = ov.Core().read_model(str(path))
    names = {"f32": "float32", "f16": "float16", "i8": "int8", "u8": "uint8"}

    def spec(port: Any) -> TensorSpec:
        dims = [d.get_length() if d.is_static else -1 for d in port.get_partial_shape()]
        et = port.get_element_type().get_type_name()
        name = port.get_any_name() if port.get_names() else "tensor"
        return TensorSpec(name, dims, names.get(et, et))

    quantised = any(op.get_type_name() == "FakeQuantize" for op in model.get_ops())
    return [spec(p) for p in model.inputs], [spec(p) for p in model.outputs], quantised


def read_specs(path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The model's own input and output TensorSpecs, read by its runtime."""
    return _read(path)[:2]


def _read(path: Path) -> tuple[list[TensorSpec], list[TensorSpec], bool]:
    runtime = runtime_for(path)
    readers = {"litert": _tflite_specs, "onnxruntime": _onnx_specs, "openvino": _openvino_specs}
    try:
        ins, outs, quantised = readers[runtime](path)
    except ImportError as exc:
        raise BackendError(f"{path.name}: the {runtime} runtime is not installed") from exc
    except EdgekitError:
        raise
    except Exception as exc:
        raise BackendError(f"{path.name}: {runtime} cannot read the model: {exc}") from exc
    if len(ins) != 1 or not outs:
        raise ConfigError(f"{path.name}: edgekit wraps models with one input (found {len(ins)})")
    return ins, outs, quantised


def _float_interface(spec: TensorSpec, name: str) -> TensorSpec:
    shape = [1, *spec.shape[1:]] if spec.shape else [1]
    return TensorSpec(name, shape, "float32")


def parse_labels(value: str) -> list[str]:
    """Labels from a file (one per line, or a JSON list) or an inline ``a,b,c``."""
    path = Path(value)
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if text.lstrip().startswith("["):
            try:
                labels = json.loads(text)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"labels file {path} is not a JSON list: {exc}") from exc
            if not isinstance(labels, list):
                raise ConfigError(f"labels file {path} must hold a JSON list")
            return [str(s) for s in labels]
        return [line.strip() for line in text.splitlines() if line.strip()]
    labels = [s.strip() for s in value.split(",")]
    if not all(labels):
        raise ConfigError(f"--labels {value!r}: empty label (not a file either)")
    return labels


def parse_tolerance(items: list[str]) -> dict[str, float]:
    tol = dict(DEFAULT_TOLERANCE)
    for item in items:
        key, sep, val = item.partition("=")
        if not sep or key not in DEFAULT_TOLERANCE:
            raise ConfigError(f"--tolerance {item!r}: use {' or '.join(DEFAULT_TOLERANCE)}=NUMBER")
        try:
            tol[key] = float(val)
        except ValueError as exc:
            raise ConfigError(f"--tolerance {item!r}: {val!r} is not a number") from exc
    return tol


def _load_npy(path: Path, what: str) -> np.ndarray:
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{what} {path} is not a readable .npy: {exc}") from exc
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        raise ConfigError(f"{what} {path} must be a numeric array")
    return arr.astype(np.float32)


def _fit(x: np.ndarray, spec: TensorSpec, what: str) -> np.ndarray:
    sample = tuple(spec.shape[1:])
    if x.shape[1:] == sample or (
        all(s <= 0 or s == g for s, g in zip(sample, x.shape[1:], strict=False))
        and x.ndim == len(sample) + 1
    ):
        return x
    if x.ndim >= 1 and int(np.prod(x.shape[1:])) == int(np.prod(sample)):
        return x.reshape((x.shape[0], *sample))
    raise ConfigError(f"{what} shape {list(x.shape)} does not fit model input {list(spec.shape)}")


def _latency(backend: base.Backend, x: np.ndarray) -> dict[str, float]:
    sample = x[:1]
    for _ in range(3):
        backend.infer(sample)
    times = []
    for _ in range(LATENCY_RUNS):
        t0 = time.perf_counter()
        backend.infer(sample)
        times.append((time.perf_counter() - t0) * 1000)
    times.sort()
    return {
        "latency_ms": round(statistics.median(times), 4),
        "latency_p95_ms": round(times[int(0.95 * (len(times) - 1))], 4),
    }


def create_bundle(  # noqa: C901 - one linear build: read, check, golden set, measure, sign
    *,
    models: list[Path],
    name: str,
    version: int,
    out: Path,
    key: Path,
    labels: list[str] | None = None,
    golden_inputs: Path | None = None,
    calibration: Path | None = None,
    eval_data: Path | None = None,
    preprocessing: str | None = None,
    tolerance: dict[str, float] | None = None,
    threads: int | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> Any:
    """Wrap ``models`` (variants of one model) into a signed bundle; return its Manifest."""
    from cloud.keys import load_private_key

    priv = load_private_key(key)  # fail early, before any slow work
    pre = _parse_preprocessing(preprocessing)
    variants = []
    for path in models:
        runtime = runtime_for(path)
        ins, outs, quantised = _read(path)
        precision = "int8" if quantised else "fp32"
        companions = []
        if runtime == "openvino":
            bin_path = path.with_suffix(".bin")
            if not bin_path.is_file():
                raise ConfigError(
                    f"{path.name}: OpenVINO weights {bin_path.name} not found beside it"
                )
            companions = [bin_path]
        variants.append(ArtifactSource(path, runtime, precision, {}, ins, outs, companions))
        progress(f"read {path.name}: {runtime}-{precision}, input {ins[0].shape} {ins[0].dtype}")
    ref_var = next((v for v in variants if v.precision == "fp32"), variants[0])
    in_spec = _float_interface(ref_var.inputs[0], "input")
    n_classes = ref_var.outputs[0].shape[-1]
    if labels is None:
        labels = [f"class_{i}" for i in range(n_classes)]
    if n_classes > 0 and len(labels) != n_classes:
        raise ConfigError(f"{len(labels)} labels given but the model outputs {n_classes} scores")
    out_spec = TensorSpec("scores", [1, len(labels)], "float32")
    for v in variants:
        if [max(d, -1) for d in v.inputs[0].shape[1:]] != [max(d, -1) for d in in_spec.shape[1:]]:
            raise ConfigError(
                f"{v.path.name}: input shape {v.inputs[0].shape} differs from "
                f"{ref_var.path.name}'s {ref_var.inputs[0].shape}"
            )

    rng = np.random.default_rng(0)
    golden_source = "given"
    if golden_inputs is not None:
        gx = _fit(_load_npy(golden_inputs, "golden inputs"), in_spec, "golden inputs")
    elif calibration is not None:
        gx = _fit(_load_npy(calibration, "calibration data"), in_spec, "calibration data")[
            :N_RANDOM_GOLDEN
        ]
        golden_source = "calibration"
    else:
        sample = [d if d > 0 else 1 for d in in_spec.shape[1:]]
        gx = rng.uniform(0, 1, (N_RANDOM_GOLDEN, *sample)).astype(np.float32)
        golden_source = "random uniform [0,1)"
        progress(
            "no --golden-inputs: the golden set uses random inputs (self-test checks "
            "runtime agreement only)"
        )
    tol = tolerance or dict(DEFAULT_TOLERANCE)
    evaluation = None
    if eval_data is not None:
        evaluation = _load_eval(eval_data, in_spec)

    backends = {}
    try:
        for v in [ref_var] + [v for v in variants if v is not ref_var]:
            b = base.create(v.runtime, threads=threads)
            b.load(v.path, _artifact_of(v))
            backends[v.target] = b
        gy = backends[ref_var.target].infer(gx)
        for v in variants:
            b = backends[v.target]
            got = b.infer(gx)
            mae = float(np.mean(np.abs(got - gy)))
            agree = float(np.mean(got.argmax(1) == gy.argmax(1)))
            if mae > tol["max_mean_abs_error"] or agree < tol["min_top1_agreement"]:
                raise ConfigError(
                    f"{v.path.name} disagrees with {ref_var.path.name} on the golden set "
                    f"(mean abs error {mae:.4g}, top-1 agreement {agree:.2f}); loosen --tolerance "
                    "if that is expected"
                )
            metrics: dict[str, Any] = {
                "accuracy": None,
                **_latency(b, gx),
                "golden_mean_abs_error": mae,
                "golden_top1_agreement": agree,
            }
            if evaluation is not None:
                ex, ey = evaluation
                pred = b.infer(ex).argmax(1)
                metrics["accuracy"] = float(np.mean(pred == ey))
            v.metrics = with_requirements(metrics, v.runtime)  # the runtime that just ran it
            progress(
                f"{v.target}: latency {metrics['latency_ms']:.3f} ms, accuracy "
                f"{metrics['accuracy'] if metrics['accuracy'] is not None else 'unknown'}"
            )
        reference = None
        if calibration is not None:
            cx = _fit(_load_npy(calibration, "calibration data"), in_spec, "calibration data")
            reference = reference_stats(cx, backends[ref_var.target].infer(cx), labels)
    finally:
        for b in backends.values():
            b.close()
    return build_bundle(
        out,
        name=name,
        version=version,
        labels=labels,
        inputs=[in_spec],
        outputs=[out_spec],
        preprocessing=pre,
        artifacts=variants,
        private_key=priv,
        golden=GoldenSet(gx, gy, None, tol),
        reference=reference,
        lineage={
            "source": "byom",
            "models": [p.name for p in models],
            "golden_inputs": golden_source,
            "code_version": f"edgekit {__version__}",
        },
    )


def _artifact_of(v: ArtifactSource) -> Any:
    from edge.contract import Artifact

    return Artifact(v.path.name, v.runtime, v.precision, "0" * 64, 0, {}, v.inputs, v.outputs)


def _parse_preprocessing(value: str | None) -> dict[str, Any]:
    if value is None:
        return {"kind": "none"}
    text = Path(value).read_text(encoding="utf-8") if Path(value).is_file() else value
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--preprocessing is neither a JSON file nor JSON: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("kind") not in ("image", "tabular", "none"):
        raise ConfigError("--preprocessing must be an object with kind image, tabular or none")
    return obj


def _load_eval(path: Path, spec: TensorSpec) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as npz:
            x, y = npz["x"], npz["y"]
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"--eval-data {path}: need an .npz with arrays x and y ({exc})") from exc
    if len(x) != len(y):
        raise ConfigError(f"--eval-data {path}: x has {len(x)} rows, y has {len(y)}")
    return _fit(x.astype(np.float32), spec, "eval data"), y.astype(np.int64)


def reference_stats(x: np.ndarray, scores: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Drift reference (reference.json, same rules as the trainer's) from calibration data."""
    from cloud.data.reference import build_reference

    if x.ndim == 4:
        names = [f"channel_{c}" for c in range(x.shape[-1])]
        return build_reference(x, "image", names, scores, labels)
    flat = x.reshape(len(x), -1)
    names = [f"feature_{i}" for i in range(flat.shape[1])]
    return build_reference(flat, "tabular", names, scores, labels)
