"""Read a model card's chart images straight out of a stored bundle archive.

Only regular ``charts/<name>.png`` members that really are PNGs and are of sane size are
returned, so a crafted bundle cannot make the hub serve scripts or huge files.
"""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

MAX_IMAGE_BYTES = 8 * 1024 * 1024
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_MEMBER = re.compile(r"^charts/[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.png$")


def read_bundle_image(bundle: Path, member: str) -> bytes | None:
    """The bytes of ``member`` from the gzip'd tar ``bundle``, or None if not servable."""
    if not _MEMBER.match(member) or ".." in member:
        return None
    try:
        with tarfile.open(bundle, "r:gz") as tar:
            for candidate in (member, f"./{member}"):
                try:
                    info = tar.getmember(candidate)
                except KeyError:
                    continue
                if not info.isfile() or info.size > MAX_IMAGE_BYTES:
                    return None
                handle = tar.extractfile(info)
                if handle is None:
                    return None
                data = handle.read(MAX_IMAGE_BYTES + 1)
                return data if data.startswith(PNG_MAGIC) else None
    except (OSError, tarfile.TarError, EOFError):
        return None
    return None
