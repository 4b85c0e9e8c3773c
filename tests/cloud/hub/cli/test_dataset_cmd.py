"""``edgekit hub dataset create|list|show|export`` against a live hub: export writes what
``edgekit train`` reads, merged with the original data, with edgekit-dataset.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from cloud.data.field import read_meta
from cloud.data.fingerprint import fingerprint
from cloud.data.sources import load_dataset
from tests.cloud.hub.champion import field
from tests.cloud.hub.champion.conftest import digits

__all__ = ["digits"]


def labeled(live_hub: Any, device: str, x: np.ndarray, y: np.ndarray, **kw: Any) -> list[str]:
    ids = field.capture(live_hub.app, device, x, y, **kw)
    client = live_hub.app.test_client()
    field.label_known(client, {"Authorization": f"Bearer {live_hub.tokens['operator']}"}, ids, y)
    return ids


def test_create_list_export_merged_with_digits(live_hub: Any, cli: Any, digits: Any,
                                               tmp_path: Path) -> None:  # fmt: skip
    x, y = field.shifted(digits.held_x[:40]), digits.held_y[:40]
    labeled(live_hub, "shift-0", x[:25], y[:25])
    labeled(live_hub, "shift-1", x[25:], y[25:])
    made = cli("dataset", "create", "digits-field", "--filter", "model=digits")
    assert made.code == 0, made.err
    assert "digits-field@1: 40 samples from 2 device(s)" in made.out
    listed = cli("dataset", "list")
    assert listed.code == 0 and "digits-field" in listed.out
    assert json.loads(cli("dataset", "show", "digits-field", "--json").out)["versions"][0][
        "counts"]["by_device"] == {"shift-0": 25, "shift-1": 15}  # fmt: skip

    out = tmp_path / "train-me"
    done = cli("dataset", "export", "digits-field", "--out", str(out), "--merge", "digits")
    assert done.code == 0, done.err
    assert done.out.strip().splitlines()[-1] == str(out)
    ds = load_dataset(str(out))
    assert ds.x.shape == (1797 + 40, 8, 8, 1) and ds.labels == [str(d) for d in range(10)]
    meta = read_meta(out)
    assert meta is not None and meta["samples"] == 1837
    assert meta["merged"]["source"] == "digits" and meta["merged"]["samples"] == 1797
    assert meta["merged"]["fingerprint"] == fingerprint(load_dataset("digits"))
    assert ds.extra["field_dataset"]["counts"]["by_device"] == {"shift-0": 25, "shift-1": 15}

    again = cli("dataset", "export", "digits-field@1", "--out", str(out))
    assert again.code == 2 and "not empty" in again.err
    assert cli("dataset", "export", "digits-field@1", "--out", str(out), "--force").code == 0
    assert read_meta(out)["merged"] is None  # type: ignore[index]


def test_export_images_merged_with_an_image_folder(live_hub: Any, cli: Any, digits: Any,
                                                   tmp_path: Path) -> None:  # fmt: skip
    x, y = digits.held_x[:10], digits.held_y[:10]
    labeled(live_hub, "cam-0", x, y, inputs=[field.png_input(v) for v in x])
    original = tmp_path / "original"
    for i, (img, label) in enumerate(zip(digits.train_x[:30], digits.train_y[:30], strict=True)):
        (original / str(label)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.rint(img * 255 / 16).astype(np.uint8), "L").save(
            original / str(label) / f"d{i}.png"
        )
    assert cli("dataset", "create", "pics").code == 0
    out = tmp_path / "merged"
    done = cli("dataset", "export", "pics@latest", "--out", str(out), "--merge", str(original))
    assert done.code == 0, done.err
    ds = load_dataset(str(out), image_size=8)
    assert len(ds.y) == 40 and ds.kind == "image"
    assert read_meta(out)["merged"]["samples"] == 30  # type: ignore[index]


def test_bad_input_is_a_usage_error(live_hub: Any, cli: Any, digits: Any, tmp_path: Path) -> None:
    assert cli("dataset", "create", "d", "--filter", "model").code == 2
    assert cli("dataset", "create", "d", "--filter", "colour=red").code == 2
    assert cli("dataset", "create", "d").code == 2  # nothing labeled yet
    labeled(live_hub, "cam-0", digits.held_x[:5], digits.held_y[:5])
    assert cli("dataset", "create", "d").code == 0
    csv = tmp_path / "iris.csv"
    csv.write_text("a,b,label\n1,2,x\n3,4,y\n")
    bad = cli("dataset", "export", "d", "--out", str(tmp_path / "o"), "--merge", str(csv))
    assert bad.code == 2 and "merge with image arrays" in bad.err
    assert cli("dataset", "export", "nope", "--out", str(tmp_path / "p")).code == 2
