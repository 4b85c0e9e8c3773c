"""Ed25519 signing keys: generate, load, sign manifests.

Private keys stay on the build machine (PKCS8 PEM, file mode 0600); devices get the
public key only (edge/bundle/signing.py verifies). Ed25519 signatures are deterministic, so
re-signing the same manifest gives the same bytes.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from edge.bundle import ALGORITHM, key_id, read_key_file
from edge.contract import Manifest
from edge.errors import ConfigError, ManifestError, SignatureError

PRIVATE_NAME = "edgekit.key"
PUBLIC_NAME = "edgekit.pub"


def generate_keypair(out_dir: str | Path, *, force: bool = False) -> tuple[Path, Path]:
    """Write ``out_dir/edgekit.key`` (0600) and ``out_dir/edgekit.pub``; return both paths.

    Refuses to overwrite an existing key unless ``force``: a lost signing key means every
    device must be re-provisioned with a new trusted key.
    """
    out = Path(out_dir)
    priv_path, pub_path = out / PRIVATE_NAME, out / PUBLIC_NAME
    if not force:
        for p in (priv_path, pub_path):
            if p.exists():
                raise ConfigError(f"{p} already exists; pass --force to overwrite it")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create key directory {out}: {exc.strerror}") from exc
    key = Ed25519PrivateKey.generate()
    priv_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    pub_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    _write_atomic(priv_path, priv_pem, 0o600)
    _write_atomic(pub_path, pub_pem, 0o644)
    return priv_path, pub_path


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)  # umask may have narrowed or widened nothing; be explicit
    os.replace(tmp, path)


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    """Load a PKCS8 PEM Ed25519 private key, with a clear error for every wrong file."""
    p = Path(path)
    data = read_key_file(p, "private key")
    if b"PUBLIC KEY" in data and b"PRIVATE KEY" not in data:
        raise SignatureError(f"{p} is a public key; signing needs the private key (edgekit.key)")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise SignatureError(f"private key {p} is encrypted; give an unencrypted key") from exc
    except ValueError as exc:
        raise SignatureError(f"{p} is not a PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"{p} holds a {type(key).__name__}, not an Ed25519 key")
    return key


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "tolist"):  # numpy scalars and arrays
        return obj.tolist()
    if isinstance(obj, Path):
        return obj.as_posix()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def to_json_data(obj: Any) -> Any:
    """``obj`` as plain JSON data (numpy values converted, NaN refused), via a round trip."""
    try:
        return json.loads(json.dumps(obj, default=_json_default, allow_nan=False))
    except ValueError as exc:
        raise ManifestError(f"manifest holds a value JSON cannot carry: {exc}") from exc
    except TypeError as exc:
        raise ManifestError(f"manifest holds a non-JSON value: {exc}") from exc


def sign_manifest(manifest: Manifest, private_key: Ed25519PrivateKey) -> Manifest:
    """Return ``manifest`` with its Ed25519 signature.

    The manifest is first normalised through a JSON round trip, so the bytes signed here
    are exactly the bytes a verifier recomputes after parsing manifest.json.
    """
    normal = Manifest.parse(to_json_data(manifest.to_dict(with_signature=False)))
    value = base64.b64encode(private_key.sign(normal.canonical_bytes())).decode("ascii")
    signature = {
        "algorithm": ALGORITHM,
        "key_id": key_id(private_key.public_key()),
        "value": value,
    }
    return Manifest.parse({**normal.to_dict(with_signature=False), "signature": signature})
