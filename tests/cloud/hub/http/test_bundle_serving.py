"""Bundle downloads for fleets: the sha256 as a strong ETag (a 304 for a client that holds
the file), the proxy offload headers (X-Accel-Redirect for nginx, X-Sendfile for Apache
and lighttpd), and an API token's ``last_used`` written at most once a minute."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from cloud.hub.http import auth
from cloud.hub.http.model_routes import ACCEL_REDIRECT_ENV, SENDFILE_ENV
from cloud.hub.storage import ApiToken
from tests.cloud.hub.http.test_api import upload

URL = "/api/v1/models/digits/1/bundle"


@pytest.fixture
def uploaded(client: Any, tokens: Any, make_bundle: Any) -> str:
    path: Path = make_bundle(1)
    assert upload(client, tokens["operator"], path).status_code == 201
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_etag_is_the_sha256_and_a_match_is_answered_304(
    client: Any, tokens: Any, uploaded: str
) -> None:
    full = client.get(URL, headers=tokens["viewer"])
    assert full.status_code == 200 and full.headers["ETag"] == f'"{uploaded}"'
    assert hashlib.sha256(full.data).hexdigest() == uploaded
    same = client.get(URL, headers={**tokens["viewer"], "If-None-Match": f'"{uploaded}"'})
    assert same.status_code == 304 and same.data == b""
    other = client.get(URL, headers={**tokens["viewer"], "If-None-Match": '"' + "0" * 64 + '"'})
    assert other.status_code == 200 and hashlib.sha256(other.data).hexdigest() == uploaded
    # revalidation still needs the right to read: no token, no 304
    assert client.get(URL, headers={"If-None-Match": f'"{uploaded}"'}).status_code == 401


def test_x_accel_redirect_names_the_file_under_the_prefix(
    app: Any, client: Any, tokens: Any, uploaded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ACCEL_REDIRECT_ENV, "/protected-bundles/")
    resp = client.get(URL, headers=tokens["viewer"])
    assert resp.status_code == 200 and resp.data == b""
    target = resp.headers["X-Accel-Redirect"]
    assert target.startswith("/protected-bundles/") and "//" not in target
    bundle_dir = app.extensions["edgekit_hub"].config.bundle_dir
    served = bundle_dir / target.removeprefix("/protected-bundles/")
    assert hashlib.sha256(served.read_bytes()).hexdigest() == uploaded  # the proxy's file
    assert resp.headers["ETag"] == f'"{uploaded}"' and resp.headers["X-Edgekit-Sha256"] == uploaded
    assert 'filename="digits-1.ekb"' in resp.headers["Content-Disposition"]
    again = client.get(URL, headers={**tokens["viewer"], "If-None-Match": f'"{uploaded}"'})
    assert again.status_code == 304 and "X-Accel-Redirect" not in again.headers
    assert client.get(URL).status_code == 401  # access is still the hub's decision
    assert client.get("/api/v1/models/digits/9/bundle", headers=tokens["viewer"]).status_code == 404


def test_x_sendfile_names_the_absolute_path(
    client: Any, tokens: Any, uploaded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SENDFILE_ENV, "1")
    resp = client.get(URL, headers=tokens["viewer"])
    path = Path(resp.headers["X-Sendfile"])
    assert resp.status_code == 200 and path.is_absolute() and resp.data == b""
    assert hashlib.sha256(path.read_bytes()).hexdigest() == uploaded


def test_token_last_used_is_written_at_most_once_a_minute(
    app: Any, client: Any, tokens: Any, uploaded: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = app.extensions["edgekit_hub"].db

    def last_used() -> float | None:
        with db.session() as s:
            return s.scalar(select(ApiToken.last_used).where(ApiToken.name == "viewer"))

    assert client.get(URL, headers=tokens["viewer"]).status_code == 200
    first = last_used()
    assert first is not None
    clock = [time.time() + 30]
    monkeypatch.setattr(auth.time, "time", lambda: clock[0])
    assert client.get(URL, headers=tokens["viewer"]).status_code == 200
    assert last_used() == first  # 30 s later: not rewritten
    clock[0] = first + auth.TOKEN_TOUCH_S + 1
    assert client.get(URL, headers=tokens["viewer"]).status_code == 200
    assert last_used() == pytest.approx(clock[0])
