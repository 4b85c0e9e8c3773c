"""Real digits models and field data for the champion and dataset tests, no TensorFlow:
ridge least-squares classifiers shipped as signed ONNX bundles, and field samples
stored and labeled through the hub's own sample store, as devices and labelers make them.

``shifted`` is a strong brightness shift (gain 1.6, offset 6, clipped to the sensor's
0..16): a model fit on clean digits drops from about 94 % to about 21 % on it, one fit
on clean plus shifted digits keeps about 76 %.
"""

from __future__ import annotations

import io
import time
import uuid
from pathlib import Path
from typing import Any

import numpy as np

from cloud.hub.samples import store_batch
from edge.contract import SampleBatch
from tests.digits import DIGITS_LABELS, DIGITS_PREPROCESSING


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Raw 8x8 digits (0..16) split 70/30 with a fixed seed: train x, y, held-out x, y."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x, y = d.images.astype(np.float32), d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    cut = int(len(x) * 0.7)
    return x[order[:cut]], y[order[:cut]], x[order[cut:]], y[order[cut:]]


def shifted(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 1.6 + 6.0, 0, 16).astype(np.float32)


def fit(x: np.ndarray, y: np.ndarray, shuffle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(W [64, 10], b [10])`` of a ridge least-squares classifier on model-domain inputs
    (x / 16), closed form so fixtures stay fast; ``shuffle`` trains on permuted labels
    (the demo's bad v3)."""
    labels = np.random.default_rng(2).permutation(y) if shuffle else y
    a = np.c_[x.reshape(len(x), -1) / 16.0, np.ones(len(x))]
    target = np.eye(10)[labels] * 4.0 - 2.0
    sol = np.linalg.solve(a.T @ a + np.eye(a.shape[1]), a.T @ target)
    return sol[:-1].astype(np.float32), sol[-1].astype(np.float32)


def accuracy(w: np.ndarray, b: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    logits = x.reshape(len(x), -1) / 16.0 @ w + b
    return float((logits.argmax(1) == y).mean())


def bundle(
    out: Path, key: Path, version: int, w: np.ndarray, b: np.ndarray,
    test_accuracy: float, lineage: dict[str, Any] | None = None,
) -> Path:  # fmt: skip
    """A signed digits bundle of ``softmax(x/16 @ w + b)`` (one onnxruntime-fp32 variant)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from cloud.bundle import ArtifactSource, GoldenSet, build_bundle
    from edge.contract import TensorSpec
    from tests.bundles import golden_inputs, make_onnx

    work = out.parent / f".{out.stem}-work"
    work.mkdir(parents=True, exist_ok=True)
    path = make_onnx(work / "model.onnx")
    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name in ("W", "B"):
            init.CopyFrom(numpy_helper.from_array(w if init.name == "W" else b, init.name))
    onnx.save(model, str(path))
    gx = golden_inputs(16)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    gy = np.concatenate([sess.run(None, {"input": gx[i : i + 1]})[0] for i in range(len(gx))])
    build_bundle(
        out,
        name="digits",
        version=version,
        labels=DIGITS_LABELS,
        inputs=[TensorSpec("input", [1, 8, 8, 1], "float32")],
        outputs=[TensorSpec("scores", [1, 10], "float32")],
        preprocessing=DIGITS_PREPROCESSING,
        artifacts=[ArtifactSource(path, "onnxruntime", "fp32", {"accuracy": test_accuracy})],
        private_key=key,
        golden=GoldenSet(gx, gy, None),
        lineage={"metrics": {"test_accuracy": test_accuracy}, **(lineage or {})},
    )
    return out


def npy(a: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(a, dtype=np.float32), allow_pickle=False)
    return buf.getvalue()


def array_input(x: np.ndarray) -> dict[str, Any]:
    import base64

    a = np.asarray(x, dtype=np.float32)
    return {"kind": "array", "dtype": "float32", "shape": list(a.shape),
            "data": base64.b64encode(npy(a)).decode()}  # fmt: skip


def png_input(x: np.ndarray) -> dict[str, Any]:
    """An 8-bit grayscale PNG of a raw 0..16 digit (scaled to 0..255)."""
    import base64

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.rint(np.asarray(x) * 255 / 16).astype(np.uint8), "L").save(buf, "PNG")
    return {"kind": "image", "media_type": "image/png",
            "data": base64.b64encode(buf.getvalue()).decode()}  # fmt: skip


def capture(
    app: Any, device: str, x: np.ndarray, y: np.ndarray, version: int = 2,
    inputs: list[dict[str, Any]] | None = None,
) -> list[str]:  # fmt: skip
    """Store samples a device captured (known labels ``y`` kept), as the upload route
    stores them: ``x`` as arrays, or the given ``inputs``; returns their ids."""
    hub = app.extensions["edgekit_hub"]
    given = inputs if inputs is not None else [array_input(v[..., None]) for v in x]
    ids = [uuid.uuid4().hex for _ in range(len(given))]
    for start in range(0, len(given), 64):
        items = [{
            "id": ids[i], "captured_at": time.time(), "reason": "low_confidence",
            "model": {"name": "digits", "version": version},
            "prediction": {"label": "0", "index": 0, "scores": [0.5] + [0.05] * 9},
            "known_label": str(y[i]), "shadow": None, "input": given[i],
        } for i in range(start, min(start + 64, len(given)))]  # fmt: skip
        batch, rejected = SampleBatch.parse_lenient(
            {"schema": "edgekit.samples/1", "device": device, "samples": items}
        )
        with hub.db.session() as s:
            receipt = store_batch(s, hub.config.data_dir / "samples", batch,
                                  [(r["id"], r["error"]) for r in rejected],
                                  rate_per_minute=1_000_000)  # fmt: skip
        assert len(receipt.accepted) == len(items), receipt
    return ids


def label_known(client: Any, headers: dict[str, str], ids: list[str], y: np.ndarray) -> None:
    """Label the samples with their known labels through the API (what a labeler does)."""
    for start in range(0, len(ids), 500):
        labels = {i: str(v) for i, v in zip(ids[start:start + 500], y[start:start + 500],
                                                   strict=True)}  # fmt: skip
        resp = client.post("/api/v1/samples/labels", headers=headers, json={"labels": labels})
        assert resp.status_code == 200, resp.get_json()
