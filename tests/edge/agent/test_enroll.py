"""Stored credentials: private file, clear errors for damaged ones, hub error texts."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from edge.agent.enrollment import CREDENTIALS, _error_message, load_credentials, save_credentials
from edge.errors import ConfigError


def test_saved_credentials_are_private_and_load_back(tmp_path: Path) -> None:
    assert load_credentials(tmp_path) is None
    path = save_credentials(tmp_path / "d", {"device": "a", "token": "ekd_x", "tags": ["lab"]})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_credentials(tmp_path / "d") == {"device": "a", "token": "ekd_x", "tags": ["lab"]}


@pytest.mark.parametrize(
    ("content", "match"),
    [(b"{not json", "unreadable"), (b"[]", "no device token"), (b'{"token": 3}', "no device")],
)
def test_damaged_credentials_name_the_file(tmp_path: Path, content: bytes, match: str) -> None:
    (tmp_path / CREDENTIALS).write_bytes(content)
    with pytest.raises(ConfigError, match=match) as err:
        load_credentials(tmp_path)
    assert "enroll again" in str(err.value)


@pytest.mark.parametrize(
    ("body", "text"),
    [
        (b'{"error": {"code": "bad_token", "message": "token used"}}', "token used"),
        (b"<html>Bad Gateway</html>", "<html>Bad Gateway</html>"),
        (b'{"error": "flat"}', '{"error": "flat"}'),
        (b"", "no details"),
    ],
)
def test_hub_error_message(body: bytes, text: str) -> None:
    assert _error_message(body) == text
