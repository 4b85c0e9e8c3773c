"""The champion check against the database: which version is the champion, which labeled
field samples judge it, and the stored comparisons (table ``model_comparisons``).

The champion of a rollout is the version most of its target devices report running now;
without one, the version most of the fleet runs; without one, the ``stable`` alias. At
upload there is no target, so the fleet decides. Field samples are the labeled samples
captured under the model's name (any version), newest ``MAX_FIELD_SAMPLES``, minus the
samples of the field datasets the candidate's lineage says it was trained on: judging a
model on its own training data would flatter it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cloud.hub.champion.compare import Comparison, Contender, compare
from cloud.hub.champion.evaluate import FieldSample, raw_input
from cloud.hub.config import HubConfig
from cloud.hub.registry import bundle_path
from cloud.hub.samples import SampleFilter, query_samples, sample_file
from cloud.hub.storage import (
    Alias,
    DatasetSample,
    DatasetVersion,
    Device,
    ModelComparison,
    ModelVersion,
)
from edge.errors import InputError

MAX_FIELD_SAMPLES = 5000


def test_accuracy(row: ModelVersion) -> float | None:
    """The bundle's own test accuracy (the float model's, else the headline accuracy)."""
    metrics = row.metrics or {}
    for key in ("test_accuracy", "accuracy"):
        value = metrics.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    return None


def _registered(session: Session, name: str, version: int) -> ModelVersion | None:
    return session.scalar(
        select(ModelVersion).where(ModelVersion.name == name, ModelVersion.version == version)
    )


def find_champion(
    session: Session, name: str, candidate: int, targets: Iterable[str] | None = None
) -> ModelVersion | None:
    """The registered version the ``targets`` (device ids) run most, else the fleet's most
    run version, else the ``stable`` alias; never the candidate itself."""
    scopes: list[set[str] | None] = [set(targets)] if targets is not None else []
    scopes.append(None)
    for scope in scopes:
        q = (
            select(Device.model_version, func.count())
            .where(
                Device.model_name == name,
                Device.model_version.is_not(None),
                Device.model_version != candidate,
                Device.revoked.is_(None),
            )
            .group_by(Device.model_version)
            .order_by(func.count().desc(), Device.model_version.desc())
        )
        if scope is not None:
            if not scope:
                continue
            q = q.where(Device.id.in_(sorted(scope)))
        for version, _n in session.execute(q).all():
            if version is None:
                continue
            row = _registered(session, name, int(version))
            if row is not None:
                return row
    alias = session.get(Alias, (name, "stable"))
    if alias is not None and alias.version != candidate:
        return _registered(session, name, alias.version)
    return None


def trained_on(session: Session, manifest: dict[str, Any]) -> set[str]:
    """Ids of the samples in the field dataset versions ``manifest``'s lineage names."""
    ids: set[str] = set()
    for ds in (manifest.get("lineage") or {}).get("datasets") or []:
        if not isinstance(ds, dict) or ds.get("role") != "field":
            continue
        name, version = ds.get("name"), ds.get("version")
        if not isinstance(name, str) or not isinstance(version, int):
            continue
        dv = session.scalar(
            select(DatasetVersion.id).where(
                DatasetVersion.name == name, DatasetVersion.version == version
            )
        )
        if dv is not None:
            ids.update(session.scalars(select(DatasetSample.sample_id).where(
                DatasetSample.dataset_id == dv
            )))  # fmt: skip
    return ids


def field_samples(
    session: Session, config: HubConfig, model: str, exclude: set[str]
) -> tuple[list[FieldSample], int]:
    """The labeled field samples of ``model`` a check uses, and how many were excluded."""
    rows = query_samples(session, SampleFilter(model=model, labeled=True))
    out: list[FieldSample] = []
    excluded = 0
    for row in reversed(rows):  # newest first, up to the cap
        if len(out) >= MAX_FIELD_SAMPLES:
            break
        if row.id in exclude:
            excluded += 1
            continue
        try:
            data = None if row.kind == "tabular" else sample_file(config.data_dir, row).read_bytes()
            raw = raw_input(row.kind, data, row.features)
        except (OSError, InputError):
            continue  # a file retention removed between the query and now
        out.append(FieldSample(row.id, row.device, str(row.label), raw))
    out.reverse()
    return out, excluded


def _contender(config: HubConfig, row: ModelVersion) -> Contender:
    return Contender(row.name, row.version, bundle_path(config, row), test_accuracy(row))


def check(
    session: Session, config: HubConfig, candidate: ModelVersion, targets: Iterable[str] | None
) -> Comparison:
    """Compare ``candidate`` with its champion (see the module docstring); not stored."""
    champion = find_champion(session, candidate.name, candidate.version, targets)
    samples: list[FieldSample] = []
    excluded = 0
    if champion is not None:
        samples, excluded = field_samples(
            session, config, candidate.name, trained_on(session, candidate.manifest or {})
        )
    return compare(
        _contender(config, candidate),
        _contender(config, champion) if champion is not None else None,
        samples,
        trusted_key=config.trusted_key,
        excluded=excluded,
    )


def record(
    session: Session,
    comparison: Comparison,
    context: str,
    *,
    rollout_id: str | None = None,
    forced: bool = False,
    actor: str | None = None,
) -> ModelComparison:
    """Store a comparison (the caller commits)."""
    champion = comparison.champion
    row = ModelComparison(
        model_name=str(comparison.candidate["name"]),
        candidate_version=int(comparison.candidate["version"]),
        champion_version=None if champion is None else int(champion["version"]),
        context=context,
        rollout_id=rollout_id,
        decision=comparison.decision,
        forced=forced,
        result=comparison.to_dict(),
        created=time.time(),
        actor=actor,
    )
    session.add(row)
    session.flush()
    return row


def latest(
    session: Session, name: str, version: int, *, rollout_id: str | None = None
) -> ModelComparison | None:
    """The newest stored comparison of a version (of one rollout, when given)."""
    q = select(ModelComparison).where(
        ModelComparison.model_name == name, ModelComparison.candidate_version == version
    )
    if rollout_id is not None:
        q = q.where(ModelComparison.rollout_id == rollout_id)
    return session.scalar(q.order_by(ModelComparison.id.desc()).limit(1))


def comparison_json(row: ModelComparison) -> dict[str, Any]:
    """The API shape: the comparison plus where and when it was made."""
    return {
        **(row.result or {}),
        "id": row.id,
        "context": row.context,
        "rollout": row.rollout_id,
        "forced": row.forced,
        "actor": row.actor,
        "created": row.created,
    }


def decisions(session: Session) -> dict[tuple[str, int], dict[str, Any]]:
    """The newest check's ``decision`` and champion version of every checked version."""
    q = select(
        ModelComparison.model_name, ModelComparison.candidate_version,
        ModelComparison.decision, ModelComparison.champion_version, ModelComparison.forced,
    ).order_by(ModelComparison.id)  # fmt: skip
    return {
        (name, version): {"decision": decision, "champion_version": champ, "forced": forced}
        for name, version, decision, champ, forced in session.execute(q).all()
    }
