"""Open, verify and extract model bundles without trusting them.

A bundle (``.ekb``) is a gzip'd tar with ``manifest.json`` at its root; see
docs/bundle-format.md. Everything here treats the archive as hostile until proven
otherwise: member names are checked before anything touches the disk, only regular files
(and harmless directory entries) are accepted, sizes are bounded per member and in total
(counting *decompressed* bytes, so a gzip bomb stops early), duplicates and unlisted files
are refused, and every listed file must be present with its sha256 and size. Each refusal
is one clear message naming the file.

The archive is read in one streaming pass: files are hashed (and, for extraction, written
to a temporary directory) as they go by, then compared with the manifest at the end.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import stat
import tarfile
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from edge.bundle.keyring import Keyring
from edge.bundle.signing import PublicKeyLike, verify_manifest
from edge.contract import MANIFEST_NAME, FileEntry, Manifest
from edge.durable import fsync_dir
from edge.errors import BundleError, IntegrityError, ManifestError, UnsafeArchiveError, VersionError

CHUNK = 1 << 20
Trust = PublicKeyLike | Keyring  # one key, or a device's keyring (several, some revoked)


def check_signature(manifest: Manifest, trust: Trust) -> str:
    """The signer's key id, checked against one key or against a keyring."""
    if isinstance(trust, Keyring):
        return trust.verify(manifest)
    return verify_manifest(manifest, trust)


@dataclass(frozen=True)
class BundleLimits:
    """Bounds on what a bundle may contain. The defaults fit a mobilenet-sized bundle."""

    max_member_bytes: int = 512 * 1024 * 1024
    max_total_bytes: int = 2 * 1024 * 1024 * 1024
    max_members: int = 256
    max_manifest_bytes: int = 4 * 1024 * 1024


DEFAULT_LIMITS = BundleLimits()


@dataclass(frozen=True)
class MemberInfo:
    """What one pass over the archive learned about a regular file."""

    name: str
    size: int
    sha256: str


class _CountingReader:
    """A read-only stream that refuses to yield more than ``limit`` decompressed bytes."""

    def __init__(self, raw: IO[bytes], limit: int) -> None:
        self._raw = raw
        self._limit = limit
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        self.count += len(data)
        if self.count > self._limit:
            raise UnsafeArchiveError(
                f"bundle decompresses to more than {self._limit} bytes (limit exceeded)"
            )
        return data


MAX_HEADER_BYTES = 64 * 1024


class _SafeTarInfo(tarfile.TarInfo):
    """TarInfo that refuses huge pax / GNU long-name headers before tarfile reads them
    into memory (the stdlib would allocate whatever size the header claims)."""

    def _check_header_size(self) -> None:
        if self.size > MAX_HEADER_BYTES:
            raise UnsafeArchiveError(
                f"tar extended header of {self.size} bytes exceeds {MAX_HEADER_BYTES}"
            )

    def _proc_pax(self, tarfile: Any) -> Any:
        self._check_header_size()
        return super()._proc_pax(tarfile)  # type: ignore[misc]

    def _proc_gnulong(self, tarfile: Any) -> Any:
        self._check_header_size()
        return super()._proc_gnulong(tarfile)  # type: ignore[misc]


def check_member_name(name: str) -> str:
    """Return the normalised member name or raise UnsafeArchiveError.

    Refused: absolute paths, ``..`` anywhere, backslashes, NUL and control characters,
    empty components; a leading ``./`` is tolerated and stripped.
    """
    if not name or "\x00" in name or "\\" in name or any(ord(c) < 32 for c in name):
        raise UnsafeArchiveError(f"unsafe member {name!r}: bad characters")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"unsafe member {name}: absolute path")
    stripped = name[2:] if name.startswith("./") else name
    stripped = stripped.rstrip("/")
    parts = stripped.split("/")
    if ".." in parts:
        raise UnsafeArchiveError(f"unsafe member {name}: path traversal")
    if any(p in ("", ".") for p in parts):
        raise UnsafeArchiveError(f"unsafe member {name}: empty or '.' path component")
    return str(PurePosixPath(*parts))


