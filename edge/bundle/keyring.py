"""The bundle signing keys a device trusts: several at once, rotated and revoked remotely.

TUF's answer to key compromise is that keys can be replaced without touching devices by
hand. Here the trusted keys are the configured ones (``trusted_key``, ``trusted_keys``)
plus those a signed ``keys`` command added, minus every revoked key id. Additions and
revocations persist in ``DATA_DIR/keyring.json`` (written atomically), so they survive
restarts; a revocation is permanent and wins over the configuration, so a compromised key
stays untrusted even while an old config file still names it. An unreadable keyring
file trusts nothing (failing closed: forgetting a revocation is the one thing it must not
do) until it is repaired or deleted by hand.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.bundle.signing import (
    PublicKeyLike,
    key_id,
    load_public_key,
    public_key_from_bytes,
    verify_manifest,
)
from edge.contract import Manifest
from edge.durable import write_atomic
from edge.errors import SignatureError

log = logging.getLogger(__name__)

KEYRING_FILE = "keyring.json"
KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
MAX_ADDED_KEYS = 64


@dataclass(frozen=True)
class KeyChange:
    """What one ``keys`` command did, for its event."""

    added: list[str]
    revoked: list[str]
    trusted: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "revoked": self.revoked, "trusted": self.trusted}


class Keyring:
    """Trusted Ed25519 bundle keys by key id; see the module docstring."""

    def __init__(self, configured: Iterable[PublicKeyLike] = (), path: Path | None = None):
        self.path = path
        self._lock = threading.Lock()
        self._configured: dict[str, Ed25519PublicKey] = {}
        for item in configured:
            key = load_public_key(item)
            self._configured[key_id(key)] = key
        self._added: dict[str, str] = {}  # key id -> PEM
        self._revoked: dict[str, float] = {}  # key id -> when
        self._broken: str | None = None
        self._stamp: tuple[int, int] | None = None
        with self._lock:
            self._refresh()

    # ------------------------------------------------------------------ persistence

    def _refresh(self) -> None:
        """Read the file again when it changed (another Keyring of this data dir wrote it:
        the agent builds a new one whenever its config changes)."""
        if self.path is None:
            return
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._broken = f"keyring {self.path} is unreadable ({exc}); no key is trusted"
            return
        if (st.st_mtime_ns, st.st_size) != self._stamp:
            self._stamp = (st.st_mtime_ns, st.st_size)
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        self._broken = None
        try:
            obj = json.loads(self.path.read_bytes())
            added, revoked = obj["added"], obj["revoked"]
            if not isinstance(added, dict) or not isinstance(revoked, dict):
                raise ValueError("'added' and 'revoked' must be objects")
            for kid, pem in added.items():
                if key_id(public_key_from_bytes(pem.encode("ascii"))) != kid:
                    raise ValueError(f"key {kid} does not match its PEM")
            self._added = {str(k): str(v) for k, v in added.items()}
            self._revoked = {str(k): float(v) for k, v in revoked.items()}
        except (OSError, ValueError, KeyError, TypeError, AttributeError, SignatureError) as exc:
            self._broken = f"keyring {self.path} is unreadable ({exc}); no key is trusted"
            log.error("%s", self._broken)

    def _save(self) -> None:
        if self.path is None:
            return
        data = {"added": self._added, "revoked": self._revoked}
        write_atomic(self.path, json.dumps(data, indent=2, sort_keys=True).encode())
        st = self.path.stat()
        self._stamp = (st.st_mtime_ns, st.st_size)

    # ------------------------------------------------------------------ queries

    def trusted(self) -> dict[str, Ed25519PublicKey]:
        """Key id -> key of every key trusted now (configured or added, not revoked)."""
        with self._lock:
            self._refresh()
            if self._broken:
                return {}
            keys = dict(self._configured)
            for kid, pem in self._added.items():
                keys.setdefault(kid, public_key_from_bytes(pem.encode("ascii")))
            return {k: v for k, v in keys.items() if k not in self._revoked}

    @property
    def revoked(self) -> frozenset[str]:
        with self._lock:
            self._refresh()
            return frozenset(self._revoked)

    @property
    def empty(self) -> bool:
        """No key is trusted and nothing was ever revoked: nothing to check against."""
        return not self.trusted() and not self.revoked and self._broken is None

    def verify(self, manifest: Manifest) -> str:
        """The key id of the trusted key that signed ``manifest``; SignatureError when it
        is unsigned, signed by a revoked key, or by no trusted key."""
        with self._lock:
            self._refresh()
            if self._broken:
                raise SignatureError(self._broken)
        sig = manifest.signature or {}
        if not sig:
            raise SignatureError("manifest is not signed")
        named = sig.get("key_id")
        if named in self.revoked:
            raise SignatureError(f"manifest is signed by revoked key {named}")
        keys = self.trusted()
        if not keys:
            raise SignatureError("no trusted bundle key (all revoked, or none configured)")
        if named in keys:  # the key the signature names, and only it: one clear reason
            return verify_manifest(manifest, keys[named])
        for key in keys.values():  # the name is unsigned: it may lie; try every key
            try:
                return verify_manifest(manifest, key)
            except SignatureError:
                continue
        raise SignatureError(
            f"manifest signature does not verify with any trusted key ({', '.join(sorted(keys))})"
            + (f"; it names signer {named}" if named else "")
        )

    # ------------------------------------------------------------------ changes

    def apply(self, add: Iterable[str] = (), revoke: Iterable[str] = ()) -> KeyChange:
        """Add PEM keys and revoke key ids, all or nothing, and persist the result.

        Refused (SignatureError, nothing changed): a malformed key or key id, or adding a
        key that is revoked (in this change or before: revocation is permanent).
        """
        new_keys: dict[str, str] = {}
        for pem in add:
            key = public_key_from_bytes(pem.encode("utf-8"), source="added key")
            new_keys[key_id(key)] = pem.strip() + "\n"
        revoke_ids = []
        for kid in revoke:
            if not KEY_ID_RE.fullmatch(kid):
                raise SignatureError(f"key id {kid!r} is not 16 lower-case hex digits")
            revoke_ids.append(kid)
        with self._lock:
            self._refresh()
            if self._broken:
                raise SignatureError(self._broken)
            clash = sorted(k for k in new_keys if k in self._revoked or k in revoke_ids)
            if clash:
                raise SignatureError(f"key {clash[0]} is revoked and cannot be trusted again")
            added = sorted(k for k in new_keys if k not in self._added)
            if len(self._added) + len(added) > MAX_ADDED_KEYS:
                raise SignatureError(f"more than {MAX_ADDED_KEYS} added keys")
            now = time.time()
            revoked = sorted(k for k in set(revoke_ids) if k not in self._revoked)
            self._added.update({k: new_keys[k] for k in added})
            for kid in revoked:
                self._revoked[kid] = now
                self._added.pop(kid, None)
            self._save()
        return KeyChange(added=added, revoked=revoked, trusted=sorted(self.trusted()))
