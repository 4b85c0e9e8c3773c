"""The hub's command key: every command the hub sends is signed with it.

One Ed25519 key per hub database, created on first use and kept (PEM, in ``hub_secrets``
as ``command_key``), so every hub process and CLI command on the same database signs with
the same key, and devices learn its public half at enrollment (``command_key``).
"""

from __future__ import annotations

import base64
import dataclasses
import secrets

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy.orm import Session

from cloud.hub.storage import secrets as hub_secrets
from edge.bundle import key_id
from edge.contract import Command

SECRET_NAME = "command_key"
# Agents refuse a command valid for longer (edge/agent/commands.py MAX_TTL_S), which keeps
# their replay stores small; the hub never signs one.
MAX_TTL_S = 24 * 3600.0


def _new_key_pem() -> str:
    return (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode("ascii")
    )


def command_key(session: Session) -> Ed25519PrivateKey:
    """The hub's command signing key (created and stored on first use)."""
    pem = hub_secrets.get_or_create(session, SECRET_NAME, _new_key_pem)
    key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, Ed25519PrivateKey):  # pragma: no cover - only we write the row
        raise TypeError(f"hub secret {SECRET_NAME!r} is not an Ed25519 private key")
    return key


def command_public_pem(session: Session) -> str:
    """The public half of :func:`command_key` as PEM: what enrollment hands to devices."""
    return (
        command_key(session)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode("ascii")
    )


def new_nonce() -> str:
    """A fresh random nonce; agents refuse a command whose nonce they have seen before."""
    return secrets.token_urlsafe(18)


def sign(session: Session, cmd: Command, key: Ed25519PrivateKey | None = None) -> Command:
    """``cmd`` with ``key_id`` and ``sig``: base64 Ed25519 over
    :meth:`Command.signing_bytes` of its payload, which covers every field but ``sig``.
    ``key``: the :func:`command_key` already loaded (a rollout signing thousands of
    commands reads it once)."""
    if cmd.expires - cmd.ts > MAX_TTL_S:
        raise ValueError(f"command {cmd.id} is valid longer than {MAX_TTL_S:.0f} s")
    key = key if key is not None else command_key(session)
    unsigned = dataclasses.replace(cmd, key_id=key_id(key.public_key()), sig=None)
    raw = key.sign(Command.signing_bytes(unsigned.to_dict()))
    return dataclasses.replace(unsigned, sig=base64.b64encode(raw).decode("ascii"))
