"""Dataset versions through the API: frozen, fingerprinted, immutable; exported in the
format ``edgekit train`` reads (cloud.data.sources.load_dataset, no TensorFlow)."""

from __future__ import annotations

import hashlib
import io
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from cloud.data.field import read_meta
from cloud.data.sources import load_dataset
from cloud.hub.datasets import fingerprint
from tests.cloud.hub.champion import field
from tests.cloud.hub.champion.conftest import Digits


def archive(c: Any, h: dict[str, str], ref: str, out: Path) -> Path:
    resp = c.get(f"/api/v1/datasets/{ref}/archive", headers=h)
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(resp.data)) as zf:
        zf.extractall(out)
    return out


def test_freeze_fingerprint_and_immutability(
    any_app: Any, auth: dict[str, dict[str, str]], digits: Digits, tmp_path: Path
) -> None:
    c, op = any_app.test_client(), auth["operator"]
    x, y = digits.held_x, digits.held_y
    a = field.capture(any_app, "cam-a", x[:12], y[:12])
    b = field.capture(any_app, "cam-b", x[12:30], y[12:30])
    field.label_known(c, op, a + b[:8], np.concatenate([y[:12], y[12:20]]))
    made = c.post("/api/v1/datasets", headers=op, json={"name": "field", "filter": {}})
    assert made.status_code == 201, made.get_json()
    v1 = made.get_json()
    assert v1["version"] == 1 and v1["kind"] == "array" and v1["model"] == "digits"
    assert v1["counts"]["total"] == 20  # the unlabeled ten are not in it
    assert v1["counts"]["by_device"] == {"cam-a": 12, "cam-b": 8}
    assert sum(v1["counts"]["by_label"].values()) == 20
    rows = c.get("/api/v1/samples?labeled=true&limit=100", headers=op).get_json()["samples"]
    assert v1["fingerprint"] == fingerprint([(s["id"], s["label"], s["sha256"]) for s in rows])
    first = archive(c, auth["viewer"], "field/1", tmp_path / "v1")

    # relabel one, delete another: version 1 keeps both as they were
    assert (
        c.post(
            "/api/v1/samples/labels",
            headers=op,
            json={"ids": [a[0]], "label": "9" if y[0] != 9 else "8"},
        ).status_code
        == 200
    )
    assert c.delete(f"/api/v1/samples/{a[1]}", headers=op).status_code in (200, 204)
    again = c.get("/api/v1/datasets/field/1", headers=op).get_json()
    assert again["fingerprint"] == v1["fingerprint"]
    later = archive(c, auth["viewer"], "field/1", tmp_path / "v1-again")
    assert (first / "data.npz").read_bytes() == (later / "data.npz").read_bytes()
    v2 = c.post("/api/v1/datasets", headers=op, json={"name": "field"}).get_json()
    assert v2["version"] == 2 and v2["counts"]["total"] == 19
    assert v2["fingerprint"] != v1["fingerprint"]
    shown = c.get("/api/v1/datasets/field", headers=op).get_json()
    assert [v["version"] for v in shown["versions"]] == [1, 2]
    listed = c.get("/api/v1/datasets", headers=auth["viewer"]).get_json()
    assert [(d["name"], d["version"], d["versions"]) for d in listed] == [("field", 2, 2)]
    assert c.get("/api/v1/datasets/field/latest", headers=op).get_json()["version"] == 2

    ds = load_dataset(str(first))
    assert ds.kind == "image" and ds.x.shape == (20, 8, 8, 1)
    assert ds.extra["field_dataset"]["fingerprint"] == v1["fingerprint"]
    order = {i: k for k, i in enumerate(a + b[:8])}
    with np.load(first / "data.npz") as data:
        assert sorted(set(data["origin"])) == ["cam-a", "cam-b"]
        assert len(order) == len(data["y"])


def test_filters_and_refusals(
    any_app: Any, auth: dict[str, dict[str, str]], digits: Digits
) -> None:
    c, op = any_app.test_client(), auth["operator"]
    ids = field.capture(any_app, "cam-a", digits.held_x[:4], digits.held_y[:4])
    field.capture(any_app, "cam-b", digits.held_x[4:8], digits.held_y[4:8])
    field.label_known(c, op, ids, digits.held_y[:4])

    def create(body: dict[str, Any], h: dict[str, str] = op) -> Any:
        return c.post("/api/v1/datasets", headers=h, json=body)

    only_b = create({"name": "b", "filter": {"device": "cam-b"}})
    assert only_b.status_code == 409 and only_b.get_json()["error"]["code"] == "empty"
    assert create({"name": "a", "filter": {"device": "cam-a"}}).get_json()["counts"]["total"] == 4
    assert create({"name": "x", "filter": {"labeled": False}}).status_code == 400
    assert create({"name": "x", "filter": {"colour": "red"}}).status_code == 400
    assert create({"name": "x", "filter": {"version": "two"}}).status_code == 400
    assert create({"name": "../x"}).status_code == 400
    assert create({"name": "x", "extra": 1}).status_code == 400
    assert create({"name": "x", "filter": []}).status_code == 400
    assert create({"name": "x"}, auth["viewer"]).status_code == 403
    assert c.get("/api/v1/datasets/nope", headers=op).status_code == 404
    assert c.get("/api/v1/datasets/a/7", headers=op).status_code == 404
    assert c.get("/api/v1/datasets/a/seven", headers=op).status_code == 400


def test_image_and_tabular_exports(
    any_app: Any, auth: dict[str, dict[str, str]], digits: Digits, tmp_path: Path
) -> None:
    c, op = any_app.test_client(), auth["operator"]
    x, y = digits.held_x[:6], digits.held_y[:6]
    imgs = field.capture(any_app, "cam-a", x, y, inputs=[field.png_input(v) for v in x])
    rows = [{"kind": "tabular", "features": {"petal": 1.0 + i, "sepal": None if i == 2 else 2.0}}
            for i in range(5)]  # fmt: skip
    tab = field.capture(any_app, "cam-t", np.zeros(5), np.array(["setosa"] * 5), inputs=rows)
    field.label_known(c, op, imgs, y)
    field.label_known(c, op, tab, np.array(["setosa"] * 5))
    mixed = c.post("/api/v1/datasets", headers=op, json={"name": "m"})
    assert mixed.status_code == 409 and mixed.get_json()["error"]["code"] == "mixed"

    c.post("/api/v1/datasets", headers=op, json={"name": "img", "filter": {"device": "cam-a"}})
    folder = archive(c, op, "img/1", tmp_path / "img")
    meta = read_meta(folder)
    assert meta is not None and meta["format"] == "images"
    for sid, label in zip(imgs, y, strict=True):
        png = folder / str(label) / f"{sid}.png"
        stored = c.get(f"/api/v1/samples/{sid}/input", headers=op).data
        assert hashlib.sha256(png.read_bytes()).digest() == hashlib.sha256(stored).digest()

    c.post("/api/v1/datasets", headers=op, json={"name": "tab", "filter": {"device": "cam-t"}})
    folder = archive(c, op, "tab/1", tmp_path / "tab")
    text = (folder / "data.csv").read_text().splitlines()
    assert text[0] == "petal,sepal,label" and len(text) == 6
    meta = read_meta(folder)
    assert meta is not None and meta["format"] == "csv"
