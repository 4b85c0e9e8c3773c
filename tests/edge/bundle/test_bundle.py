"""Bundle reading is safe against hostile archives; every tampering has its own message."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

from edge.bundle import archive as b
from edge.bundle import key_id, load_public_key
from edge.errors import (
    BundleError,
    IntegrityError,
    ManifestError,
    SignatureError,
    UnsafeArchiveError,
    VersionError,
)
from tests.edge.bundle_helpers import (
    edit_manifest,
    file_info,
    make_bundle,
    make_keys,
    read_members,
    replace_member,
    write_members,
)


@pytest.fixture()
def keys(tmp_path: Path) -> tuple[Path, Path]:
    return make_keys(tmp_path)


@pytest.fixture()
def bundle(tmp_path: Path, keys: tuple[Path, Path]) -> Path:
    return make_bundle(tmp_path, keys[0])


def test_good_bundle_verifies(bundle: Path, keys: tuple[Path, Path]) -> None:
    m = b.verify_bundle(bundle, keys[1])
    assert m.name == "demo" and m.version == 1
    assert {e.file for e in m.all_entries()} == {
        "models/litert-fp32.tflite",
        "models/openvino-fp32.xml",
        "models/openvino-fp32.bin",
        "golden.npz",
        "reference.json",
        "model_card.md",
        "charts/x.png",
    }
    assert read_members(bundle)[0][0].name == "manifest.json"


# ------------------------------------------------------------------ the five tamper tests


def test_changed_byte_in_model_is_refused(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    members = read_members(bundle)
    data = dict((m.name, d) for m, d in members)["models/litert-fp32.tflite"]
    assert data is not None
    flipped = bytes([data[0] ^ 1]) + data[1:]
    bad = replace_member(bundle, tmp_path / "bad.ekb", "models/litert-fp32.tflite", flipped)
    with pytest.raises(IntegrityError, match=r"^models/litert-fp32\.tflite: sha256 mismatch$"):
        b.verify_bundle(bad, keys[1])


def test_edited_manifest_is_refused(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    bad = edit_manifest(bundle, tmp_path / "bad.ekb", lambda m: m.update(version=99))
    kid = key_id(load_public_key(keys[1]))
    with pytest.raises(SignatureError, match=f"manifest signature does not verify with key {kid}"):
        b.verify_bundle(bad, keys[1])


def test_manifest_edited_to_match_a_swapped_model_is_refused(
    tmp_path: Path, bundle: Path, keys: tuple
) -> None:
    import hashlib

    evil = b"evil model"
    step = replace_member(bundle, tmp_path / "step.ekb", "models/litert-fp32.tflite", evil)

    def point_at_evil(m: dict) -> None:
        m["artifacts"][0].update(sha256=hashlib.sha256(evil).hexdigest(), size=len(evil))

    bad = edit_manifest(step, tmp_path / "bad.ekb", point_at_evil)
    with pytest.raises(SignatureError, match="does not verify"):
        b.verify_bundle(bad, keys[1])


def test_missing_file_is_refused(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    members = [(m, d) for m, d in read_members(bundle) if m.name != "golden.npz"]
    bad = write_members(tmp_path / "bad.ekb", members)
    with pytest.raises(IntegrityError, match=r"^missing file golden\.npz$"):
        b.verify_bundle(bad, keys[1])


def test_wrong_key_is_refused(tmp_path: Path, bundle: Path) -> None:
    _priv, other_pub = make_keys(tmp_path, "other")
    kid = key_id(load_public_key(other_pub))
    with pytest.raises(SignatureError, match=f"does not verify with key {kid}"):
        b.verify_bundle(bundle, other_pub)


def test_path_traversal_is_refused(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    members = [*read_members(bundle), (file_info("../../etc/passwd"), b"root:x:0:0")]
    bad = write_members(tmp_path / "bad.ekb", members)
    with pytest.raises(UnsafeArchiveError, match=r"unsafe member \.\./\.\./etc/passwd"):
        b.verify_bundle(bad, keys[1])
    dest = tmp_path / "out"
    with pytest.raises(UnsafeArchiveError):
        b.extract_bundle(bad, dest, keys[1])
    assert not dest.exists() and not (tmp_path.parent / "etc").exists()


# ------------------------------------------------------------------ more hostile archives


@pytest.mark.parametrize(
    ("info", "message"),
    [
        (file_info("/etc/passwd"), "absolute path"),
        (file_info("models/../../x"), "path traversal"),
        (file_info("models//x"), "empty"),
        (file_info("a\\b"), "bad characters"),
        (file_info("link", type=tarfile.SYMTYPE, linkname="/etc/passwd"), "links"),
        (file_info("hard", type=tarfile.LNKTYPE, linkname="manifest.json"), "links"),
        (file_info("dev", type=tarfile.CHRTYPE, devmajor=1, devminor=3), "special"),
        (file_info("fifo", type=tarfile.FIFOTYPE), "special"),
    ],
)
def test_unsafe_members_refused(
    tmp_path: Path, bundle: Path, keys: tuple, info: tarfile.TarInfo, message: str
) -> None:
    data = b"x" if info.type == tarfile.REGTYPE else None
    bad = write_members(tmp_path / "bad.ekb", [*read_members(bundle), (info, data)])
    with pytest.raises(UnsafeArchiveError, match=message):
        b.verify_bundle(bad, keys[1])


def test_oversize_member_refused(bundle: Path, keys: tuple) -> None:
    limits = b.BundleLimits(max_member_bytes=500)
    with pytest.raises(UnsafeArchiveError, match=r"models/litert-fp32\.tflite: 1024 bytes"):
        b.verify_bundle(bundle, keys[1], limits)


def test_total_size_and_member_count_limits(bundle: Path, keys: tuple) -> None:
    with pytest.raises(UnsafeArchiveError, match=r"total size limit|decompresses"):
        b.verify_bundle(bundle, keys[1], b.BundleLimits(max_total_bytes=1500))
    with pytest.raises(UnsafeArchiveError, match="more than 3 members"):
        b.verify_bundle(bundle, keys[1], b.BundleLimits(max_members=3))


def test_gzip_bomb_stops_at_the_decompressed_limit(tmp_path: Path) -> None:
    # 50 MB of zeros compress to ~50 KB; the reader must stop long before inflating it all.
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo("models/big.tflite")
        info.size = 50 * 1024 * 1024
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    bomb = tmp_path / "bomb.ekb"
    bomb.write_bytes(gzip.compress(raw.getvalue()))
    assert bomb.stat().st_size < 200_000
    limits = b.BundleLimits(max_member_bytes=1 << 40, max_total_bytes=1 << 20)
    with pytest.raises(UnsafeArchiveError, match="limit"):
        b.verify_bundle(bomb, None, limits)


def test_counting_reader_trips() -> None:
    reader = b._CountingReader(io.BytesIO(bytes(100)), limit=50)
    reader.read(40)
    with pytest.raises(UnsafeArchiveError, match="more than 50 bytes"):
        reader.read(40)


def test_duplicate_member_refused(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    members = read_members(bundle)
    card = next((m, d) for m, d in members if m.name == "model_card.md")
    bad = write_members(tmp_path / "bad.ekb", [*members, card])
    with pytest.raises(UnsafeArchiveError, match=r"duplicate member model_card\.md"):
        b.verify_bundle(bad, keys[1])


def test_unlisted_extra_file_refused(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    bad = write_members(
        tmp_path / "bad.ekb", [*read_members(bundle), (file_info("extra.bin"), b"payload")]
    )
    with pytest.raises(IntegrityError, match=r"unlisted file extra\.bin"):
        b.verify_bundle(bad, keys[1])


def test_size_mismatch_named(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    bad = replace_member(bundle, tmp_path / "bad.ekb", "model_card.md", b"# longer card\n")
    with pytest.raises(IntegrityError, match=r"^model_card\.md: size mismatch"):
        b.verify_bundle(bad, keys[1])


def test_unsigned_manifest_refused(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    bad = edit_manifest(bundle, tmp_path / "bad.ekb", lambda m: m.pop("signature"))
    with pytest.raises(SignatureError, match="manifest is not signed"):
        b.verify_bundle(bad, keys[1])
    # Without a key only integrity is checked, and that still holds.
    assert b.verify_bundle(bad, None).signature is None


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.update(algorithm="rsa"), "algorithm 'rsa'"),
        (lambda s: s.update(value="not base64!"), "not valid base64"),
        (lambda s: s.update(value="AAAA"), "3 bytes"),
    ],
)
def test_malformed_signatures(
    tmp_path: Path, bundle: Path, keys: tuple, change: object, message: str
) -> None:
    bad = edit_manifest(bundle, tmp_path / "bad.ekb", lambda m: change(m["signature"]))  # type: ignore[operator]
    with pytest.raises(SignatureError, match=message):
        b.verify_bundle(bad, keys[1])


def test_missing_manifest(tmp_path: Path, bundle: Path) -> None:
    members = [(m, d) for m, d in read_members(bundle) if m.name != "manifest.json"]
    bad = write_members(tmp_path / "bad.ekb", members)
    with pytest.raises(IntegrityError, match=r"missing file manifest\.json"):
        b.verify_bundle(bad, None)
    with pytest.raises(IntegrityError, match=r"missing file manifest\.json"):
        b.read_manifest(bad)


def test_manifest_not_json_or_unsafe_names(tmp_path: Path, bundle: Path) -> None:
    bad = replace_member(bundle, tmp_path / "bad.ekb", "manifest.json", b"{nope")
    with pytest.raises(ManifestError, match="not valid JSON"):
        b.read_manifest(bad)
    bad2 = edit_manifest(
        bundle, tmp_path / "bad2.ekb", lambda m: m["files"][0].update(file="../x.md")
    )
    with pytest.raises(ManifestError, match="unsafe file name"):
        b.verify_bundle(bad2, None)


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"not an archive at all", "not a readable bundle"), (None, "does not exist")],
)
def test_unreadable_files(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "x.ekb"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(BundleError, match=message):
        b.verify_bundle(path, None)


def test_truncated_archive(tmp_path: Path, bundle: Path) -> None:
    data = bundle.read_bytes()
    cut = tmp_path / "cut.ekb"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError):
        b.verify_bundle(cut, None)


# ------------------------------------------------------------------ extraction


def test_extract_is_atomic_and_complete(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    dest = tmp_path / "slots" / "v1"
    m = b.extract_bundle(bundle, dest, keys[1])
    assert (dest / "models" / "openvino-fp32.bin").read_bytes() == b"\x00" * 64
    assert json.loads((dest / "manifest.json").read_bytes())["version"] == m.version
    assert b.verify_directory(dest, keys[1]) == m
    with pytest.raises(BundleError, match="already exists"):
        b.extract_bundle(bundle, dest, keys[1])
    assert b.extract_bundle(bundle, dest, keys[1], replace=True).version == 1
    assert sorted(p.name for p in dest.parent.iterdir()) == ["v1"]


def test_failed_extract_leaves_nothing(tmp_path: Path, bundle: Path) -> None:
    _p, other = make_keys(tmp_path, "other")
    dest = tmp_path / "slots" / "v1"
    with pytest.raises(SignatureError):
        b.extract_bundle(bundle, dest, other)
    assert list((tmp_path / "slots").iterdir()) == []


def test_verify_directory_catches_changes(tmp_path: Path, bundle: Path, keys: tuple) -> None:
    dest = tmp_path / "d"
    b.extract_bundle(bundle, dest, keys[1])
    (dest / "stray.txt").write_text("x")
    with pytest.raises(IntegrityError, match=r"unlisted file stray\.txt"):
        b.verify_directory(dest, keys[1])
    (dest / "stray.txt").unlink()
    os.symlink("/etc/hostname", dest / "link")
    with pytest.raises(UnsafeArchiveError, match="link"):
        b.verify_directory(dest, keys[1])
    (dest / "link").unlink()
    (dest / "golden.npz").write_bytes(b"changed")
    with pytest.raises(IntegrityError, match=r"golden\.npz: size mismatch"):
        b.verify_directory(dest, keys[1])


# ------------------------------------------------------------------ names and versions


@pytest.mark.parametrize(
    ("name", "normal"),
    [
        ("manifest.json", "manifest.json"),
        ("./models/a.onnx", "models/a.onnx"),
        ("charts/", "charts"),
    ],
)
def test_member_names_normalised(name: str, normal: str) -> None:
    assert b.check_member_name(name) == normal


@pytest.mark.parametrize("name", ["", "..", "a/../b", "/x", "C:x", "a/./b", "nul\x00", "tab\tx"])
def test_member_names_refused(name: str) -> None:
    with pytest.raises(UnsafeArchiveError):
        b.check_member_name(name)


def test_version_rule() -> None:
    b.check_version(2, 1)
    b.check_version(1, None)
    b.check_version(1, 3, rollback=True)
    with pytest.raises(VersionError, match="version 1 is not newer than the installed version 1"):
        b.check_version(1, 1)
    with pytest.raises(VersionError, match="not newer"):
        b.check_version(1, 2)
    with pytest.raises(VersionError, match="not older"):
        b.check_version(3, 3, rollback=True)
    with pytest.raises(VersionError, match="nothing is installed"):
        b.check_version(3, None, rollback=True)


def test_huge_extended_header_refused_before_allocation(tmp_path: Path) -> None:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type = tarfile.XHDTYPE
    info.size = 100 * 1024 * 1024  # claims 100 MB of pax records
    header = info.tobuf(format=tarfile.USTAR_FORMAT)
    bomb = tmp_path / "pax.ekb"
    with gzip.open(bomb, "wb") as gz:
        gz.write(header)
        for _ in range(100):
            gz.write(bytes(1024 * 1024))
    with pytest.raises(UnsafeArchiveError, match="extended header"):
        b.verify_bundle(bomb, None)


def test_file_and_directory_clash_is_a_bundle_error(
    tmp_path: Path, bundle: Path, keys: tuple
) -> None:
    bad = write_members(tmp_path / "bad.ekb", [(file_info("models"), b"x"), *read_members(bundle)])
    dest = tmp_path / "out"
    with pytest.raises(BundleError, match="cannot extract models/"):
        b.extract_bundle(bad, dest, keys[1])
    assert not dest.exists()