def _check_member_type(member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        raise UnsafeArchiveError(f"unsafe member {member.name}: links are not allowed")
    if member.type == tarfile.GNUTYPE_SPARSE or member.issparse():
        raise UnsafeArchiveError(f"unsafe member {member.name}: sparse files are not allowed")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(
            f"unsafe member {member.name}: devices, fifos and special files are not allowed"
        )


def _iter_archive(
    path: Path, limits: BundleLimits
) -> Iterator[tuple[str, tarfile.TarInfo, IO[bytes] | None]]:
    """Yield ``(safe_name, member, stream)`` for every member, checking as it goes."""
    try:
        raw = path.open("rb")
    except FileNotFoundError as exc:
        raise BundleError(f"bundle {path} does not exist") from exc
    except OSError as exc:
        raise BundleError(f"cannot open bundle {path}: {exc.strerror}") from exc
    # Slack for tar headers and padding on top of the file bytes.
    slack = 1024 * (limits.max_members + 4) * 2
    with raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        counter = _CountingReader(gz, limits.max_total_bytes + slack)  # type: ignore[arg-type]
        try:
            with tarfile.open(  # type: ignore[call-overload]
                fileobj=counter, mode="r|", tarinfo=_SafeTarInfo
            ) as tar:
                seen: set[str] = set()
                total = 0
                for member in tar:
                    name = check_member_name(member.name)
                    _check_member_type(member)
                    if len(seen) >= limits.max_members:
                        raise UnsafeArchiveError(
                            f"bundle has more than {limits.max_members} members"
                        )
                    if name in seen:
                        raise UnsafeArchiveError(f"duplicate member {name}")
                    seen.add(name)
                    if member.isdir():
                        yield name, member, None
                        continue
                    cap = (
                        limits.max_manifest_bytes
                        if name == MANIFEST_NAME
                        else limits.max_member_bytes
                    )
                    if member.size > cap:
                        raise UnsafeArchiveError(
                            f"{name}: {member.size} bytes exceeds the {cap} byte member limit"
                        )
                    total += member.size
                    if total > limits.max_total_bytes:
                        raise UnsafeArchiveError(
                            f"bundle exceeds the {limits.max_total_bytes} byte total size limit"
                        )
                    yield name, member, tar.extractfile(member)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise BundleError(f"{path} is not a readable bundle archive: {exc}") from exc
        except OSError as exc:  # gzip raises plain OSError for "Not a gzipped file"
            raise BundleError(f"{path} is not a readable bundle archive: {exc}") from exc


def parse_manifest_bytes(data: bytes) -> Manifest:
    """Parse manifest.json bytes into a Manifest (ManifestError on anything malformed)."""
    try:
        obj: Any = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"manifest.json is not valid JSON: {exc}") from exc
    manifest = Manifest.parse(obj)
    for entry in manifest.all_entries():
        try:
            normal = check_member_name(entry.file)
        except UnsafeArchiveError as exc:
            raise ManifestError(f"manifest lists an unsafe file name: {exc}") from exc
        if normal != entry.file or entry.file == MANIFEST_NAME:
            raise ManifestError(f"manifest lists an invalid file name {entry.file!r}")
    names = [e.file for e in manifest.all_entries()]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ManifestError(f"manifest lists {dupes[0]} more than once")
    return manifest


def read_manifest(path: str | Path, limits: BundleLimits = DEFAULT_LIMITS) -> Manifest:
    """The bundle's manifest, UNVERIFIED (for inspection; never act on it unverified)."""
    for name, _member, stream in _iter_archive(Path(path), limits):
        if name == MANIFEST_NAME and stream is not None:
            return parse_manifest_bytes(stream.read())
    raise IntegrityError(f"missing file {MANIFEST_NAME}")


def _hash_stream(stream: IO[bytes], sink: IO[bytes] | None) -> tuple[int, str]:
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
        if sink is not None:
            sink.write(chunk)
    return size, h.hexdigest()


def _check_entries(manifest: Manifest, members: dict[str, MemberInfo]) -> None:
    """Every listed file present with its size and hash; nothing unlisted."""
    listed = {e.file: e for e in manifest.all_entries()}
    for entry in manifest.all_entries():
        got = members.get(entry.file)
        if got is None:
            raise IntegrityError(f"missing file {entry.file}")
        if got.size != entry.size:
            raise IntegrityError(
                f"{entry.file}: size mismatch ({got.size} bytes, manifest says {entry.size})"
            )
        if got.sha256 != entry.sha256:
            raise IntegrityError(f"{entry.file}: sha256 mismatch")
    extra = sorted(set(members) - set(listed) - {MANIFEST_NAME})
    if extra:
        raise IntegrityError(f"unlisted file {extra[0]}: not covered by the manifest")


