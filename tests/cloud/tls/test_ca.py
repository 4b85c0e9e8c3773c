"""The test CA: what it writes, with which modes and names, and what it refuses."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from cloud.tls import make_ca
from edge.cli import main as edgekit_main
from edge.errors import ConfigError


def _cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_make_ca_writes_keys_0600_and_a_server_cert_for_localhost(tmp_path: Path) -> None:
    ca = make_ca(tmp_path / "ca", clients=["dev-1"])
    for key in (ca.ca_key, ca.server_key, ca.clients["dev-1"][1]):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    root, server = _cert(ca.ca_cert), _cert(ca.server_cert)
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    san = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]
    for leaf in (server, _cert(ca.clients["dev-1"][0])):
        assert leaf.issuer == root.subject
        pub = root.public_key()
        assert isinstance(pub, ec.EllipticCurvePublicKey)
        leaf.verify_directly_issued_by(root)  # raises when the signature is wrong


def test_server_names_are_the_ones_asked_for(tmp_path: Path) -> None:
    ca = make_ca(tmp_path, ["broker.example", "10.0.0.7"])
    san = _cert(ca.server_cert).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.value.get_values_for_type(x509.DNSName) == ["broker.example"]
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]


@pytest.mark.parametrize(
    ("names", "clients", "message"),
    [
        (["bad name"], [], "neither a host name"),
        (None, ["../x"], "client name"),
        (None, ["a", "a"], "distinct"),
    ],
)
def test_bad_names_are_refused_before_anything_is_written(
    tmp_path: Path, names: list[str] | None, clients: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        make_ca(tmp_path / "out", names, clients)
    assert not (tmp_path / "out").exists()


def test_an_existing_ca_is_not_replaced_without_force(tmp_path: Path) -> None:
    first = make_ca(tmp_path)
    before = first.ca_cert.read_bytes()
    with pytest.raises(ConfigError, match="--force"):
        make_ca(tmp_path)
    assert first.ca_cert.read_bytes() == before
    make_ca(tmp_path, force=True)
    assert first.ca_cert.read_bytes() != before


def test_cli_make_ca(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "tls"
    code = edgekit_main(["tls", "make-ca", "--out", str(out), "--client", "hub",
                         "--server-name", "localhost"])  # fmt: skip
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "ca.crt", "ca.key", "client-hub.crt", "client-hub.key", "server.crt", "server.key",
    ]  # fmt: skip
    assert "ca_file" in capsys.readouterr().out
    assert edgekit_main(["tls", "make-ca", "--out", str(out)]) == 1  # exists: a clear error
    assert "exists" in capsys.readouterr().err
