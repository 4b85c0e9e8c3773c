"""The per-variant agent memory table of ``edgekit bench`` (pure parts, and the venv probe)."""

from __future__ import annotations

import sys
from pathlib import Path

from cloud.bench.agent_memory import COLUMNS, export_memory_mb, memory_table, venv_runtimes


def test_export_memory_is_read_from_requires_and_missing_is_none() -> None:
    assert export_memory_mb({"requires": {"memory_mb": 41.5}}) == 41.5
    assert export_memory_mb({"requires": {"runtime_version": "2.3.0"}}) is None
    for bad in ({}, {"requires": None}, {"requires": {"memory_mb": True}}, {"requires": "x"}):
        assert export_memory_mb(bad) is None


def test_one_table_row_per_model_variant_and_install() -> None:
    row = {
        "model": "mobilenetv2",
        "variant": "litert-int8",
        "install": "edge-only venv",
        "rss_mib": 120.0,
        "peak_rss_mib": 130.0,
        "over_bare_mib": 80.0,
        "export_memory_mb": 21.0,
    }
    table = memory_table([row, {**row, "variant": "litert-fp32", "export_memory_mb": None}])
    assert table["columns"] == COLUMNS
    assert table["rows"][0] == [
        "mobilenetv2",
        "litert-int8",
        "edge-only venv",
        120.0,
        130.0,
        80.0,
        21.0,
    ]
    assert table["rows"][1][-1] is None and len(table["rows"]) == 2


def test_the_venv_is_asked_which_runtimes_it_has(tmp_path: Path) -> None:
    assert "litert" in venv_runtimes(Path(sys.executable).parent)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\necho not json\n")
    (fake / "python").chmod(0o755)
    assert venv_runtimes(fake) == []


def test_a_large_image_is_rounded_to_fit_one_mqtt_payload() -> None:
    import json

    import numpy as np

    from cloud.bench.agent_memory import request_input
    from edge.contract import MAX_PAYLOAD_BYTES

    small = np.array([[0.25, 16.0]], dtype=np.float32)
    assert request_input(small) == [[0.25, 16.0]]
    image = np.random.default_rng(0).uniform(0, 16, (224, 224, 3)).astype(np.float32)
    payload = json.dumps({"id": "r0", "inputs": request_input(image)})
    assert len(payload) < MAX_PAYLOAD_BYTES
    assert json.dumps({"inputs": image.tolist()}).__len__() > MAX_PAYLOAD_BYTES
