"""Ed25519 verification of bundle manifests, and public key loading.

The signature covers ``Manifest.canonical_bytes()`` (the manifest without ``signature``,
sorted keys, compact JSON); every other file of the bundle is covered by its sha256 in the
manifest, so one signature protects the whole bundle. Signing lives in cloud/keys.py:
devices only ever hold public keys.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from edge.contract import Manifest
from edge.errors import SignatureError

ALGORITHM = "ed25519"
MAX_KEY_FILE_BYTES = 16 * 1024

PublicKeyLike = Ed25519PublicKey | Path | str | bytes


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256 over the raw 32-byte public key: short, stable, greppable."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def public_key_from_bytes(data: bytes, source: str = "public key") -> Ed25519PublicKey:
    """Parse a PEM (``-----BEGIN PUBLIC KEY-----``) or DER Ed25519 public key."""
    try:
        if data.lstrip().startswith(b"-----BEGIN"):
            if b"PRIVATE KEY" in data:
                raise SignatureError(
                    f"{source} is a private key; give the public key (edgekit.pub) instead"
                )
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except SignatureError:
        raise
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"{source} is not a PEM or DER public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"{source} is a {type(key).__name__}, not an Ed25519 public key")
    return key


def load_public_key(key: PublicKeyLike) -> Ed25519PublicKey:
    """An Ed25519 public key from a key object, a file path, or PEM/DER bytes."""
    if isinstance(key, Ed25519PublicKey):
        return key
    if isinstance(key, bytes):
        return public_key_from_bytes(key)
    path = Path(key)
    data = read_key_file(path, "public key")
    return public_key_from_bytes(data, source=f"public key file {path}")


def read_key_file(path: Path, what: str) -> bytes:
    """The bytes of a key file, refusing a missing, unreadable or oversized one with a
    one-line SignatureError that says which key (``what``) it was meant to be."""
    try:
        size = path.stat().st_size
        if size > MAX_KEY_FILE_BYTES:
            raise SignatureError(f"{what} file {path} is {size} bytes: not a key")
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise SignatureError(f"{what} file {path} does not exist") from exc
    except IsADirectoryError as exc:
        raise SignatureError(f"{what} {path} is a directory, not a key file") from exc
    except OSError as exc:
        raise SignatureError(f"cannot read {what} {path}: {exc.strerror}") from exc


def verify_manifest(manifest: Manifest, public_key: PublicKeyLike) -> str:
    """Check the manifest's Ed25519 signature; return the signer's key id.

    Raises SignatureError naming what is wrong: no signature, an unknown algorithm,
    a malformed value, or a signature that does not verify with this key.
    """
    key = load_public_key(public_key)
    kid = key_id(key)
    sig = manifest.signature
    if not sig:
        raise SignatureError("manifest is not signed")
    algorithm = sig.get("algorithm")
    if algorithm != ALGORITHM:
        raise SignatureError(f"manifest signature algorithm {algorithm!r} is not {ALGORITHM!r}")
    value = sig.get("value")
    if not value:
        raise SignatureError("manifest signature has no 'value'")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError("manifest signature value is not valid base64") from exc
    if len(raw) != 64:
        raise SignatureError(f"manifest signature is {len(raw)} bytes, an Ed25519 one is 64")
    try:
        key.verify(raw, manifest.canonical_bytes())
    except InvalidSignature as exc:
        signer = sig.get("key_id")
        hint = f" (it names signer key {signer})" if signer and signer != kid else ""
        raise SignatureError(f"manifest signature does not verify with key {kid}{hint}") from exc
    return kid
