"""Which samples a request means: :class:`SampleFilter`, shared by the sample API, the
labeling page and dataset versions (cloud/hub/datasets/ freezes what a filter matches).

Filters arrive as query strings (``?labeled=false``) or JSON (``"labeled": false``);
:meth:`SampleFilter.from_args` reads both and refuses bad values with a 400 ``HubError``
that names the key, so a typo never silently widens a dataset to every sample.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Select

from cloud.errors import HubError
from cloud.hub.storage import SampleRecord
from edge.contract import DEVICE_ID_RE, REASONS

FILTER_KEYS = ("device", "model", "version", "reason", "predicted", "label", "labeled")
MAX_NAME = 256
MAX_VERSION = 2**31 - 1
# a label becomes a directory name in an image-folder export: no separators, no control
# characters, no "." / "..", no surrounding blanks
_LABEL_RE = re.compile(r"[^/\\\x00-\x1f\x7f]{1,128}")
_TRUE, _FALSE = ("true", "1", "yes"), ("false", "0", "no")


def check_label(value: Any, where: str = "label") -> str | None:
    """An operator's label, or None (clears it); HubError when it could not be a class name
    (or a folder name in an export)."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise HubError(f"{where!r} must be a string or null, not {type(value).__name__}")
    if not _LABEL_RE.fullmatch(value) or value in (".", "..") or value != value.strip():
        raise HubError(
            f"{where!r} {value[:40]!r} must be 1-128 characters without '/', '\\', control "
            "characters or surrounding spaces, and not '.' or '..'"
        )
    return value


def _text(key: str, value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME or "\x00" in value:
        raise HubError(f"filter {key!r} must be a string of 1-{MAX_NAME} characters (no NUL)")
    return value


def _version(value: Any) -> int:
    if isinstance(value, bool):
        raise HubError("filter 'version' must be a version number")
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise HubError(f"filter 'version' must be a version number, not {value!r}") from None
    if not isinstance(value, int) or not 1 <= value <= MAX_VERSION:
        raise HubError("filter 'version' must be a version number (1 or more)")
    return value


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    raise HubError("filter 'labeled' must be true or false")


@dataclass(frozen=True)
class SampleFilter:
    """Every field None means "any"; set fields must all match (AND)."""

    device: str | None = None
    model: str | None = None  # model name
    version: int | None = None  # model version the device ran
    reason: str | None = None  # one of edge.contract.REASONS
    predicted: str | None = None  # the model's predicted label
    label: str | None = None  # the operator's label
    labeled: bool | None = None  # True: has a label; False: has none

    @staticmethod
    def from_args(args: Mapping[str, Any]) -> SampleFilter:
        """From query arguments or a JSON object; empty values mean "any"; unknown keys and
        bad values raise :class:`HubError` (400)."""
        unknown = sorted(set(args) - set(FILTER_KEYS))
        if unknown:
            raise HubError(
                f"unknown sample filter {', '.join(map(repr, unknown))}: use "
                + ", ".join(FILTER_KEYS)
            )
        given = {k: v for k, v in args.items() if v is not None and v != ""}
        device = given.get("device")
        if device is not None and not (isinstance(device, str) and DEVICE_ID_RE.match(device)):
            raise HubError("filter 'device' must be a device id (letters, digits, '.', '_', '-')")
        reason = given.get("reason")
        if reason is not None and reason not in REASONS:
            raise HubError(f"filter 'reason' must be one of {', '.join(REASONS)}")
        return SampleFilter(
            device=device,
            model=_text("model", given["model"]) if "model" in given else None,
            version=_version(given["version"]) if "version" in given else None,
            reason=reason,
            predicted=_text("predicted", given["predicted"]) if "predicted" in given else None,
            label=_text("label", given["label"]) if "label" in given else None,
            labeled=_flag(given["labeled"]) if "labeled" in given else None,
        )

    def to_dict(self) -> dict[str, Any]:
        """The set fields only (what a dataset version records as its filter)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def apply(self, query: Select[Any]) -> Select[Any]:
        """``query`` restricted to the samples this filter matches."""
        s = SampleRecord
        for column, value in (
            (s.device_id, self.device),
            (s.model_name, self.model),
            (s.model_version, self.version),
            (s.reason, self.reason),
            (s.predicted, self.predicted),
            (s.label, self.label),
        ):
            if value is not None:
                query = query.where(column == value)
        if self.labeled is True:
            query = query.where(s.label.is_not(None))
        elif self.labeled is False:
            query = query.where(s.label.is_(None))
        return query
