"""The sample store through the API, on SQLite and on PostgreSQL: the device upload
(auth, idempotence, limits, rate), listing and filters, labels with history, delete,
summary and the input files."""

from __future__ import annotations

import base64
import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from cloud.hub.app import create_app
from cloud.hub.http.auth import create_api_token
from cloud.hub.storage import SampleLabel, SampleRecord
from edge.contract import MAX_BATCH, MAX_BATCH_BYTES, SampleInput
from tests.cloud.hub.pg_schema import throwaway_schema
from tests.cloud.hub.samples.factory import (
    add_device,
    array_input,
    body,
    image_input,
    npy,
    png,
    sample,
    tabular_input,
)

URL = "/api/v1/devices/{}/samples"


class Hub:
    def __init__(self, app: Any) -> None:
        self.app = app
        self.client = app.test_client()
        self.state = app.extensions["edgekit_hub"]
        with self.state.db.session() as s:
            self.op = {"Authorization": f"Bearer {create_api_token(s, 'operator', 'olga')}"}
            self.viewer = {"Authorization": f"Bearer {create_api_token(s, 'viewer', 'vic')}"}
        with self.state.db.session() as s:
            self.dev = add_device(s, "cam-1")
        with self.state.db.session() as s:
            self.dev2 = add_device(s, "cam-2")

    @property
    def samples_dir(self) -> Path:
        return Path(self.state.config.samples_dir)

    def upload(self, device: str, *samples: Any, headers: Any = None) -> Any:
        return self.client.post(
            URL.format(device), json=body(device, *samples), headers=headers or self.dev
        )

    def get(self, path: str, headers: Any = None) -> Any:
        return self.client.get(f"/api/v1/{path}", headers=headers or self.viewer)

    def post(self, path: str, json: Any, headers: Any = None) -> Any:
        return self.client.post(f"/api/v1/{path}", json=json, headers=headers or self.op)


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def hub(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Hub]:
    cfg: dict[str, Any] = {
        "data_dir": tmp_path / "hub",
        "background": False,
        "testing": True,
        "sample_rate_per_minute": 20,
    }
    with throwaway_schema("samples") if request.param == "postgresql" else _nothing() as url:
        if url:
            cfg["db_url"] = url
        app = create_app(cfg)
        try:
            yield Hub(app)
        finally:
            app.extensions["edgekit_hub"].stop()
            app.extensions["edgekit_hub"].db.dispose()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def code(resp: Any) -> str:
    return str(resp.get_json()["error"]["code"])


# --------------------------------------------------------------------------- upload


def test_upload_stores_each_kind_and_is_idempotent(hub: Hub) -> None:
    img, tab, arr = (
        sample(image_input(1)),
        sample(tabular_input(), label="setosa", model="iris"),
        sample(array_input(2)),
    )
    resp = hub.upload("cam-1", img, tab, arr)
    assert resp.status_code == 200
    assert resp.get_json() == {
        "accepted": [img.id, tab.id, arr.id],
        "duplicates": [],
        "rejected": [],
    }
    again = hub.upload("cam-1", img, tab, arr, sample(image_input(3)))  # a resumed upload
    assert again.get_json()["duplicates"] == [img.id, tab.id, arr.id]
    assert len(again.get_json()["accepted"]) == 1
    assert hub.get("samples").get_json()["total"] == 4
    # files under <data dir>/samples/<device>/<id>.<ext>, byte for byte
    assert (hub.samples_dir / "cam-1" / f"{img.id}.png").read_bytes() == img.input.data
    assert (hub.samples_dir / "cam-1" / f"{arr.id}.npy").read_bytes() == arr.input.data
    one = hub.get(f"samples/{img.id}").get_json()
    assert one["device"] == "cam-1" and one["model"] == {"name": "digits", "version": 2}
    assert one["prediction"]["label"] == "7" and one["prediction"]["confidence"] == 0.55
    assert one["prediction"]["index"] == 7 and one["kind"] == "image" and one["label"] is None
    assert one["history"] == [] and one["input_url"] == f"/api/v1/samples/{img.id}/input"
    r = hub.client.get(one["input_url"], headers=hub.viewer)
    assert r.status_code == 200 and r.mimetype == "image/png" and r.data == img.input.data
    r = hub.get(f"samples/{tab.id}/input")
    assert r.mimetype == "application/json" and r.get_json() == tab.input.features
    assert hub.get(f"samples/{tab.id}").get_json()["features"] == tab.input.features
    r = hub.get(f"samples/{arr.id}/input")
    assert np.array_equal(np.load(io.BytesIO(r.data)), np.load(io.BytesIO(arr.input.data)))
    preview = Image.open(io.BytesIO(hub.get(f"samples/{arr.id}/input?as=png").data))
    assert preview.size == (8, 8)
    assert hub.get(f"samples/{tab.id}/input?as=png").status_code == 400


