"""Variant sections: each variant's own numbers, the gate's reasons with intervals."""

from __future__ import annotations

from typing import Any

import numpy as np

from cloud.export.card import quality
from cloud.export.card import variants as sections
from cloud.export.stats import paired_difference_interval


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _setup() -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    z = rng.normal(size=(60, 3))
    z[np.arange(60), y] += 2.0
    float_scores = _softmax(z)
    ruined = float_scores.copy()
    ruined[y == 2] = ruined[y == 2][:, [0, 2, 1]]  # int8 that loses class 2
    flipped = float_scores.copy()
    flipped[:2] = flipped[:2, ::-1]
    gate_ok = {
        "decision": "kept",
        "reason": "kept: ...",
        "confidence": 0.95,
        "checks": {
            "accuracy_drop": {
                "value": 1.667,
                "interval": [-2.1, 7.76],
                "n": 60,
                "limit": 1.0,
                "unit": "points",
                "passed": True,
            },
            "agreement": {
                "value": 0.99,
                "interval": [0.98, 0.996],
                "n": 569,
                "limit": 0.98,
                "unit": "fraction",
                "passed": True,
            },
        },
    }
    gate_bad = {
        "decision": "left out",
        "reason": "class '2' agreement 0.0% [0.0, 16.1] on 20 inputs is below 90%",
        "confidence": 0.95,
        "checks": {
            "class_agreement": {
                "value": 0.0,
                "interval": [0.0, 0.161],
                "n": 20,
                "limit": 0.9,
                "unit": "fraction",
                "passed": False,
                "class": "2",
            },
        },
    }
    rows = [
        {
            "target": "litert-int8",
            "precision": "int8",
            "included": True,
            "scores": flipped,
            "agreement": 0.97,
            "agreement_all": 0.99,
            "agreement_inputs": 569,
            "gate": gate_ok,
        },
        {
            "target": "onnxruntime-int8",
            "precision": "int8",
            "included": False,
            "scores": ruined,
            "reason": "class agreement",
            "gate": gate_bad,
        },
        {
            "target": "openvino-int8",
            "precision": "int8",
            "included": False,
            "reason": "runtime not installed",
            "scores": None,
            "gate": {
                "decision": "left out",
                "reason": "failed during load: no openvino",
                "checks": {},
            },
        },
    ]
    return y, float_scores, rows


def test_every_variant_with_scores_gets_its_own_numbers() -> None:
    y, fs, rows = _setup()
    qs = sections.measure_variants(rows, y, fs, seed=0)
    assert set(qs) == {"litert-int8", "onnxruntime-int8"}
    text = sections.quality_table(rows, qs, quality.measure(fs, y), fs, ["0", "1", "2"], "v.png")
    ruined = qs["onnxruntime-int8"]
    line = next(r for r in text.splitlines() if r.startswith("| `onnxruntime-int8`"))
    n_dis = int(np.sum(np.asarray(rows[1]["scores"]).argmax(1) != fs.argmax(1)))
    assert f"{100 * ruined.accuracy:.2f}% [" in line and f"| {n_dis} / 60 |" in line
    assert "`2` (0.000)" in line  # the ruined class is named as the weakest
    assert "| float (Keras) | reference |" in text
    assert "(charts/v.png)" in text
    table = sections.runtime_table(rows, qs, None)
    assert "| 99.00% of 569 |" in table  # agreement on every gate input
    assert "- `openvino-int8`: failed during load: no openvino" in table


def test_gate_section_renders_each_check_with_its_interval() -> None:
    _, _, rows = _setup()
    text = sections.gate_section(rows)
    assert text.startswith("## Gate decisions")
    assert (
        "| `litert-int8` | accuracy drop | +1.67 pt | [-2.10, 7.76] | 60 | at most 1 pt |" in text
    )
    assert (
        "| `litert-int8` | agreement | 99.00% | [98.0, 99.6] | 569 | at least 98% | pass |" in text
    )
    bad = next(r for r in text.splitlines() if "class agreement" in r)
    assert "`2`: 0.00%" in bad and "[0.0, 16.1]" in bad and "**fail**" in bad and "left out" in bad
    assert "- `openvino-int8`: left out: failed during load: no openvino" in text


def test_gate_section_is_absent_for_rows_without_a_gate_block() -> None:
    _, _, rows = _setup()
    assert sections.gate_section([{k: v for k, v in r.items() if k != "gate"} for r in rows]) == ""


def test_quantisation_drop_has_the_paired_interval() -> None:
    y, fs, rows = _setup()
    text = sections.quantisation(rows, quality.measure(fs, y), fs, y)
    ruined = np.asarray(rows[1]["scores"]).argmax(1) == y
    right = fs.argmax(1) == y
    b, c = int(np.sum(right & ~ruined)), int(np.sum(~right & ruined))
    lo, hi = paired_difference_interval(b, c, 60)
    line = next(r for r in text.splitlines() if r.startswith("| `onnxruntime-int8`"))
    assert f"[{100 * lo:.2f}, {100 * hi:.2f}]" in line
    assert "| n/a | n/a | n/a |" in next(r for r in text.splitlines() if "openvino" in r)
