"""Keep the build machine's directories out of what travels with a model.

A model card, its data report and the export report go to reviewers, to the hub and to
devices; ``/home/alice/data/wine.csv`` means nothing there and names a user, ``wine.csv``
says what was used. The exporter writes file names only, and the hub passes every card
through :func:`strip_paths` again when it renders one, so bundles built before that still
show no absolute paths. Standard library only: the hub and the exporter both import it.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

# An absolute POSIX path of at least one directory (not preceded by a word character, a dot,
# a colon or a slash, so URLs and "n/a" survive), a home-relative path (~/...), a file://
# URL, or a Windows drive path.
_FILE_URL = re.compile(r"\bfile://[^\s()\[\]<>|`'\"]+")
_POSIX_PATH = re.compile(r"(?<![\w.:/~])/(?:[\w.@+-]+/)+([\w.@+-]*)")
_HOME_PATH = re.compile(r"(?<![\w.:/])~[\w.-]*/(?:[\w.@+-]+/)*([\w.@+-]*)")
_WINDOWS_PATH = re.compile(r"\b[A-Za-z]:\\(?:[^\\\s|`'\"]+\\)+([^\\\s|`'\"]*)")


def _last(match: re.Match[str]) -> str:
    parts = [p for p in re.split(r"[\\/]", match.group(0)) if p]
    return parts[-1] if parts else ""


def strip_paths(text: str) -> str:
    """Replace every absolute path in ``text`` by its last component."""
    for pattern in (_FILE_URL, _POSIX_PATH, _HOME_PATH, _WINDOWS_PATH):
        text = pattern.sub(_last, text)
    return text


def scrub(obj: Any) -> Any:
    """:func:`strip_paths` applied to every string inside a JSON-like value."""
    if isinstance(obj, str):
        return strip_paths(obj)
    if isinstance(obj, dict):
        return {k: scrub(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v) for v in obj]
    return obj


def file_name(path: Any) -> str:
    """The last component of a path (``/srv/runs/digits`` -> ``digits``); a name that is
    not a path (``digits``) passes unchanged."""
    text = str(path).rstrip("/\\")
    name = PureWindowsPath(text).name if "\\" in text else PurePosixPath(text).name
    return name or text or str(path)