def _scan(
    path: Path, limits: BundleLimits, dest: Path | None
) -> tuple[Manifest, dict[str, MemberInfo]]:
    manifest_bytes: bytes | None = None
    members: dict[str, MemberInfo] = {}
    for name, _member, stream in _iter_archive(path, limits):
        if stream is None:
            continue
        if name == MANIFEST_NAME:
            manifest_bytes = stream.read()
            if dest is not None:
                (dest / MANIFEST_NAME).write_bytes(manifest_bytes)
            continue
        if dest is None:
            size, digest = _hash_stream(stream, None)
        else:
            target = dest / name
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                with target.open("xb") as out:
                    size, digest = _hash_stream(stream, out)
                    out.flush()
                    os.fsync(out.fileno())
            except OSError as exc:  # e.g. a file and a directory of the same name, disk full
                raise BundleError(f"cannot extract {name}: {exc.strerror or exc}") from exc
        members[name] = MemberInfo(name, size, digest)
    if manifest_bytes is None:
        raise IntegrityError(f"missing file {MANIFEST_NAME}")
    return parse_manifest_bytes(manifest_bytes), members


def verify_bundle(
    path: str | Path,
    public_key: Trust | None,
    limits: BundleLimits = DEFAULT_LIMITS,
) -> Manifest:
    """Verify a bundle file: archive safety, every sha256 and size, and the signature.

    ``public_key=None`` checks integrity only (for local tools that say so loudly); the
    agent always passes its trusted key. Raises a BundleError subclass naming the problem.
    """
    manifest, members = _scan(Path(path), limits, None)
    if public_key is not None:
        check_signature(manifest, public_key)
    _check_entries(manifest, members)
    return manifest


def extract_bundle(
    path: str | Path,
    dest: str | Path,
    public_key: Trust | None,
    limits: BundleLimits = DEFAULT_LIMITS,
    *,
    replace: bool = False,
) -> Manifest:
    """Verify and extract a bundle into directory ``dest``, atomically.

    Files go to a temporary sibling directory first; only when the signature and every
    hash hold is it renamed to ``dest``. A crash or a refusal leaves ``dest`` untouched.
    With ``replace=True`` an existing ``dest`` is swapped out; otherwise it is an error.
    """
    dest = Path(dest)
    if dest.exists() and not replace:
        raise BundleError(f"{dest} already exists")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        manifest, members = _scan(Path(path), limits, tmp)
        if public_key is not None:
            check_signature(manifest, public_key)
        _check_entries(manifest, members)
        fsync_dir(tmp)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
            os.replace(dest, old / "x")
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def load_manifest_dir(bundle_dir: str | Path) -> Manifest:
    """Parse ``manifest.json`` of an extracted bundle directory (no verification)."""
    mpath = Path(bundle_dir) / MANIFEST_NAME
    try:
        data = mpath.read_bytes()
    except FileNotFoundError as exc:
        raise IntegrityError(f"missing file {MANIFEST_NAME} in {bundle_dir}") from exc
    except OSError as exc:
        raise BundleError(f"cannot read {mpath}: {exc.strerror}") from exc
    return parse_manifest_bytes(data)


def verify_directory(bundle_dir: str | Path, public_key: Trust | None) -> Manifest:
    """Re-verify an extracted bundle (after a restart): signature, files, no links, no extras."""
    root = Path(bundle_dir)
    manifest = load_manifest_dir(root)
    if public_key is not None:
        check_signature(manifest, public_key)
    members: dict[str, MemberInfo] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for d in dirnames:
            if os.path.islink(os.path.join(dirpath, d)):
                raise UnsafeArchiveError(f"unsafe member {d}: links are not allowed")
        for f in filenames:
            full = Path(dirpath) / f
            rel = full.relative_to(root).as_posix()
            st = full.lstat()
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeArchiveError(f"unsafe member {rel}: not a regular file")
            if rel == MANIFEST_NAME:
                continue
            with full.open("rb") as fh:
                size, digest = _hash_stream(fh, None)
            members[rel] = MemberInfo(rel, size, digest)
    _check_entries(manifest, members)
    return manifest


def entry_path(bundle_dir: str | Path, entry: FileEntry | str) -> Path:
    """Path of a manifest-listed file inside an extracted bundle."""
    name = entry if isinstance(entry, str) else entry.file
    return Path(bundle_dir) / check_member_name(name)


def check_version(candidate: int, installed: int | None, *, rollback: bool = False) -> None:
    """The version rule: a deploy must be strictly newer than what is installed; a
    rollback must be strictly older. (Whether the rollback target is still in the store
    is the store's question.) Raises VersionError with the numbers."""
    if installed is None:
        if rollback:
            raise VersionError(f"cannot roll back to version {candidate}: nothing is installed")
        return
    if rollback and candidate >= installed:
        raise VersionError(
            f"rollback to version {candidate} is not older than the installed version {installed}"
        )
    if not rollback and candidate <= installed:
        raise VersionError(
            f"version {candidate} is not newer than the installed version {installed}"
        )
