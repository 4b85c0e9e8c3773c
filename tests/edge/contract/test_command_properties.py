"""Property-based tests of command parsing: whatever arrives on ``cmd``, the only exception
parsing raises is ContractError (the agent turns it into a refusal event), and whatever it
accepts satisfies the rules the agent relies on."""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge import contract as c
from edge.contract.messages import MAX_SIZE, NONCE_RE, SHA256_RE
from edge.errors import ContractError

# Every JSON value json.loads can produce, including what Python's decoder accepts beyond
# the standard (NaN, Infinity) and integers far outside any machine type.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=80)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),
    max_leaves=30,
)
FIELDS = ["schema", "id", "kind", "ts", "expires", "device", "nonce", "name", "version", "url",
          "sha256", "size", "rollout", "config", "keys", "key_id", "sig"]  # fmt: skip
plausible = {
    "schema": st.just(c.SCHEMA_CMD) | st.sampled_from(["edgekit.cmd/2", "x/1", ""]) | json_values,
    "kind": st.sampled_from([*c.CMD_KINDS, "format-disk"]) | json_values,
    "ts": st.floats(allow_nan=True) | st.integers(min_value=-(10**20), max_value=10**20),
    "expires": st.floats(allow_nan=True) | st.integers(min_value=-(10**400), max_value=10**400),
    "device": st.from_regex(c.DEVICE_ID_RE, fullmatch=True) | json_values,
    "nonce": st.from_regex(NONCE_RE, fullmatch=True) | json_values,
    "sha256": st.from_regex(SHA256_RE, fullmatch=True) | json_values,
    "size": st.integers(min_value=-5, max_value=MAX_SIZE + 5) | json_values,
    "version": st.integers(min_value=-(2**70), max_value=2**70) | json_values,
    "keys": st.dictionaries(st.sampled_from(["add", "revoke", "x"]), json_values) | json_values,
}
VALID = {"schema": c.SCHEMA_CMD, "id": "c1", "kind": "deploy", "ts": 1.0, "expires": 2.0,
         "device": "cam-1", "nonce": "n" * 24, "name": "digits", "version": 2,
         "url": "http://hub/b.ekb", "sha256": "0" * 64, "size": 10}  # fmt: skip
# a valid command with a few fields changed to anything, a few removed, a few added: parsing
# then gets far enough to reach every field's check
commands = st.builds(
    lambda changed, removed, extra: {
        **extra,
        **{k: v for k, v in VALID.items() if k not in removed},
        **changed,
    },
    st.lists(st.sampled_from(FIELDS), max_size=4, unique=True).flatmap(
        lambda names: st.fixed_dictionaries({n: plausible.get(n, json_values) for n in names})
    ),
    st.sets(st.sampled_from(FIELDS), max_size=2),
    st.dictionaries(st.text(max_size=8), json_values, max_size=2),
)


def check_parse(obj: dict[str, Any]) -> None:
    try:
        cmd = c.Command.parse(obj)
    except ContractError:
        return
    # what parsing lets through is what the agent may rely on
    assert cmd.kind in c.CMD_KINDS
    assert math.isfinite(cmd.ts) and math.isfinite(cmd.expires)
    assert cmd.sha256 is None or SHA256_RE.fullmatch(cmd.sha256)
    assert cmd.nonce is None or NONCE_RE.fullmatch(cmd.nonce)
    assert cmd.device is None or c.DEVICE_ID_RE.match(cmd.device)
    assert cmd.size is None or 0 < cmd.size <= MAX_SIZE
    if cmd.kind == "deploy":
        assert None not in (cmd.url, cmd.sha256, cmd.size, cmd.version)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(commands)
def test_parsing_any_command_object_raises_only_contract_error(obj: dict[str, Any]) -> None:
    check_parse(obj)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_parsing_any_json_payload_raises_only_contract_error(value: Any) -> None:
    try:
        payload = json.dumps(value).encode()
    except (ValueError, OverflowError):
        return
    try:
        obj = c.decode_json(payload)
    except ContractError:
        return
    check_parse(obj)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_decoding_any_bytes_raises_only_contract_error(payload: bytes) -> None:
    with contextlib.suppress(ContractError):
        check_parse(c.decode_json(payload))


def test_a_huge_integer_time_is_a_contract_error() -> None:
    """Found by the properties above: float(10**400) overflows."""
    obj = {"schema": c.SCHEMA_CMD, "id": "c", "kind": "ping", "ts": 1, "expires": 10**400}
    with pytest.raises(ContractError, match="expires"):
        c.Command.parse(obj)


@pytest.mark.parametrize(
    "payload", [b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000 + b"1" + b"}" * 50_000]
)
def test_json_nested_thousands_deep_is_a_contract_error(payload: bytes) -> None:
    with pytest.raises(ContractError, match="too deep"):
        c.decode_json(payload)