def test_upload_needs_the_device_itself(hub: Hub) -> None:
    s = sample()
    assert hub.client.post(URL.format("cam-1"), json=body("cam-1", s)).status_code == 401
    assert code(hub.upload("cam-1", s, headers=hub.op)) == "forbidden"
    assert hub.upload("cam-1", s, headers=hub.dev2).status_code == 403  # another device
    resp = hub.client.post(URL.format("cam-1"), json=body("cam-2", s), headers=hub.dev)
    assert resp.status_code == 400 and "cam-2" in resp.get_json()["error"]["message"]
    assert hub.get("samples").get_json()["total"] == 0
    # an id another device already used is refused, not taken over
    assert hub.upload("cam-2", s, headers=hub.dev2).status_code == 200
    resp = hub.upload("cam-1", s).get_json()
    assert resp["rejected"] == [{"id": s.id, "error": "this id belongs to another device's sample"}]


def test_bad_documents_and_bad_samples(hub: Hub) -> None:
    post = hub.client.post
    assert post(URL.format("cam-1"), data=b"not json", headers=hub.dev).status_code == 400
    assert (
        post(
            URL.format("cam-1"), json={"device": "cam-1", "samples": []}, headers=hub.dev
        ).status_code
        == 400
    )  # fmt: skip  (no schema)
    good = sample()
    broken_png = sample(SampleInput(kind="image", data=png()[:30], media_type="image/png"))
    arr = np.zeros((4, 4), np.float32)
    lying = sample(SampleInput(kind="array", data=npy(arr), dtype="float32", shape=(8, 8)))
    nul = sample(label="7\x00")  # PostgreSQL stores no NUL: refused, never a 500
    doc = body("cam-1", good, broken_png, lying, nul)
    doc["samples"].append({"id": "nothex", "reason": "random"})
    resp = post(URL.format("cam-1"), json=doc, headers=hub.dev)
    assert resp.status_code == 200
    out = resp.get_json()
    assert out["accepted"] == [good.id]
    errors = {r["id"]: r["error"] for r in out["rejected"]}
    assert "PNG" in errors[broken_png.id] and "(8, 8)" not in errors[lying.id]
    assert "[4, 4]" in errors[lying.id] and "nothex" in errors and "NUL" in errors[nul.id]
    assert hub.get("samples?predicted=7%00").status_code == 400
    assert not (hub.samples_dir / "cam-1" / f"{broken_png.id}.png").exists()


def test_upload_limits(hub: Hub) -> None:
    many = [sample() for _ in range(MAX_BATCH + 1)]
    resp = hub.upload("cam-1", *many)
    assert resp.status_code == 413 and code(resp) == "too_large"
    big = b"x" * (MAX_BATCH_BYTES + 1)
    resp = hub.client.post(
        URL.format("cam-1"), data=big, headers={**hub.dev, "Content-Type": "application/json"}
    )
    assert resp.status_code == 413
    # one input over MAX_SAMPLE_BYTES is refused by itself, the others go in
    huge = sample(SampleInput(kind="image", data=png() + b"\0" * (2 << 20), media_type="image/png"))
    doc = body("cam-1", sample(), huge)
    resp = hub.client.post(URL.format("cam-1"), json=doc, headers=hub.dev).get_json()
    assert len(resp["accepted"]) == 1 and resp["rejected"][0]["id"] == huge.id
    # a body between the general 1 MiB limit and the sample limit is taken here
    mid = [
        sample(SampleInput(kind="image", data=_noise_png(seed), media_type="image/png"))
        for seed in range(3)
    ]
    doc = body("cam-1", *mid)
    assert len(base64.b64decode(doc["samples"][0]["input"]["data"])) > 300_000
    assert hub.client.post(URL.format("cam-1"), json=doc, headers=hub.dev).status_code == 200


