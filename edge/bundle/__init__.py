"""Bundles on disk: open and verify archives (hashes, Ed25519), and the store of installed ones.

The bundle is the unit that ships: everything a device needs to trust, test and run a model.
"""

from edge.bundle.archive import (
    check_member_name,
    check_version,
    entry_path,
    extract_bundle,
    read_manifest,
    verify_bundle,
    verify_directory,
)
from edge.bundle.signing import ALGORITHM, PublicKeyLike, key_id, load_public_key, read_key_file
from edge.bundle.store import ModelStore, Slot

__all__ = [
    "ALGORITHM",
    "ModelStore",
    "PublicKeyLike",
    "Slot",
    "check_member_name",
    "check_version",
    "entry_path",
    "extract_bundle",
    "key_id",
    "load_public_key",
    "read_key_file",
    "read_manifest",
    "verify_bundle",
    "verify_directory",
]
