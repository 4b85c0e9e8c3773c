"""Checking commands before the agent acts on one: forged, redirected, stale and replayed
commands are refused here, each with a reason the agent reports in an event.

A command is accepted only when it parses, is signed (Ed25519 over
:meth:`edge.contract.Command.signing_bytes`) by a key this agent trusts (the ``command_keys``
files and the ``command_key`` the hub handed over at enrollment), names this device, has not
expired and does not expire further ahead than :data:`MAX_TTL_S` (plus clock skew), and
carries a nonce never seen before. Seen nonces are kept in ``DATA_DIR/command-nonces.json``
until their command expires, so a captured command cannot run again, not even after a
restart; the expiry bound keeps that file small.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge import contract as c
from edge.bundle import key_id, load_public_key
from edge.bundle.signing import public_key_from_bytes
from edge.contract import Command
from edge.durable import write_atomic
from edge.errors import ConfigError, ContractError, SignatureError

log = logging.getLogger("edgekit.agent.commands")

MAX_TTL_S = 24 * 3600.0  # the longest a command may stay valid: bounds the nonce store
CLOCK_SKEW_S = 300.0  # how far the hub's clock may run ahead of this device's
MAX_NONCES = 10_000  # more unexpired commands than this in one day is an attack or a bug
NONCES_FILE = "command-nonces.json"

# the reasons a refusal event names (detail.reason)
REASONS = (
    "malformed",  # not JSON, or not a valid command
    "no_command_key",  # this agent trusts no command key and unsigned ones are not allowed
    "unsigned",
    "unknown_key",  # signed by a key this agent does not trust
    "bad_signature",  # the signature does not verify: forged or changed after signing
    "wrong_device",  # meant for another device (or for none)
    "expired",
    "expires_too_late",  # valid further ahead than MAX_TTL_S allows
    "no_nonce",
    "replayed",  # its nonce was seen before
    "nonce_store",  # the nonce could not be recorded, so a replay could not be refused
)


class CommandRefused(Exception):
    """A command the agent does not act on; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str, command_id: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.command_id = command_id


def trusted_keys(
    files: Iterable[Path], enrolled_pem: str | None = None
) -> dict[str, Ed25519PublicKey]:
    """The command keys by key id: the public key files plus the one from enrollment.

    Raises ConfigError naming the file (or credentials) that holds no Ed25519 public key.
    """
    keys: dict[str, Ed25519PublicKey] = {}
    for path in files:
        try:
            key = load_public_key(Path(path))
        except SignatureError as exc:
            raise ConfigError(f"command_keys: {exc}") from None
        keys[key_id(key)] = key
    if enrolled_pem is not None:
        try:
            key = public_key_from_bytes(enrolled_pem.encode(), "enrolled command key")
        except (SignatureError, UnicodeEncodeError) as exc:
            raise ConfigError(f"credentials.json: command_key: {exc}") from None
        keys[key_id(key)] = key
    return keys


class NonceStore:
    """Nonces of accepted commands with their expiry, persisted (atomically) on every add
    and pruned once their command has expired (plus skew: a clock stepped back a little
    must not make a pruned command valid again). ``path`` None keeps them in memory only
    (simulated devices, which have no data dir and no restarts to survive)."""

    def __init__(self, path: Path | None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self._seen: dict[str, float] = self._load()

    def _load(self) -> dict[str, float]:
        if self.path is None:
            return {}
        try:
            obj = json.loads(self.path.read_bytes())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"{self.path} is unreadable ({exc}): the agent cannot tell replayed commands; "
                f"delete it only if no captured command younger than a day can reach it"
            ) from None
        seen = obj.get("nonces") if isinstance(obj, dict) else None
        if not isinstance(seen, dict) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in seen.values()
        ):
            raise ConfigError(f"{self.path} is not a nonce store")
        return {str(k): float(v) for k, v in seen.items()}

    def __contains__(self, nonce: str) -> bool:
        return nonce in self._seen

    def __len__(self) -> int:
        return len(self._seen)

    def add(self, nonce: str, expires: float) -> None:
        """Record ``nonce`` (durably, before the command runs). Raises OSError."""
        now = self.clock()
        seen = {n: e for n, e in self._seen.items() if e + CLOCK_SKEW_S >= now}
        seen[nonce] = expires
        if self.path is not None:
            data = json.dumps({"nonces": seen}, separators=(",", ":")).encode()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(self.path, data)
        self._seen = seen


