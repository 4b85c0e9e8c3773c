"""The keyring: several trusted keys, rotation and permanent revocation, persisted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bundle import KEYRING_FILE, Keyring, key_id, load_public_key, read_manifest
from edge.errors import SignatureError
from tests.bundles import make_bundle

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from cloud.keys import generate_keypair

    root = tmp_path_factory.mktemp("keyring")
    out: dict[str, Path] = {}
    for k in ("a", "b", "c"):
        out[f"priv_{k}"], out[f"pub_{k}"] = generate_keypair(root / k)
        out[f"bundle_{k}"] = make_bundle(root / f"{k}.ekb", out[f"priv_{k}"], version=1)
    return out


def kid(pub: Path) -> str:
    return key_id(load_public_key(pub))


def test_several_keys_are_trusted(keys: dict[str, Path], tmp_path: Path) -> None:
    ring = Keyring([keys["pub_a"], keys["pub_b"]], tmp_path / KEYRING_FILE)
    assert ring.verify(read_manifest(keys["bundle_a"])) == kid(keys["pub_a"])
    assert ring.verify(read_manifest(keys["bundle_b"])) == kid(keys["pub_b"])
    with pytest.raises(SignatureError, match="any trusted key"):
        ring.verify(read_manifest(keys["bundle_c"]))


def test_rotation_and_revocation_persist(keys: dict[str, Path], tmp_path: Path) -> None:
    path = tmp_path / KEYRING_FILE
    ring = Keyring([keys["pub_a"]], path)
    change = ring.apply(add=[keys["pub_b"].read_text()], revoke=[kid(keys["pub_a"])])
    assert change.added == [kid(keys["pub_b"])] and change.revoked == [kid(keys["pub_a"])]
    assert change.trusted == [kid(keys["pub_b"])]
    again = Keyring([keys["pub_a"]], path)  # a restart: the config still names key A
    with pytest.raises(SignatureError, match=f"revoked key {kid(keys['pub_a'])}"):
        again.verify(read_manifest(keys["bundle_a"]))
    assert again.verify(read_manifest(keys["bundle_b"])) == kid(keys["pub_b"])
    assert ring.verify(read_manifest(keys["bundle_b"])) == kid(keys["pub_b"])


def test_revocation_holds_whatever_key_id_the_signature_claims(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    """The signature's ``key_id`` is not signed: relabelling a revoked key's signature
    with a trusted key's id must not help."""
    ring = Keyring([keys["pub_a"], keys["pub_b"]], tmp_path / KEYRING_FILE)
    ring.apply(revoke=[kid(keys["pub_a"])])
    manifest = read_manifest(keys["bundle_a"])
    relabelled = type(manifest)(**{**manifest.__dict__,
                                   "signature": {**(manifest.signature or {}),
                                                 "key_id": kid(keys["pub_b"])}})  # fmt: skip
    with pytest.raises(SignatureError, match="does not verify"):
        ring.verify(relabelled)


def test_a_revoked_key_cannot_come_back(keys: dict[str, Path], tmp_path: Path) -> None:
    ring = Keyring([keys["pub_a"]], tmp_path / KEYRING_FILE)
    ring.apply(revoke=[kid(keys["pub_b"])])  # revoked before it was ever trusted
    with pytest.raises(SignatureError, match="revoked and cannot be trusted again"):
        ring.apply(add=[keys["pub_b"].read_text()])
    with pytest.raises(SignatureError, match="revoked and cannot be trusted again"):
        ring.apply(add=[keys["pub_c"].read_text()], revoke=[kid(keys["pub_c"])])
    assert sorted(ring.trusted()) == [kid(keys["pub_a"])]  # all or nothing


@pytest.mark.parametrize(
    ("add", "revoke", "match"),
    [
        (["not a pem"], [], "not a PEM or DER"),
        ([], ["ABC"], "16 lower-case hex"),
        ([], ["0123456789ABCDEF"], "16 lower-case hex"),
    ],
)
def test_malformed_changes_are_refused(
    keys: dict[str, Path], tmp_path: Path, add: list[str], revoke: list[str], match: str
) -> None:
    ring = Keyring([keys["pub_a"]], tmp_path / KEYRING_FILE)
    with pytest.raises(SignatureError, match=match):
        ring.apply(add=add, revoke=revoke)
    assert not (tmp_path / KEYRING_FILE).exists()


def test_an_unreadable_keyring_trusts_nothing(keys: dict[str, Path], tmp_path: Path) -> None:
    """Forgetting a revocation is the one thing the keyring must not do: fail closed."""
    path = tmp_path / KEYRING_FILE
    path.write_text("{not json")
    ring = Keyring([keys["pub_a"]], path)
    with pytest.raises(SignatureError, match="unreadable"):
        ring.verify(read_manifest(keys["bundle_a"]))
    with pytest.raises(SignatureError, match="unreadable"):
        ring.apply(revoke=[kid(keys["pub_b"])])
    path.write_text(json.dumps({"added": {"0" * 16: keys["pub_b"].read_text()}, "revoked": {}}))
    with pytest.raises(SignatureError, match="does not match its PEM"):
        Keyring([keys["pub_a"]], path).verify(read_manifest(keys["bundle_a"]))


def test_another_keyring_of_the_data_dir_sees_changes(
    keys: dict[str, Path], tmp_path: Path
) -> None:
    """The agent builds a new Keyring when its config changes; an older one in use by an
    install still sees a revocation made through the new one."""
    path = tmp_path / KEYRING_FILE
    old, new = Keyring([keys["pub_a"]], path), Keyring([keys["pub_a"]], path)
    new.apply(revoke=[kid(keys["pub_a"])])
    with pytest.raises(SignatureError, match="revoked"):
        old.verify(read_manifest(keys["bundle_a"]))
