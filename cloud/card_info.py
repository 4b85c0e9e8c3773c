"""The model card fields only a person can fill: owners, licence, intended and out-of-scope uses.

Google's Model Cards and Hugging Face model cards both open with who owns a model, under
which licence it may be used, and what it is (not) for; no metric can say that. The user
writes these fields into a small TOML (or JSON) file and passes it with ``--card-info FILE``
to ``edgekit train`` (recorded in run.json) or ``edgekit export`` (which wins). Validation is
strict, so a typo in a key is named instead of silently dropping a licence from the card.
"""

from __future__ import annotations

import difflib
import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

MAX_TEXT = 4000  # characters per text field: a card section, not a document
MAX_ITEMS = 50  # entries per list field
MAX_FILE_BYTES = 256 << 10

TEXT_FIELDS = ("description", "license", "contact", "citation")
LIST_FIELDS = ("owners", "intended_uses", "out_of_scope_uses", "limitations")
FIELDS = ("owners", "license", "description", "intended_uses", "out_of_scope_uses",
          "limitations", "contact", "citation")  # fmt: skip


@dataclass(frozen=True)
class CardInfo:
    """The user's card fields; a field left out of the file is None (text) or empty (lists)."""

    owners: tuple[str, ...] = ()
    license: str | None = None
    description: str | None = None
    intended_uses: tuple[str, ...] = ()
    out_of_scope_uses: tuple[str, ...] = ()
    limitations: tuple[str, ...] = ()
    contact: str | None = None
    citation: str | None = None
    source: str | None = field(default=None, compare=False)  # file name, for lineage

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, with only the fields the user gave (what run.json/report.json hold)."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if k == "source" or v in (None, (), []):
                continue
            out[k] = list(v) if isinstance(v, (tuple, list)) else v
        return out

    def is_empty(self) -> bool:
        return not self.to_dict()


def parse_card_info(obj: Any, where: str) -> CardInfo:
    """Validate a decoded document; every problem names the key and what was expected."""
    if not isinstance(obj, dict):
        raise ConfigError(f"{where}: card info must be a table of fields, got {_kind(obj)}")
    unknown = [k for k in obj if k not in FIELDS]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(str(k), FIELDS, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ConfigError(
            f"{where}: unknown card info key(s) {', '.join(hints)}; known keys: {', '.join(FIELDS)}"
        )
    values: dict[str, Any] = {}
    for key, value in obj.items():
        if key in TEXT_FIELDS:
            values[key] = _text(value, f"{where}: {key}")
        else:
            values[key] = _text_list(value, f"{where}: {key}")
    return CardInfo(**values, source=Path(where).name)


def load_card_info(path: Path | str) -> CardInfo:
    """Read ``path``: ``.toml`` (tomllib) or ``.json``; anything else is refused."""
    p = Path(path)
    where = str(p)
    suffix = p.suffix.lower()
    if suffix not in (".toml", ".json"):
        raise ConfigError(f"--card-info {where}: use a .toml or .json file, got {suffix or 'none'}")
    try:
        if p.stat().st_size > MAX_FILE_BYTES:
            raise ConfigError(f"--card-info {where}: larger than {MAX_FILE_BYTES >> 10} KiB")
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"--card-info {where}: cannot read ({exc.strerror or exc})") from exc
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"--card-info {where}: not UTF-8 text") from exc
    try:
        obj = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--card-info {where}: invalid TOML ({exc})") from exc
    except json.JSONDecodeError as exc:
        raise ConfigError(f"--card-info {where}: invalid JSON ({exc})") from exc
    return parse_card_info(obj, where)


def card_info_from_run(run: dict[str, Any]) -> CardInfo | None:
    """The fields ``edgekit train --card-info`` recorded in run.json, re-validated (or None)."""
    obj = run.get("card_info")
    if obj is None:
        return None
    info = parse_card_info(obj, "run.json card_info")
    return None if info.is_empty() else info


def _kind(v: Any) -> str:
    return {dict: "a table", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(v), type(v).__name__
    )


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{where} must be a string, got {_kind(value)}")
    text = value.strip()
    if not text:
        raise ConfigError(f"{where} is empty; leave the key out instead")
    if len(text) > MAX_TEXT:
        raise ConfigError(f"{where} is {len(text)} characters long; at most {MAX_TEXT}")
    return text


def _text_list(value: Any, where: str) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]  # one owner or one use needs no list brackets
    if not isinstance(value, list):
        raise ConfigError(f"{where} must be a list of strings, got {_kind(value)}")
    if len(value) > MAX_ITEMS:
        raise ConfigError(f"{where} has {len(value)} entries; at most {MAX_ITEMS}")
    return tuple(_text(v, f"{where}[{i}]") for i, v in enumerate(value))
