"""A deploy command's optional ``shadow``: strict parsing, absent (not null) when unset so
older commands sign the same bytes, and the published schema agrees."""

from __future__ import annotations

import pytest

from edge import contract as c
from edge.errors import ContractError
from tests.edge.contract.test_schemas import assert_invalid, assert_valid

DEPLOY = {
    "schema": c.SCHEMA_CMD, "id": "c1", "kind": "deploy", "ts": 1, "expires": 2,
    "url": "http://x/b", "sha256": "0" * 64, "size": 10, "version": 2,
}  # fmt: skip


def test_a_deploy_carries_shadow_settings_both_ways() -> None:
    cmd = c.Command.parse({**DEPLOY, "shadow": {"inputs": 30, "min_agreement": 0.9}})
    assert cmd.shadow == c.ShadowSettings(30, 0.9, 120.0)
    again = c.Command.parse(c.decode_json(c.encode_json(cmd.to_dict())))
    assert again == cmd
    assert cmd.to_dict()["shadow"] == {"inputs": 30, "min_agreement": 0.9, "timeout": 120.0}
    assert_valid("cmd", cmd.to_dict())


def test_without_shadow_the_payload_is_what_older_hubs_signed() -> None:
    cmd = c.Command.parse(DEPLOY)
    assert cmd.shadow is None and "shadow" not in cmd.to_dict()
    assert c.Command.parse({**DEPLOY, "shadow": None}).shadow is None


@pytest.mark.parametrize(
    "shadow, message",
    [
        ({"inputs": 0}, "'inputs' must be an integer from 1 to 100000"),
        ({"inputs": 100_001}, "'inputs' must be an integer from 1 to 100000"),
        ({"inputs": 5.5}, "'inputs' must be an integer"),
        ({"inputs": 5, "min_agreement": -0.1}, "'min_agreement' must be a number from 0 to 1"),
        ({"inputs": 5, "min_agreement": "0.9"}, "'min_agreement' must be a number"),
        ({"inputs": 5, "timeout": 86_401}, "'timeout' must be a number from 1 to 86400"),
        ({"inputs": 5, "minimum": 0.9}, "unknown field(s) minimum"),
        ("30", "must be an object"),
    ],
)
def test_bad_shadow_settings_are_refused(shadow: object, message: str) -> None:
    with pytest.raises(ContractError) as exc:
        c.Command.parse({**DEPLOY, "shadow": shadow})
    assert message in str(exc.value) and str(exc.value).startswith("cmd: 'shadow'")
    if isinstance(shadow, dict):
        assert_invalid("cmd", {**DEPLOY, "shadow": shadow})


def test_only_a_deploy_takes_shadow() -> None:
    rollback = {"schema": c.SCHEMA_CMD, "id": "c", "kind": "rollback", "ts": 1, "expires": 2,
                "version": 1, "shadow": {"inputs": 3}}  # fmt: skip
    with pytest.raises(ContractError, match="only a deploy takes 'shadow'"):
        c.Command.parse(rollback)