class CommandGuard:
    """Decides whether one ``cmd`` payload may run (see the module docstring)."""

    def __init__(
        self,
        device: str,
        keys: Mapping[str, Ed25519PublicKey],
        data_dir: Path | None,
        *,
        allow_unsigned: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.device = device
        self.keys = dict(keys)
        self.allow_unsigned = allow_unsigned
        self.clock = clock
        self.nonces = NonceStore(None if data_dir is None else data_dir / NONCES_FILE, clock)
        self._lock = threading.Lock()

    def check(self, payload: bytes) -> Command:
        """The command in ``payload`` once it passed every check; its nonce is then recorded,
        so the same payload is refused next time. Raises CommandRefused."""
        try:
            obj = c.decode_json(payload)
        except ContractError as exc:
            raise CommandRefused("malformed", f"bad command: {exc}") from None
        except RecursionError:
            raise CommandRefused("malformed", "bad command: JSON nested too deep") from None
        raw_id = obj.get("id")
        cid = raw_id[:96] if isinstance(raw_id, str) else None
        try:
            cmd = Command.parse(obj)
        except ContractError as exc:
            raise CommandRefused("malformed", f"bad command: {exc}", cid) from None
        self._check_signature(obj, cmd)
        if cmd.device != self.device:
            target = "no device" if cmd.device is None else f"device {cmd.device!r}"
            raise CommandRefused("wrong_device", f"command is for {target}, not {self.device}", cid)
        now = self.clock()
        if cmd.expires < now:
            raise CommandRefused("expired", f"command expired {now - cmd.expires:.0f} s ago", cid)
        if cmd.expires > now + MAX_TTL_S + CLOCK_SKEW_S:
            raise CommandRefused(
                "expires_too_late",
                f"command expires in {cmd.expires - now:.0f} s; at most {MAX_TTL_S:.0f} s "
                f"(+{CLOCK_SKEW_S:.0f} s clock skew) is accepted",
                cid,
            )
        if cmd.nonce is None:
            raise CommandRefused("no_nonce", "command has no nonce", cid)
        with self._lock:
            if cmd.nonce in self.nonces:
                raise CommandRefused("replayed", f"command nonce {cmd.nonce} was seen before", cid)
            if len(self.nonces) >= MAX_NONCES:
                raise CommandRefused(
                    "nonce_store", f"{MAX_NONCES} unexpired commands remembered already", cid
                )
            try:
                self.nonces.add(cmd.nonce, cmd.expires)
            except OSError as exc:
                raise CommandRefused(
                    "nonce_store", f"cannot record the command nonce: {exc}", cid
                ) from None
        return cmd

    def _check_signature(self, obj: dict[str, Any], cmd: Command) -> None:
        cid = cmd.id
        if cmd.sig is None:
            if self.allow_unsigned:
                log.warning("unsigned command %s accepted (allow_unsigned_commands)", cid)
                return
            if not self.keys:
                raise CommandRefused(
                    "no_command_key",
                    "this agent trusts no command key (enroll, or set command_keys)",
                    cid,
                )
            raise CommandRefused("unsigned", "command is not signed", cid)
        key = self.keys.get(cmd.key_id or "")
        if key is None:
            if not self.keys:
                raise CommandRefused(
                    "no_command_key",
                    "this agent trusts no command key (enroll, or set command_keys)",
                    cid,
                )
            raise CommandRefused(
                "unknown_key", f"command is signed by key {cmd.key_id!r}, which is not trusted", cid
            )
        try:
            raw = base64.b64decode(cmd.sig, validate=True)
        except (binascii.Error, ValueError):
            raise CommandRefused("bad_signature", "command signature is not base64", cid) from None
        try:
            signed = Command.signing_bytes(obj)
        except (ValueError, RecursionError):  # NaN or Infinity somewhere: not JSON at all
            raise CommandRefused("malformed", "bad command: not plain JSON", cid) from None
        try:
            key.verify(raw, signed)
        except InvalidSignature:
            raise CommandRefused(
                "bad_signature", f"command signature does not verify with key {cmd.key_id}", cid
            ) from None
