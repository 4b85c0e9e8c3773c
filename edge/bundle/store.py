"""Installed models on disk: one slot per version, an atomic ``active`` pointer, a journal.

Layout under ``DATA_DIR/models``::

    state.json            {"active", "last_known_good", "history", "committed", "install"}
    <name>-<version>/      slot.json (our notes on it) and bundle/ (the verified, extracted
                           bundle, untouched so it can be re-verified at every start)
    .staging-<token>/      a slot being assembled; never referenced by state.json

``state.json`` is the only pointer and is replaced atomically (temp file, fsync, rename,
fsync of the directory), so after a crash it names either the old or the new model, never
half of each. ``install`` is the journal of an install in progress: if the agent starts and
finds one, the install was interrupted and :meth:`ModelStore.recover` reports it.
A slot becomes visible only by renaming a complete staging directory, so a slot directory
without slot.json is debris from a crash and is removed on start.

``committed`` remembers, per model name, every version this device ever committed and the
sha256 of its bundle, even after the slot is pruned: the downgrade rule (a deploy must be
newer than every committed version of its name, whatever model is active now) and the
rollback rule (only to a version committed before, and only to that very bundle) read it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.durable import fsync_dir, write_atomic
from edge.errors import StorageError

log = logging.getLogger(__name__)

STATE_FILE = "state.json"
SLOT_FILE = "slot.json"
BUNDLE_DIR = "bundle"
STAGING_PREFIX = ".staging-"
MAX_COMMITTED_PER_NAME = 256  # the newest versions per name are remembered


def slot_id(name: str, version: int) -> str:
    return f"{name}-{version}"


@dataclass(frozen=True)
class Slot:
    """One installed model version and what we learnt about it when installing it."""

    name: str
    version: int
    path: Path
    meta: dict[str, Any]

    @property
    def id(self) -> str:
        return slot_id(self.name, self.version)

    @property
    def bundle_dir(self) -> Path:
        return self.path / BUNDLE_DIR


@dataclass
class StoreState:
    """The content of state.json."""

    active: str | None = None
    last_known_good: str | None = None
    history: list[str] = field(default_factory=list)  # committed slots, oldest first
    install: dict[str, Any] | None = None  # journal of the install in progress
    # model name -> {str(version): bundle sha256 or None}: every version ever committed
    committed: dict[str, dict[str, str | None]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "active": self.active,
            "last_known_good": self.last_known_good,
            "history": list(self.history),
            "install": self.install,
            "committed": {name: dict(v) for name, v in self.committed.items()},
        }

    @staticmethod
    def from_dict(obj: Any) -> StoreState:
        if not isinstance(obj, dict):
            raise StorageError("state.json must hold a JSON object")
        history = obj.get("history") or []
        install = obj.get("install")
        if not isinstance(history, list) or not all(isinstance(h, str) for h in history):
            raise StorageError("state.json: 'history' must be a list of slot ids")
        if install is not None and not isinstance(install, dict):
            raise StorageError("state.json: 'install' must be an object or null")
        active, lkg = obj.get("active"), obj.get("last_known_good")
        for key, value in (("active", active), ("last_known_good", lkg)):
            if value is not None and not isinstance(value, str):
                raise StorageError(f"state.json: {key!r} must be a slot id or null")
        committed = obj.get("committed")
        committed = {} if committed is None else committed
        if not isinstance(committed, dict) or not all(
            isinstance(v, dict)
            and all(k.isdigit() and (d is None or isinstance(d, str)) for k, d in v.items())
            for v in committed.values()
        ):
            raise StorageError("state.json: 'committed' must map names to {version: sha256}")
        return StoreState(
            active=active, last_known_good=lkg, history=history, install=install,
            committed={str(n): dict(v) for n, v in committed.items()},
        )  # fmt: skip


class ModelStore:
    """Slots, the active pointer, last known good and the install journal.

    Thread-safe: the installer thread and the serving side share one instance.
    """

    def __init__(self, root: Path, keep: int = 3) -> None:
        self.root = root
        self.keep = max(1, keep)
        self._lock = threading.RLock()
        root.mkdir(parents=True, exist_ok=True)
        self._state = self._read_state()

    # ------------------------------------------------------------------ state file

    def _read_state(self) -> StoreState:
        path = self.root / STATE_FILE
        if not path.exists():
            return StoreState()
        try:
            obj = json.loads(path.read_bytes())
            state = StoreState.from_dict(obj)
            if isinstance(obj, dict) and "committed" not in obj:  # written by an older agent
                state.committed = self._committed_of(state.history)
            return state
        except (OSError, ValueError, StorageError) as exc:
            # Never brick: keep the broken file for a human and start from the slots.
            broken = path.with_name(f"state.broken-{int(time.time())}.json")
            with contextlib.suppress(OSError):
                os.replace(path, broken)
            log.error("model store state unreadable (%s); moved to %s", exc, broken.name)
            return self._state_from_slots()

    def _state_from_slots(self) -> StoreState:
        slots = sorted(self.slots(), key=lambda s: (s.meta.get("committed_at") or 0, s.version))
        committed = [s.id for s in slots if s.meta.get("committed_at")]
        lkg = committed[-1] if committed else None
        return StoreState(
            active=lkg,
            last_known_good=lkg,
            history=committed,
            committed=self._committed_of(committed),
        )

    def _committed_of(self, sids: list[str]) -> dict[str, dict[str, str | None]]:
        out: dict[str, dict[str, str | None]] = {}
        for sid in sids:
            slot = self.get(sid)
            if slot is not None:
                out.setdefault(slot.name, {})[str(slot.version)] = slot.meta.get("bundle_sha256")
        return out

    def _write_state(self) -> None:
        data = json.dumps(self._state.to_dict(), indent=2, sort_keys=True).encode()
        write_atomic(self.root / STATE_FILE, data)

    @property
    def state(self) -> StoreState:
        with self._lock:
            return StoreState.from_dict(self._state.to_dict())

    # ------------------------------------------------------------------ slots

    def slot_path(self, name: str, version: int) -> Path:
        return self.root / slot_id(name, version)

    def get(self, sid: str | None) -> Slot | None:
        """The slot ``sid`` if it is complete on disk, else None."""
        if not sid:
            return None
        path = self.root / sid
        try:
            meta = json.loads((path / SLOT_FILE).read_bytes())
        except (OSError, ValueError):
            return None
        if not isinstance(meta, dict):
            return None
        name, version = meta.get("name"), meta.get("version")
        if not isinstance(name, str) or not isinstance(version, int):
            return None
        return Slot(name=name, version=version, path=path, meta=meta)

    def find(self, name: str, version: int) -> Slot | None:
        return self.get(slot_id(name, version))

    def slots(self) -> list[Slot]:
        """Every complete slot, by name then version."""
        out = []
        for child in sorted(self.root.iterdir()):
            if child.is_dir() and not child.name.startswith("."):
                slot = self.get(child.name)
                if slot is not None:
                    out.append(slot)
        return sorted(out, key=lambda s: (s.name, s.version))

    def active(self) -> Slot | None:
        with self._lock:
            return self.get(self._state.active)

    def committed_versions(self, name: str) -> dict[int, str | None]:
        """Every version of ``name`` this device committed, with its bundle's sha256."""
        with self._lock:
            return {int(v): d for v, d in self._state.committed.get(name, {}).items()}

    def highest_committed(self, name: str) -> int | None:
        """The newest version of ``name`` ever committed here (the downgrade floor)."""
        versions = self.committed_versions(name)
        return max(versions) if versions else None

    def last_known_good(self) -> Slot | None:
        with self._lock:
            return self.get(self._state.last_known_good)

    def new_staging(self) -> Path:
        """An empty directory to assemble a slot in (extract into ``<it>/bundle``), on the
        same filesystem as the slots so the final rename is atomic."""
        path = self.root / f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}"
        path.mkdir()
        return path

    def add_slot(self, staging: Path, name: str, version: int, meta: dict[str, Any]) -> Slot:
        """Turn a staging directory holding ``bundle/`` into the slot ``name-version``.

        An existing slot of the same id is replaced unless it is active or last known good.
        """
        if not (staging / BUNDLE_DIR).is_dir():
            raise StorageError(f"{staging} holds no extracted bundle")
        meta = {**meta, "name": name, "version": version, "added_at": time.time()}
        write_atomic(staging / SLOT_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
        target = self.slot_path(name, version)
        with self._lock:
            if target.exists():
                if target.name in (self._state.active, self._state.last_known_good):
                    raise StorageError(f"{target.name} is in use and cannot be replaced")
                self._remove_dir(target)
            os.replace(staging, target)
            fsync_dir(self.root)
        slot = self.get(target.name)
        if slot is None:
            raise StorageError(f"{target.name} was moved into place but cannot be read back")
        return slot

    def update_meta(self, slot: Slot, **changes: Any) -> Slot:
        meta = {**slot.meta, **changes}
        write_atomic(slot.path / SLOT_FILE, json.dumps(meta, indent=2, sort_keys=True).encode())
        return Slot(slot.name, slot.version, slot.path, meta)

    # ------------------------------------------------------------------ pointer moves

    def activate(self, slot: Slot) -> None:
        """Point ``active`` at ``slot``; last known good stays until :meth:`commit`."""
        with self._lock:
            self._state.active = slot.id
            self._write_state()

    def commit(self, slot: Slot) -> None:
        """Make ``slot`` the last known good, end the journal and prune old versions."""
        self.update_meta(slot, committed_at=time.time())
        with self._lock:
            self._state.active = slot.id
            self._state.last_known_good = slot.id
            self._state.history = [h for h in self._state.history if h != slot.id] + [slot.id]
            versions = self._state.committed.setdefault(slot.name, {})
            versions[str(slot.version)] = slot.meta.get("bundle_sha256") or versions.get(
                str(slot.version)
            )
            for old in sorted(versions, key=int)[:-MAX_COMMITTED_PER_NAME]:
                del versions[old]
            self._state.install = None
            self._write_state()
        self.prune()

    def revert(self) -> Slot | None:
        """Point ``active`` back at the last known good (None if there is none)."""
        with self._lock:
            self._state.active = self._state.last_known_good
            self._write_state()
            return self.get(self._state.active)

    def fallback_target(self, failing: str) -> Slot | None:
        """Where to go when ``failing`` misbehaves: LKG, or the newest older commit."""
        with self._lock:
            candidates = [self._state.last_known_good, *reversed(self._state.history)]
            for sid in candidates:
                if sid and sid != failing and self.get(sid) is not None:
                    return self.get(sid)
        return None

    def demote(self, failing: str, to: Slot) -> None:
        """Serve ``to`` instead of ``failing`` from now on, and never fall back to it."""
        with self._lock:
            self._state.active = to.id
            self._state.last_known_good = to.id
            self._state.history = [h for h in self._state.history if h != failing]
            self._write_state()

    def provision(self, slot: Slot) -> None:
        """Activate and commit in one step (offline provisioning, first model)."""
        self.commit(slot)

    # ------------------------------------------------------------------ journal

    def begin_install(self, journal: dict[str, Any]) -> None:
        with self._lock:
            self._state.install = {**journal, "started_at": time.time()}
            self._write_state()

    def journal_step(self, step: str, **extra: Any) -> None:
        with self._lock:
            if self._state.install is None:
                return
            self._state.install = {**self._state.install, **extra, "step": step}
            self._write_state()

    def end_install(self) -> None:
        with self._lock:
            if self._state.install is not None:
                self._state.install = None
                self._write_state()

    # ------------------------------------------------------------------ housekeeping

    def recover(self) -> dict[str, Any] | None:
        """Clean crash debris and return the interrupted install's journal, if any.

        The journal is left in place: the caller decides (roll back, report) and then
        calls :meth:`end_install`, so a crash during recovery is recovered again.
        """
        with self._lock:
            for child in self.root.iterdir():
                if child.name.startswith(STAGING_PREFIX) or (
                    child.is_dir() and not (child / SLOT_FILE).exists()
                ):
                    log.info("removing incomplete model directory %s", child.name)
                    self._remove_dir(child)
                elif child.name.startswith(".") and child.suffix == ".tmp":
                    child.unlink(missing_ok=True)
            for key in ("active", "last_known_good"):
                sid = getattr(self._state, key)
                if sid is not None and self.get(sid) is None:
                    log.error("%s slot %s is missing; forgetting it", key, sid)
                    setattr(self._state, key, None)
            self._state.history = [h for h in self._state.history if self.get(h) is not None]
            if self._state.last_known_good is None and self._state.history:
                self._state.last_known_good = self._state.history[-1]
            if self._state.active is None:
                self._state.active = self._state.last_known_good
            self._write_state()
            return dict(self._state.install) if self._state.install else None

    def forget(self, slot: Slot) -> None:
        """Delete a slot that failed verification at start (never the one in use)."""
        with self._lock:
            if slot.id in (self._state.active, self._state.last_known_good):
                raise StorageError(f"{slot.id} is in use and cannot be removed")
            self._state.history = [h for h in self._state.history if h != slot.id]
            self._write_state()
            self._remove_dir(slot.path)

    def prune(self) -> list[str]:
        """Keep the newest ``keep`` committed versions (plus active and LKG); drop the rest."""
        removed: list[str] = []
        with self._lock:
            protected = {self._state.active, self._state.last_known_good}
            if self._state.install:
                protected.add(self._state.install.get("slot"))
            keep_ids = set(self._state.history[-self.keep :]) | protected
            for slot in self.slots():
                if slot.id not in keep_ids:
                    self._remove_dir(slot.path)
                    removed.append(slot.id)
            self._state.history = [h for h in self._state.history if h not in removed]
            if removed:
                self._write_state()
        for sid in removed:
            log.info("pruned old model %s", sid)
        return removed

    def _remove_dir(self, path: Path) -> None:
        # Rename first so a crash mid-delete never leaves a half slot with slot.json in it.
        trash = self.root / f"{STAGING_PREFIX}trash-{uuid.uuid4().hex[:8]}"
        try:
            os.replace(path, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)
