"""Model store: slots, atomic pointer, last known good, pruning and crash debris."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.bundle.store import ModelStore, Slot, StorageError, write_atomic


def sid(slot: Slot | None) -> str | None:
    return slot.id if slot is not None else None


def add(store: ModelStore, version: int, name: str = "digits") -> Slot:
    staging = store.new_staging()
    (staging / "bundle").mkdir()
    (staging / "bundle" / "manifest.json").write_text("{}")
    return store.add_slot(staging, name, version, {"variant": {"runtime": "onnxruntime"}})


def test_empty_store(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    assert store.active() is None and store.last_known_good() is None
    assert store.recover() is None
    assert store.slots() == []


def test_commit_activate_revert(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    v1 = add(store, 1)
    store.commit(v1)
    assert sid(store.active()) == "digits-1" and sid(store.last_known_good()) == "digits-1"
    v2 = add(store, 2)
    store.activate(v2)
    assert sid(store.active()) == "digits-2" and sid(store.last_known_good()) == "digits-1"
    # a fresh instance reads the same pointer from disk
    assert sid(ModelStore(tmp_path / "models").active()) == "digits-2"
    assert sid(store.revert()) == "digits-1"
    assert sid(ModelStore(tmp_path / "models").active()) == "digits-1"


def test_prune_keeps_n_and_protects_active(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models", keep=2)
    for v in range(1, 6):
        store.commit(add(store, v))
    assert [s.version for s in store.slots()] == [4, 5]
    assert store.state.history == ["digits-4", "digits-5"]
    uncommitted = add(store, 6)
    store.activate(uncommitted)
    store.prune()
    assert {s.version for s in store.slots()} == {4, 5, 6}  # active is never pruned


def test_recover_cleans_debris_and_returns_journal(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.commit(add(store, 1))
    store.begin_install({"command": "c1", "version": 2, "step": "downloading"})
    store.journal_step("self_test", slot="digits-2")
    # crash debris: a staging dir, a slot dir without slot.json, a temp file
    (store.root / ".staging-dead").mkdir()
    (store.root / "digits-2").mkdir()
    (store.root / ".state.json.x.tmp").write_text("{")
    again = ModelStore(tmp_path / "models")
    journal = again.recover()
    assert journal is not None and journal["step"] == "self_test" and journal["command"] == "c1"
    assert sorted(p.name for p in again.root.iterdir()) == ["digits-1", "state.json"]
    assert again.recover() is not None  # journal stays until end_install
    again.end_install()
    assert ModelStore(tmp_path / "models").recover() is None


def test_corrupt_state_rebuilt_from_slots(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.commit(add(store, 1))
    store.commit(add(store, 2))
    (store.root / "state.json").write_text("not json")
    again = ModelStore(tmp_path / "models")
    assert sid(again.active()) == "digits-2"
    assert any(p.name.startswith("state.broken-") for p in again.root.iterdir())


def test_missing_active_slot_falls_back(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    store.commit(add(store, 1))
    v2 = add(store, 2)
    store.commit(v2)
    state = json.loads((store.root / "state.json").read_text())
    state["last_known_good"] = "digits-1"
    (store.root / "state.json").write_text(json.dumps(state))
    import shutil

    shutil.rmtree(store.root / "digits-2")
    again = ModelStore(tmp_path / "models")
    again.recover()
    assert sid(again.active()) == "digits-1"


def test_in_use_slot_cannot_be_replaced_or_forgotten(tmp_path: Path) -> None:
    store = ModelStore(tmp_path / "models")
    v1 = add(store, 1)
    store.commit(v1)
    with pytest.raises(StorageError):
        add(store, 1)
    with pytest.raises(StorageError):
        store.forget(v1)
    staging = store.new_staging()
    with pytest.raises(StorageError, match="no extracted bundle"):
        store.add_slot(staging, "digits", 3, {})


def test_write_atomic_replaces(tmp_path: Path) -> None:
    target = tmp_path / "f.json"
    write_atomic(target, b"1")
    write_atomic(target, b"2")
    assert target.read_bytes() == b"2"
    assert [p.name for p in tmp_path.iterdir()] == ["f.json"]


def test_committed_versions_outlive_pruning_and_model_changes(tmp_path: Path) -> None:
    """The downgrade floor and the rollback targets: every version committed per name,
    with its bundle's sha256, even after the slot is pruned or another model is active."""
    store = ModelStore(tmp_path / "models", keep=1)
    for version in (1, 2):
        slot = add(store, version)
        store.commit(store.update_meta(slot, bundle_sha256=f"{version}" * 64))
    store.commit(add(store, 1, name="other"))
    assert store.find("digits", 1) is None  # pruned
    assert store.committed_versions("digits") == {1: "1" * 64, 2: "2" * 64}
    assert store.highest_committed("digits") == 2 and store.highest_committed("none") is None
    again = ModelStore(tmp_path / "models")  # persisted in state.json
    assert again.committed_versions("other") == {1: None}
    assert again.highest_committed("digits") == 2


def test_committed_versions_of_an_older_state_file(tmp_path: Path) -> None:
    """A state.json from an agent before ``committed`` existed: taken from its history."""
    store = ModelStore(tmp_path / "models")
    store.commit(add(store, 3))
    state = json.loads((tmp_path / "models" / "state.json").read_text())
    del state["committed"]
    (tmp_path / "models" / "state.json").write_text(json.dumps(state))
    assert ModelStore(tmp_path / "models").highest_committed("digits") == 3


@pytest.mark.parametrize("committed", [[], {"digits": {"x": None}}, {"digits": {"1": 5}}])
def test_malformed_committed_is_refused(tmp_path: Path, committed: object) -> None:
    from edge.bundle.store import StoreState

    with pytest.raises(StorageError, match="committed"):
        StoreState.from_dict({"history": [], "committed": committed})
