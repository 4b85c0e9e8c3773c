"""Bundles on disk: open and verify archives (hashes, Ed25519), and the store of installed ones.

The bundle is the unit that ships: everything a device needs to trust, test and run a model.
"""

from edge.bundle.archive import (
    Trust,
    check_member_name,
    check_signature,
    check_version,
    entry_path,
    extract_bundle,
    load_manifest_dir,
    read_manifest,
    verify_bundle,
    verify_directory,
)
from edge.bundle.keyring import KEYRING_FILE, KeyChange, Keyring
from edge.bundle.signing import ALGORITHM, PublicKeyLike, key_id, load_public_key, read_key_file
from edge.bundle.store import ModelStore, Slot

__all__ = [
    "ALGORITHM",
    "KEYRING_FILE",
    "KeyChange",
    "Keyring",
    "ModelStore",
    "PublicKeyLike",
    "Slot",
    "Trust",
    "check_member_name",
    "check_signature",
    "check_version",
    "entry_path",
    "extract_bundle",
    "key_id",
    "load_manifest_dir",
    "load_public_key",
    "read_key_file",
    "read_manifest",
    "verify_bundle",
    "verify_directory",
]
