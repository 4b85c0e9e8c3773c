"""The hub's HTTP hardening (issue 10): who may download what, login throttling, server-side
sessions, no re-binding of enrolled ids, malformed values, security headers, file modes,
token revocation and URLs that never come from the ``Host`` header."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest

from cloud.hub.app import create_app
from cloud.hub.config import HubConfig
from cloud.hub.http import auth, throttle
from cloud.hub.http.auth import create_api_token, create_enrollment_token, create_user
from tests.cloud.hub import helpers
from tests.cloud.hub.http.test_api import err, feed, upload

PASSWORD = "correct horse"


def _state(app: Any) -> Any:
    return app.extensions["edgekit_hub"]


def _enroll(app: Any, client: Any, device: str, *, rebind: bool = False) -> Any:
    with _state(app).db.session() as s:
        token = create_enrollment_token(s, ["lab"], rebind=rebind)
    return client.post("/api/v1/enroll", json={"token": token, "device": device}), token


def _login(client: Any, user: str, password: str, addr: str = "10.0.0.1") -> Any:
    csrf = client.get("/api/v1/session").get_json()["csrf_token"]
    return client.post(
        "/api/v1/session",
        json={"username": user, "password": password},
        headers={"X-CSRFToken": csrf},
        environ_base={"REMOTE_ADDR": addr},
    )


@pytest.fixture
def ann(app: Any) -> str:
    with _state(app).db.session() as s:
        create_user(s, "ann", PASSWORD, "operator")
    return "ann"


# --------------------------------------------------------------------------- 1. downloads


def test_device_tokens_download_only_bundles_deployed_to_them(
    app: Any, client: Any, tokens: Any, make_bundle: Any
) -> None:
    op = tokens["operator"]
    for v in (1, 2, 3):
        assert upload(client, op, make_bundle(v)).status_code == 201
    cam1 = {"Authorization": f"Bearer {_enroll(app, client, 'cam-1')[0].get_json()['token']}"}
    cam2 = {"Authorization": f"Bearer {_enroll(app, client, 'cam-2')[0].get_json()['token']}"}
    feed(app, helpers.status("cam-1", version=1), helpers.status("cam-2", version=1))
    for v in (1, 2, 3):
        resp = client.get(f"/api/v1/models/digits/{v}/bundle", headers=cam1)
        assert resp.status_code == 403 and err(resp) == "forbidden"
    body = {"model": "digits", "version": 2, "target": {"devices": ["cam-1"]}}
    assert client.post("/api/v1/rollouts", json=body, headers=op).status_code == 201
    assert client.get("/api/v1/models/digits/2/bundle", headers=cam1).status_code == 200
    # what it ran before the rollout is what a rollback order sends it back to
    assert client.get("/api/v1/models/digits/1/bundle", headers=cam1).status_code == 200
    assert client.get("/api/v1/models/digits/3/bundle", headers=cam1).status_code == 403
    assert client.get("/api/v1/models/digits/2/bundle", headers=cam2).status_code == 403
    # users and API tokens are unchanged
    assert client.get("/api/v1/models/digits/3/bundle", headers=tokens["viewer"]).status_code == 200


# --------------------------------------------------------------------------- 2. throttling


def test_login_is_throttled_per_user_and_a_success_resets_it(
    app: Any, ann: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "LOCK_S", 60.0)
    client = app.test_client()
    for i in range(throttle.MAX_FAILURES):
        resp = _login(client, ann, "wrong", addr=f"10.0.1.{i}")
        assert resp.status_code == 401 and err(resp) == "bad_login"
    resp = _login(client, ann, PASSWORD, addr="10.0.2.1")  # even the right password waits
    assert resp.status_code == 429 and err(resp) == "throttled"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    # the lock is in the database: a second hub process on it refuses too
    other = create_app(_state(app).config)
    try:
        assert _login(other.test_client(), ann, PASSWORD, addr="10.0.2.2").status_code == 429
    finally:
        _state(other).db.dispose()
    # after the lock a success clears the user's count
    with _state(app).db.session() as s:  # the lock runs out
        row = s.get(throttle.LoginFailure, "user:ann")
        row.locked_until = row.first = 0.0
    assert _login(client, ann, PASSWORD, addr="10.0.3.1").status_code == 200
    with _state(app).db.session() as s:
        assert s.get(throttle.LoginFailure, "user:ann") is None


def test_login_is_throttled_per_address(
    app: Any, ann: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(throttle, "ADDRESS_FACTOR", 2)  # 10 failures, not 20: fewer hashes
    client = app.test_client()
    limit = throttle.MAX_FAILURES * throttle.ADDRESS_FACTOR
    for i in range(limit):  # a different user name each time: only the address adds up
        assert _login(client, f"user{i}", "wrong", addr="10.9.9.9").status_code == 401
    resp = _login(client, ann, PASSWORD, addr="10.9.9.9")
    assert resp.status_code == 429 and "Retry-After" in resp.headers
    assert _login(client, ann, PASSWORD, addr="10.9.9.10").status_code == 200


def test_unknown_users_cost_a_password_check_too(
    app: Any, ann: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real = auth.check_password_hash

    def counting(pwhash: str, password: str) -> bool:
        calls.append(pwhash)
        return real(pwhash, password)

    monkeypatch.setattr(auth, "check_password_hash", counting)
    client = app.test_client()
    assert _login(client, "nobody", "whatever1").status_code == 401
    assert len(calls) == 1 and calls[0].startswith("scrypt:")  # a real hash, a real cost
    assert _login(client, ann, "whatever1").status_code == 401
    assert len(calls) == 2 and calls[0].split("$")[0] == calls[1].split("$")[0]


# --------------------------------------------------------------------------- 3. sessions


def test_a_copied_cookie_stops_working_after_logout(app: Any, ann: str) -> None:
    client = app.test_client()
    assert _login(client, ann, PASSWORD).status_code == 200
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    assert thief.get("/api/v1/devices").status_code == 200
    with _state(app).db.session() as s:
        assert s.query(auth.WebSession).count() == 1
    csrf = client.get("/api/v1/session").get_json()["csrf_token"]
    assert client.delete("/api/v1/session", headers={"X-CSRFToken": csrf}).status_code == 204
    assert thief.get("/api/v1/devices").status_code == 401
    assert thief.get("/api/v1/session").get_json()["user"] is None


def test_a_password_change_ends_every_session(
    app: Any, ann: str, tokens: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    client = app.test_client()
    assert _login(client, ann, PASSWORD).status_code == 200
    copy = app.test_client()
    copy.set_cookie("session", client.get_cookie("session").value)
    # own password over the API: needs the current one
    csrf = client.get("/api/v1/session").get_json()["csrf_token"]
    h = {"X-CSRFToken": csrf}
    resp = client.put("/api/v1/users/ann/password", json={"password": "new password 2"}, headers=h)
    assert resp.status_code == 403 and err(resp) == "bad_login"
    body = {"password": "new password 2", "current_password": PASSWORD}
    resp = client.put("/api/v1/users/ann/password", json=body, headers=h)
    assert resp.status_code == 200 and resp.get_json()["sessions_ended"] == 1
    assert copy.get("/api/v1/devices").status_code == 401
    assert client.get("/api/v1/devices").status_code == 401
    # ... and by the CLI (edgekit hub user passwd)
    assert _login(client, ann, "new password 2").status_code == 200
    from edge.cli import main

    cfg = _state(app).config
    import io
    import sys

    sys_stdin, sys.stdin = sys.stdin, io.StringIO("third password\n")
    try:
        rc = main(["hub", "user", "passwd", "ann", "--password-stdin",
                   "--data-dir", str(cfg.data_dir)])  # fmt: skip
    finally:
        sys.stdin = sys_stdin
    assert rc == 0 and "1 session(s) ended" in capsys.readouterr().out
    assert client.get("/api/v1/devices").status_code == 401
    # only admins set other users' passwords
    resp = client.put("/api/v1/users/ann/password", json={"password": "x" * 9},
                      headers=tokens["operator"])  # fmt: skip
    assert resp.status_code == 403
    resp = client.put("/api/v1/users/nobody/password", json={"password": "x" * 9},
                      headers=tokens["admin"])  # fmt: skip
    assert resp.status_code == 404 and err(resp) == "not_found"
    resp = client.put("/api/v1/users/ann/password", json={"password": "short"},
                      headers=tokens["admin"])  # fmt: skip
    assert resp.status_code == 400 and err(resp) == "invalid"


# --------------------------------------------------------------------------- 4. re-binding


def test_enrollment_never_rebinds_an_enrolled_id_without_rebind(app: Any, client: Any) -> None:
    first, _ = _enroll(app, client, "cam-1")
    assert first.status_code == 200
    original = {"Authorization": f"Bearer {first.get_json()['token']}"}
    resp, token = _enroll(app, client, "cam-1")
    assert resp.status_code == 409 and err(resp) == "already_enrolled"
    with _state(app).db.session() as s:
        row = s.query(auth.EnrollmentToken).filter_by(token_hash=auth.hash_token(token)).one()
        assert row.used_at is None  # not consumed: it still enrolls another id
    again = client.post("/api/v1/enroll", json={"token": token, "device": "cam-2"})
    assert again.status_code == 200
    # the real device was not locked out
    assert client.get("/api/v1/models/digits/1/bundle", headers=original).status_code == 404
    taken, _ = _enroll(app, client, "cam-1", rebind=True)
    assert taken.status_code == 200
    resp = client.get("/api/v1/models/digits/1/bundle", headers=original)
    assert resp.status_code == 401  # the old credentials died with the re-bind


def test_cli_enroll_token_rebind(app: Any, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    d = ["--data-dir", str(_state(app).config.data_dir)]
    assert main(["hub", "enroll-token", "--rebind", *d]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    with _state(app).db.session() as s:
        assert (
            s.query(auth.EnrollmentToken).filter_by(token_hash=auth.hash_token(token)).one().rebind
        )
    assert main(["hub", "enroll-token", *d]) == 0
    token = capsys.readouterr().out.strip().splitlines()[-1]
    with _state(app).db.session() as s:
        row = s.query(auth.EnrollmentToken).filter_by(token_hash=auth.hash_token(token)).one()
        assert row.rebind is False


# --------------------------------------------------------------------------- 6. bad values


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/models/digits/99999999999999999999999",
        "/api/v1/models/digits/9223372036854775808/bundle",
        "/api/v1/models/digits/2147483648/telemetry",
        "/models/digits/99999999999999999999999/card",
        "/models/digits/9223372036854775808/files/charts/a.png",
    ],
)
def test_versions_beyond_the_database_are_404(client: Any, tokens: Any, path: str) -> None:
    resp = client.get(path, headers={**tokens["admin"], "Accept": "application/json"})
    assert resp.status_code == 404


@pytest.mark.parametrize(
    "query",
    ["since=-1e308", "since=nan", "since=inf", "until=-inf", "since=1e300", "until=-1",
     "limit=99999999999999999999999", "limit=-5", "limit=abc", "resolution=hour"],
)  # fmt: skip
def test_bad_query_values_are_400(app: Any, client: Any, tokens: Any, query: str) -> None:
    feed(app, helpers.status("cam-1"))
    for path in ("/api/v1/devices/cam-1/telemetry", "/api/v1/devices/cam-1/events"):
        if path.endswith("events") and query.startswith(("until", "resolution")):
            continue
        resp = client.get(f"{path}?{query}", headers=tokens["viewer"])
        assert resp.status_code == 400 and err(resp) == "invalid", (path, query)


def test_deep_and_huge_json_is_refused(app: Any, client: Any, tokens: Any) -> None:
    feed(app, helpers.status("cam-1"))
    deep = "[" * 5000 + "]" * 5000
    routes = [("/api/v1/rollouts", "post"), ("/api/v1/enroll", "post"),
              ("/api/v1/devices/cam-1", "patch"), ("/api/v1/session", "post")]  # fmt: skip
    for path, method in routes:
        resp = getattr(client, method)(
            path, data=deep, content_type="application/json", headers=tokens["admin"]
        )
        assert resp.status_code == 400 and err(resp) in ("bad_json", "csrf"), path
    resp = client.post(
        "/api/v1/rollouts",
        data='{"a": "' + "[" * 5000 + '"}',
        headers=tokens["admin"],
        content_type="application/json",
    )  # brackets inside a string are not nesting
    assert resp.status_code == 400
    assert "unknown rollout field" in resp.get_json()["error"]["message"]
    big = b'{"x": "' + b"a" * (2 * 1024 * 1024) + b'"}'
    resp = client.post("/api/v1/rollouts", data=big, content_type="application/json",
                       headers=tokens["admin"])  # fmt: skip
    assert resp.status_code == 413 and err(resp) == "too_large"


@pytest.mark.parametrize(
    "field, value",
    [
        ("version", 2**63 + 1), ("waves", list(range(1, 30))), ("waves", [{"count": 10**12}]),
        ("soak_seconds", 1e18), ("deploy_timeout_s", 0), ("success_threshold", 1.5),
        ("error_threshold", -0.1), ("gate_min_devices", 2**40), ("gate_min_inferences", 2**63),
        ("gates", {"error_rate": 5}), ("gates", {"drift": {"min_inferences": 2**70}}),
        ("target", {"devices": [f"d{i}" for i in range(10_001)]}),
        ("target", {"tags": [f"t{i}" for i in range(33)]}),
    ],
)  # fmt: skip
def test_rollout_spec_caps(
    client: Any, tokens: Any, make_bundle: Any, field: str, value: Any
) -> None:
    upload(client, tokens["operator"], make_bundle(1))
    body = {"model": "digits", "version": 1, "target": {"all": True}, field: value}
    resp = client.post("/api/v1/rollouts", json=body, headers=tokens["operator"])
    assert resp.status_code == 400 and err(resp) == "invalid"
    message = resp.get_json()["error"]["message"]
    assert field in message or "target" in message


def test_alias_versions_beyond_the_database_are_400(client: Any, tokens: Any) -> None:
    resp = client.put("/api/v1/models/digits/aliases/stable", json={"version": 2**64},
                      headers=tokens["operator"])  # fmt: skip
    assert resp.status_code == 400 and err(resp) == "invalid"


# --------------------------------------------------------------------------- 8. headers


@pytest.mark.parametrize("path", ["/api/v1/devices", "/api/v1/openapi.json", "/login",
                                  "/metrics", "/nothing", "/assets/css/hub.css"])  # fmt: skip
def test_security_headers_on_every_response(client: Any, path: str) -> None:
    resp = client.get(path)
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp and "script-src 'self'" in csp
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert resp.headers["Referrer-Policy"] == "no-referrer"


def test_templates_have_no_inline_scripts_or_styles() -> None:
    """What the CSP would block: the fleet page keeps working only without them."""
    import re

    root = Path(__file__).resolve().parents[4] / "cloud" / "hub" / "web"
    for page in (root / "templates").glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), page.name
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=", text), page.name
    for script in (root / "static" / "js").glob("*.js"):
        assert not re.search(r"\bstyle:\s*\"", script.read_text()), script.name


# --------------------------------------------------------------------------- 9. file modes


def test_sqlite_file_and_data_dir_are_private(app: Any, client: Any, tokens: Any) -> None:
    cfg = _state(app).config
    client.get("/api/v1/devices", headers=tokens["viewer"])  # WAL files exist once used
    db_file = cfg.data_dir / "hub.db"
    for p in (db_file, db_file.with_name("hub.db-wal"), db_file.with_name("hub.db-shm")):
        if p.exists():
            assert stat.S_IMODE(p.stat().st_mode) == 0o600, p
    assert db_file.with_name("hub.db-wal").exists()
    assert stat.S_IMODE(cfg.data_dir.stat().st_mode) & 0o077 == 0


def test_an_existing_world_readable_database_is_made_private(tmp_path: Path) -> None:
    from cloud.hub.storage import Database

    path = tmp_path / "old.db"
    path.write_bytes(b"")
    path.chmod(0o644)
    Database(f"sqlite:///{path}").dispose()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# --------------------------------------------------------------------------- 10. tokens


def test_api_tokens_are_listed_without_secrets_and_revoked(
    app: Any, client: Any, tokens: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    admin = tokens["admin"]
    resp = client.post("/api/v1/tokens", json={"role": "operator", "name": "ci"}, headers=admin)
    assert resp.status_code == 201
    made = resp.get_json()
    ci = {"Authorization": f"Bearer {made['token']}"}
    assert client.get("/api/v1/devices", headers=ci).status_code == 200
    assert client.get("/api/v1/tokens", headers=tokens["operator"]).status_code == 403
    listing = client.get("/api/v1/tokens", headers=admin).get_json()
    assert {t["name"] for t in listing} == {"viewer", "operator", "admin", "ci"}
    assert set(listing[0]) == {"id", "name", "role", "created", "last_used", "revoked"}
    assert made["token"] not in str(listing)
    ci_row = next(t for t in listing if t["name"] == "ci")
    assert ci_row["last_used"] is not None and ci_row["revoked"] is None
    resp = client.post(f"/api/v1/tokens/{made['id']}/revoke", headers=admin)
    assert resp.status_code == 200 and resp.get_json()["revoked"]
    resp = client.get("/api/v1/devices", headers=ci)
    assert resp.status_code == 401 and err(resp) == "unauthorized"
    assert client.post("/api/v1/tokens/999999/revoke", headers=admin).status_code == 404
    assert client.post("/api/v1/tokens/99999999999999/revoke", headers=admin).status_code == 404
    bad = client.post("/api/v1/tokens", json={"role": "root"}, headers=admin)
    assert bad.status_code == 400 and err(bad) == "invalid"
    # the CLI: edgekit hub token list | revoke ID
    from edge.cli import main

    d = ["--data-dir", str(_state(app).config.data_dir)]
    assert main(["hub", "token", "list", *d]) == 0
    out = capsys.readouterr().out
    assert "ci" in out and "operator" in out and made["token"] not in out
    viewer_id = next(t["id"] for t in listing if t["name"] == "viewer")
    assert main(["hub", "token", "revoke", str(viewer_id), *d]) == 0
    assert client.get("/api/v1/devices", headers=tokens["viewer"]).status_code == 401
    assert main(["hub", "token", "revoke", "4242", *d]) == 1
    assert "does not exist" in capsys.readouterr().err


# --------------------------------------------------------------------------- 11. Host header


def test_a_forged_host_header_changes_no_command_url(
    tmp_path: Path, keys: Any, make_bundle: Any
) -> None:
    for public, expect in (("https://hub.example:8443", "https://hub.example:8443/"),
                           (None, "http://127.0.0.1/")):  # fmt: skip
        cfg = HubConfig(data_dir=tmp_path / str(bool(public)), trusted_key=keys[1],
                        background=False, testing=True, public_url=public)  # fmt: skip
        app = create_app(cfg)
        sent: list[Any] = []
        _state(app).service.publisher = lambda device, cmd, sent=sent: sent.append(cmd)
        client = app.test_client()
        with _state(app).db.session() as s:
            h = {"Authorization": f"Bearer {create_api_token(s, 'operator')}"}
        forged = {**h, "Host": "evil.example", "X-Forwarded-Host": "evil.example"}
        assert upload(client, forged, make_bundle(1)).status_code == 201
        feed(app, helpers.status("cam-1", version=None))
        body = {"model": "digits", "version": 1, "target": {"devices": ["cam-1"]}}
        assert client.post("/api/v1/rollouts", json=body, headers=forged).status_code == 201
        assert len(sent) == 1 and sent[0].url.startswith(expect), sent[0].url
        assert "evil" not in sent[0].url and cfg.public_url == public
        _state(app).db.dispose()


def test_a_throttled_web_login_gets_the_form_with_the_wait(
    app: Any, ann: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    monkeypatch.setattr(throttle, "LOCK_S", 60.0)
    client = app.test_client()
    for i in range(throttle.MAX_FAILURES):
        assert _login(client, ann, "wrong", addr=f"10.0.4.{i}").status_code == 401
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form)
    assert csrf is not None
    resp = client.post(
        "/login",
        data={"username": ann, "password": PASSWORD, "csrf_token": csrf.group(1)},
        environ_base={"REMOTE_ADDR": "10.0.5.1"},
    )
    assert resp.status_code == 429 and resp.mimetype == "text/html"
    assert 1 <= int(resp.headers["Retry-After"]) <= 60
    assert "too many failed logins" in resp.get_data(as_text=True)
