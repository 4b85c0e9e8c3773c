"""Pure parts of the exporter: target parsing, the gate, the golden set, the run-dir reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cloud.export import TARGETS, model_filename, parse_targets
from cloud.export.convert import Converted
from cloud.export.gate import FloatAnswers, GateRules, apply_gate
from cloud.export.golden import deviation, pick_golden, tolerance
from cloud.export.run import load_run
from cloud.export.variants import Variant
from edge.errors import ConfigError, DataError


def test_targets_default_all_six_in_canonical_order() -> None:
    assert parse_targets(None) == list(TARGETS)
    assert len(TARGETS) == 6
    assert parse_targets("openvino-int8, LITERT-fp32") == ["litert-fp32", "openvino-int8"]
    assert model_filename("openvino-int8") == "models/openvino-int8.xml"
    with pytest.raises(ConfigError, match="empty"):
        parse_targets(" , ")
    with pytest.raises(ConfigError, match="unknown target"):
        parse_targets("litert-fp16")


def _variant(target: str, wrong: int, tmp_path: Path) -> Variant:
    """A variant that answers ``wrong`` of the 200 rows of ``_answers()`` wrongly."""
    model = tmp_path / f"{target}.bin"
    model.write_bytes(b"x")
    v = Variant(target, converted=Converted(model, [], []))
    pred = np.zeros(200, dtype=np.int64)
    pred[:wrong] = 1
    v.scores, v.pred_all = np.eye(2, dtype=np.float32)[pred], pred
    return v


def _answers() -> FloatAnswers:
    """200 test rows, all of class 0; the float model gets 198 right (99.0 %)."""
    float_pred = np.zeros(200, dtype=np.int64)
    float_pred[:2] = 1
    return FloatAnswers(np.zeros(200, dtype=np.int64), float_pred, float_pred, ["a", "b"])


def test_gate_leaves_out_large_drops_and_failures(tmp_path: Path) -> None:
    good = _variant("litert-fp32", 2, tmp_path)
    edge_case = _variant("litert-int8", 4, tmp_path)  # exactly 1.0 point: allowed
    bad = _variant("onnxruntime-int8", 5, tmp_path)
    broken = Variant("openvino-int8")
    broken.fail("quantise", RuntimeError("nncf exploded"))
    loose = GateRules(max_accuracy_drop=1.0, min_agreement=0.0, min_class_agreement=0.0)
    passed = apply_gate([good, edge_case, bad, broken], _answers(), loose)
    assert passed == [good, edge_case]
    assert bad.included is False and "1.50 points below" in bad.reason
    assert "gate: at most 1 point" in bad.reason
    assert broken.reason.startswith("failed during quantise: RuntimeError: nncf exploded")
    assert bad.metrics["accuracy_drop_points"] == pytest.approx(1.5)


def test_negative_gate_leaves_out_an_unchanged_variant(tmp_path: Path) -> None:
    v = _variant("litert-fp32", 2, tmp_path)
    assert apply_gate([v], _answers(), GateRules(max_accuracy_drop=-1.0)) == []
    assert "0.00 points below" in v.reason
    with pytest.raises(ConfigError):
        apply_gate([v], _answers(), GateRules(max_accuracy_drop=float("nan")))


def test_golden_pick_covers_every_class_and_is_deterministic() -> None:
    y = np.repeat(np.arange(10), 30)
    idx = pick_golden(y, 32, seed=0)
    assert len(idx) == 32 and len(set(idx.tolist())) == 32
    assert set(y[idx].tolist()) == set(range(10))
    assert np.array_equal(idx, pick_golden(y, 32, seed=0))
    assert len(pick_golden(np.array([0, 1, 1]), 32)) == 3  # never more than there is


def test_golden_tolerance_has_margin_over_the_worst_variant() -> None:
    ref = np.eye(4, dtype=np.float32)[[0, 1, 2, 3] * 8]
    noisy = ref + 0.02
    measured = {"a": deviation(ref, ref), "b": deviation(noisy, ref)}
    assert measured["b"]["mean_abs_error"] == pytest.approx(0.02, rel=1e-5)
    tol = tolerance(measured, n=32)
    assert tol["max_mean_abs_error"] >= 2 * 0.02
    assert tol["min_top1_agreement"] == pytest.approx(1 - 2 / 32)
    flipped = ref[:, ::-1].copy()
    assert deviation(flipped, ref)["top1_agreement"] == 0.0
    assert deviation(flipped, ref)["mean_abs_error"] > tol["max_mean_abs_error"]
    assert tolerance({}, n=32)["max_mean_abs_error"] > 0


def _write_run(root: Path, **arrays: np.ndarray) -> Path:
    root.mkdir()
    info = {"labels": ["a", "b"], "input": {}, "output": {}, "preprocessing": {}}
    (root / "run.json").write_text(json.dumps(info))
    (root / "reference.json").write_text("{}")
    (root / "model.keras").write_bytes(b"")
    savez: Any = np.savez  # numpy's stub types **kwds as the allow_pickle flag
    savez(root / "data.npz", **arrays)
    return root


def _splits(n: int = 4, y_max: int = 1) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for s in ("train", "val", "test"):
        out[f"x_{s}"] = np.zeros((n, 3), np.float32)
        out[f"y_{s}"] = np.arange(n) % (y_max + 1)
    return out


def test_run_loader_accepts_a_consistent_run(tmp_path: Path) -> None:
    run = load_run(_write_run(tmp_path / "r", **_splits()))
    assert run.labels == ["a", "b"] and run.input_shape == (3,)
    assert run.x["test"].dtype == np.float32 and run.y["test"].dtype == np.int64


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"y_test": np.array([0, 1, 2, 0])}, "outside 0..1"),
        ({"x_val": np.full((4, 3), np.nan, np.float32)}, "NaN"),
        ({"x_val": np.zeros((4, 5), np.float32)}, "different sample shapes"),
        ({"x_train": np.zeros((0, 3), np.float32), "y_train": np.zeros(0, np.int64)}, "empty"),
        ({"y_val": np.zeros(3, np.int64)}, "must be a batch and its labels"),
        ({"y_val": np.zeros(4, np.float32)}, "integer"),
    ],
)
def test_run_loader_refuses_inconsistent_data(
    tmp_path: Path, change: dict[str, np.ndarray], message: str
) -> None:
    with pytest.raises(DataError, match=message):
        load_run(_write_run(tmp_path / "r", **{**_splits(), **change}))


def test_run_loader_refuses_garbage_files(tmp_path: Path) -> None:
    root = _write_run(tmp_path / "r", **_splits())
    (root / "data.npz").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"cannot read data\.npz"):
        load_run(root)
    root2 = _write_run(tmp_path / "r2", **_splits())
    (root2 / "run.json").write_text("[1, 2]")
    with pytest.raises(DataError, match="JSON object"):
        load_run(root2)
    (root2 / "run.json").write_text(json.dumps({"labels": ["only"]}))
    with pytest.raises(DataError, match="lacks"):
        load_run(root2)


def test_captured_keeps_c_level_output_and_restores_the_terminal(
    capfd: pytest.CaptureFixture[str],
) -> None:
    import os

    from cloud.export.quiet import captured

    with captured() as log:
        print("from python")
        os.write(2, b"from C on fd 2\n")
    print("after")
    out, err = capfd.readouterr()
    assert "from python" in log.text and "from C on fd 2" in log.text
    assert log.tail(1) in ("from python", "from C on fd 2")
    assert out == "after\n" and "from C" not in err