def _noise_png(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    out = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (400, 400, 3), dtype=np.uint8)).save(out, format="PNG")
    return out.getvalue()


def test_rate_limit_answers_429_with_retry_after(hub: Hub) -> None:
    first = [sample() for _ in range(15)]
    assert hub.upload("cam-1", *first).status_code == 200
    resp = hub.upload("cam-1", *[sample() for _ in range(10)])  # 25 > 20 a minute
    assert resp.status_code == 429 and code(resp) == "rate_limited"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert hub.upload("cam-1", *first).status_code == 200  # re-sending costs nothing
    assert hub.upload("cam-1", *[sample() for _ in range(5)]).status_code == 200  # 20 fits
    assert hub.upload("cam-2", sample(), headers=hub.dev2).status_code == 200  # per device
    with hub.state.db.session() as s:  # a minute later the window is empty again
        s.query(SampleRecord).update({SampleRecord.received_at: time.time() - 61})
    assert hub.upload("cam-1", *[sample() for _ in range(10)]).status_code == 200


# --------------------------------------------------------------------------- operator API


def _seed(hub: Hub) -> list[Any]:
    made = [
        sample(label="7", reason="low_confidence", version=2),
        sample(label="1", reason="drift", version=2),
        sample(label="7", reason="random", version=3),
    ]
    assert hub.upload("cam-1", *made).status_code == 200
    other = sample(label="4", reason="drift", version=2)
    assert hub.upload("cam-2", other, headers=hub.dev2).status_code == 200
    return [*made, other]


def test_filters(hub: Hub) -> None:
    a, b, c, d = _seed(hub)

    def ids(query: str) -> list[str]:
        resp = hub.get(f"samples?{query}")
        assert resp.status_code == 200, resp.get_json()
        return sorted(s["id"] for s in resp.get_json()["samples"])

    assert ids("device=cam-1") == sorted([a.id, b.id, c.id])
    assert ids("reason=drift") == sorted([b.id, d.id])
    assert ids("model=digits&version=3") == [c.id]
    assert ids("predicted=7&device=cam-1") == sorted([a.id, c.id])
    assert ids("labeled=true") == []
    hub.post("samples/labels", {"ids": [a.id], "label": "7"})
    assert ids("labeled=true") == [a.id] and ids("label=7") == [a.id]
    assert a.id not in ids("labeled=false")
    page = hub.get("samples?limit=2&offset=1").get_json()
    assert page["total"] == 4 and len(page["samples"]) == 2
    for bad in (
        "labeled=maybe",
        "version=x",
        "reason=bored",
        "device=a/b",
        "colour=red",
        "limit=0",
        "limit=5000",
        "offset=-1",
    ):
        resp = hub.get(f"samples?{bad}")
        assert resp.status_code == 400 and code(resp) == "invalid", bad
    assert "colour" in hub.get("samples?colour=red").get_json()["error"]["message"]


