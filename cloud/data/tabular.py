"""CSV loading: a label column plus numeric feature columns, with one-line errors."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from cloud.data.dataset import Dataset
from cloud.data.groups import group_values
from cloud.data.labels import encode_labels
from edge.errors import DataError

MAX_NAMED = 5  # how many offending names/values an error message lists before "..."
MAX_LISTED_COLUMNS = 40  # "columns present" in a column-name error lists this many


def _names(items: list[str]) -> str:
    shown = ", ".join(repr(i) for i in items[:MAX_NAMED])
    return shown + (f", ... ({len(items)} in all)" if len(items) > MAX_NAMED else "")


def _read_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})"
        ) from exc
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            text[:8192], delimiters=",;\t"
        )
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [
            row for row in csv.reader(text.splitlines(), dialect) if any(c.strip() for c in row)
        ]
    except csv.Error as exc:
        raise DataError(f"{path}: malformed CSV ({exc})") from exc
    if not rows:
        raise DataError(f"{path}: the CSV file is empty")
    return rows


def load_csv(  # noqa: C901 - one flat validation pass; each check names its own error
    path: Path,
    label_column: str = "label",
    *,
    group_column: str | None = None,
    exclude_columns: Sequence[str] = (),
) -> Dataset:
    """Load a CSV whose header names the columns; every other column is a feature.

    The label, the ``group_column`` and the ``exclude_columns`` are not features (excluded
    columns may hold text, e.g. an id or a free-text note). Empty cells, ``nan`` and ``inf``
    are kept as non-finite values for validation to count, so the user learns about all of
    them at once instead of one per run.
    """
    rows = _read_rows(path)
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    if label_column not in header:
        raise DataError(
            f"{path}: no label column {label_column!r}; columns present: {_names(header)}"
            " (choose one with --label-column)"
        )
    if len(set(header)) != len(header):
        dupes = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{path}: duplicate column names {_names(dupes)}")
    if not body:
        raise DataError(f"{path}: the CSV has a header but no data rows")
    for line_no, row in enumerate(body, start=2):
        if len(row) != len(header):
            raise DataError(
                f"{path}: line {line_no} has {len(row)} fields, the header has {len(header)}"
            )
    li = header.index(label_column)
    excluded = _check_columns(path, header, label_column, group_column, exclude_columns)
    gi = None if group_column is None else header.index(group_column)
    dropped = {li, *(header.index(c) for c in excluded), *(() if gi is None else (gi,))}
    feature_idx = [i for i in range(len(header)) if i not in dropped]
    if not feature_idx:
        others = " and the group/excluded columns" if len(dropped) > 1 else ""
        raise DataError(
            f"{path}: no feature columns besides the label column {label_column!r}{others}"
        )
    groups = None  # checked before the features: a wrong role is the likelier mistake
    if gi is not None:
        groups = group_values([row[gi] for row in body], header[gi], str(path))
    x = np.empty((len(body), len(feature_idx)), dtype=np.float64)
    bad: list[str] = []
    for j, col in enumerate(feature_idx):
        for r, row in enumerate(body):
            cell = row[col].strip()
            if cell == "":
                x[r, j] = np.nan
                continue
            try:
                x[r, j] = float(cell)
            except ValueError:
                bad.append(f"{header[col]} (line {r + 2}: {cell[:20]!r})")
                break
    if bad:
        raise DataError(
            f"{path}: non-numeric feature columns: {', '.join(bad[:MAX_NAMED])}"
            + (f", ... ({len(bad)} in all)" if len(bad) > MAX_NAMED else "")
        )
    raw_labels = [row[li].strip() for row in body]
    if any(lbl == "" for lbl in raw_labels):
        missing = sum(1 for lbl in raw_labels if lbl == "")
        raise DataError(f"{path}: {missing} rows have an empty label in column {label_column!r}")
    y, labels = encode_labels(np.asarray(raw_labels), str(path))
    return Dataset(
        x=x.astype(np.float32),
        y=y,
        labels=labels,
        kind="tabular",
        source=str(path),
        feature_names=[header[i] for i in feature_idx],
        groups=groups,
        group_column=group_column,
        excluded_columns=list(excluded),
    )


def _check_columns(
    path: Path,
    header: list[str],
    label_column: str,
    group_column: str | None,
    exclude_columns: Sequence[str],
) -> list[str]:
    """The excluded column names, validated against the header and the label/group roles."""
    present = ", ".join(repr(h) for h in header[:MAX_LISTED_COLUMNS]) + (
        f", ... ({len(header)} in all)" if len(header) > MAX_LISTED_COLUMNS else ""
    )
    excluded = list(dict.fromkeys(c.strip() for c in exclude_columns))
    if any(not c for c in excluded):
        raise DataError("--exclude-columns has an empty column name (check the commas)")
    unknown = [c for c in excluded if c not in header]
    if unknown:
        raise DataError(
            f"{path}: --exclude-columns names unknown column(s) {_names(unknown)}; "
            f"columns present: {present}"
        )
    if label_column in excluded:
        raise DataError(
            f"{path}: the label column {label_column!r} cannot be excluded (choose the label "
            "with --label-column)"
        )
    if group_column is not None:
        if group_column not in header:
            raise DataError(f"{path}: no group column {group_column!r}; columns present: {present}")
        if group_column == label_column:
            raise DataError(f"{path}: the group column cannot be the label column {label_column!r}")
        excluded = [c for c in excluded if c != group_column]  # already kept out: harmless
    return excluded
