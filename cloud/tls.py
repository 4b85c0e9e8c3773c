"""A small test certificate authority for MQTT over TLS (the demo, tests, a lab fleet).

One CA key and certificate, a server certificate whose subject alternative names are the
host names and addresses clients dial (``localhost`` and ``127.0.0.1`` by default) and,
optionally, client certificates for brokers that require them. Keys are written 0600. It
is not a production PKI: no revocation lists, no intermediates, a fixed validity.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from edge.errors import ConfigError

DEFAULT_SERVER_NAMES = ("localhost", "127.0.0.1")
VALID_DAYS = 825  # the longest validity clients (macOS, browsers) accept for a server cert
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")

Key = ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class CertAuthority:
    """Where make_ca wrote each file."""

    ca_cert: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    clients: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # name -> cert, key


def _key() -> Key:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "edgekit test CA"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])  # fmt: skip


def _san(names: list[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for n in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            if not re.fullmatch(r"[A-Za-z0-9*]([A-Za-z0-9.-]{0,252})", n):
                raise ConfigError(
                    f"server name {n!r} is neither a host name nor an address"
                ) from None
            entries.append(x509.DNSName(n))
    return x509.SubjectAlternativeName(entries)


def _builder(subject: x509.Name, issuer: x509.Name, key: Key, days: int) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))  # tolerate a little clock skew
        .not_valid_after(now + dt.timedelta(days=days))
    )


def _leaf(
    cn: str, ca_key: Key, ca_name: x509.Name, usage: x509.ObjectIdentifier, days: int,
    sans: list[str] | None = None,
) -> tuple[x509.Certificate, Key]:  # fmt: skip
    key = _key()
    b = _builder(_name(cn), ca_name, key, days)
    b = b.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    b = b.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    b = b.add_extension(
        x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
    )
    if sans:
        b = b.add_extension(_san(sans), critical=False)
    return b.sign(ca_key, hashes.SHA256()), key


def _write(path: Path, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.chmod(path, mode)  # O_CREAT's mode does not apply to an existing file


def _write_pair(out: Path, stem: str, cert: x509.Certificate, key: Key) -> tuple[Path, Path]:
    crt, pem = out / f"{stem}.crt", out / f"{stem}.key"
    _write(pem, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ), 0o600)  # fmt: skip
    _write(crt, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return crt, pem


def make_ca(
    out: Path,
    server_names: list[str] | None = None,
    clients: list[str] | None = None,
    *,
    days: int = VALID_DAYS,
    force: bool = False,
) -> CertAuthority:
    """Write ``ca.crt``/``ca.key``, ``server.crt``/``server.key`` and one
    ``client-NAME.crt``/``.key`` per client into ``out``. ConfigError on bad names or when
    ``ca.key`` exists and ``force`` is not set (a CA is not replaced by accident)."""
    names = list(server_names or DEFAULT_SERVER_NAMES)
    clients = list(clients or [])
    for c in clients:
        if not _NAME.fullmatch(c):
            raise ConfigError(f"client name {c!r}: use letters, digits, '.', '_' and '-'")
    if len(set(clients)) != len(clients):
        raise ConfigError("client names must be distinct")
    if not 1 <= days <= 3650:
        raise ConfigError("days must be between 1 and 3650")
    _san(names)  # reject bad names before anything is written
    out = out.expanduser().resolve()
    if (out / "ca.key").exists() and not force:
        raise ConfigError(f"{out / 'ca.key'} exists; pass --force to make a new CA")
    try:
        out.mkdir(parents=True, exist_ok=True)
        ca_key = _key()
        ca_name = _name("edgekit test CA")
        ca = (
            _builder(ca_name, ca_name, ca_key, days)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        ca_crt, ca_pem = _write_pair(out, "ca", ca, ca_key)
        srv, srv_key = _leaf(names[0], ca_key, ca_name, ExtendedKeyUsageOID.SERVER_AUTH, days,
                             names)  # fmt: skip
        server = _write_pair(out, "server", srv, srv_key)
        written: dict[str, tuple[Path, Path]] = {}
        for c in clients:
            cert, key = _leaf(c, ca_key, ca_name, ExtendedKeyUsageOID.CLIENT_AUTH, days)
            written[c] = _write_pair(out, f"client-{c}", cert, key)
    except OSError as exc:
        raise ConfigError(f"cannot write the test CA into {out}: {exc}") from exc
    return CertAuthority(ca_crt, ca_pem, server[0], server[1], written)