def test_labels_one_or_many_with_history(hub: Hub) -> None:
    a, b, c, _d = _seed(hub)
    r = hub.post("samples/labels", {"ids": [a.id, b.id, "0" * 32], "label": "7"})
    assert r.status_code == 200
    assert r.get_json() == {"updated": [a.id, b.id], "unchanged": [], "missing": ["0" * 32]}
    r = hub.post("samples/labels", {"labels": {a.id: "7", b.id: "1", c.id: "9"}})
    assert sorted(r.get_json()["updated"]) == sorted([b.id, c.id])
    assert r.get_json()["unchanged"] == [a.id]
    assert hub.post("samples/labels", {"ids": [c.id], "label": None}).status_code == 200
    one = hub.get(f"samples/{b.id}").get_json()
    assert one["label"] == "1" and one["labeled_by"] == "olga" and one["labeled_at"] > 0
    assert [(h["previous"], h["label"], h["by"]) for h in one["history"]] == [
        (None, "7", "olga"),
        ("7", "1", "olga"),
    ]
    cleared = hub.get(f"samples/{c.id}").get_json()
    assert cleared["label"] is None and cleared["labeled_by"] is None
    assert [h["label"] for h in cleared["history"]] == ["9", None]
    # roles and bad labels
    assert (
        hub.post("samples/labels", {"ids": [a.id], "label": "3"}, headers=hub.viewer).status_code
        == 403
    )
    for bad in (
        {"ids": [a.id], "label": "../up"},
        {"ids": [a.id], "label": " 7"},
        {"ids": [a.id], "label": ".."},
        {"ids": [a.id], "label": 7},
        {"ids": [a.id]},
        {"ids": [], "label": "1"},
        {"labels": [a.id]},
        {"ids": [a.id], "label": "1", "labels": {}},
        {"ids": "x", "label": "1"},
    ):
        resp = hub.post("samples/labels", bad)
        assert resp.status_code == 400 and code(resp) == "invalid", bad
    assert hub.get(f"samples/{a.id}").get_json()["label"] == "7"


def test_delete_removes_rows_history_and_files(hub: Hub) -> None:
    a, b, c, _d = _seed(hub)
    hub.post("samples/labels", {"ids": [a.id], "label": "7"})
    path = hub.samples_dir / "cam-1" / f"{a.id}.png"
    assert path.exists()
    assert hub.client.delete(f"/api/v1/samples/{a.id}", headers=hub.viewer).status_code == 403
    assert hub.client.delete(f"/api/v1/samples/{a.id}", headers=hub.op).status_code == 204
    assert not path.exists() and hub.get(f"samples/{a.id}").status_code == 404
    assert hub.get(f"samples/{a.id}/input").status_code == 404
    with hub.state.db.session() as s:
        assert s.query(SampleLabel).filter_by(sample_id=a.id).count() == 0
    r = hub.post("samples/delete", {"ids": [b.id, c.id, a.id]})
    assert r.get_json() == {"deleted": [b.id, c.id], "missing": [a.id]}
    assert hub.get("samples").get_json()["total"] == 1
    assert sorted(p.name for p in (hub.samples_dir / "cam-1").iterdir()) == []
    assert hub.client.delete(f"/api/v1/samples/{'f' * 32}", headers=hub.op).status_code == 404


def test_summary(hub: Hub) -> None:
    a, b, _c, _d = _seed(hub)
    hub.post("samples/labels", {"labels": {a.id: "7", b.id: "2"}})
    out = hub.get("samples/summary").get_json()
    assert (out["total"], out["labeled"], out["unlabeled"]) == (4, 2, 2)
    assert out["by_device"] == {
        "cam-1": {"total": 3, "labeled": 2},
        "cam-2": {"total": 1, "labeled": 0},
    }
    assert out["by_reason"] == {"drift": 2, "low_confidence": 1, "random": 1}
    assert out["by_label"] == {"2": 1, "7": 1} and out["by_predicted"]["7"] == 2
    assert {(m["version"], m["total"]) for m in out["by_model"]} == {(2, 3), (3, 1)}
    scoped = hub.get("samples/summary?device=cam-2").get_json()
    assert (scoped["total"], scoped["labeled"]) == (1, 0)


def test_concurrent_uploads_of_one_batch_store_each_sample_once(hub: Hub) -> None:
    """A device that retries while its first upload is still in flight: both answers are
    200, every id is accepted by exactly one of them, and stored once."""
    import threading

    made = [sample(image_input(i)) for i in range(20)]
    doc = body("cam-1", *made)
    gate = threading.Barrier(2)
    answers: list[Any] = []

    def send() -> None:
        client = hub.app.test_client()
        gate.wait()
        answers.append(client.post(URL.format("cam-1"), json=doc, headers=hub.dev))

    threads = [threading.Thread(target=send) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [a.status_code for a in answers] == [200, 200]
    accepted = [i for a in answers for i in a.get_json()["accepted"]]
    assert sorted(accepted) == sorted(m.id for m in made)
    for a in answers:
        out = a.get_json()
        assert sorted(out["accepted"] + out["duplicates"]) == sorted(m.id for m in made)
    assert hub.get("samples").get_json()["total"] == 20
