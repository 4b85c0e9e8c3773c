"""The epoch budget and the under-fit warning: pure functions, no TensorFlow."""

from __future__ import annotations

import pytest

from cloud.train.fit import (
    DEFAULT_EPOCHS,
    DEFAULT_PATIENCE,
    MAX_TABULAR_PATIENCE,
    MIN_TABULAR_PATIENCE,
    TABULAR_MAX_EPOCHS,
    TABULAR_TARGET_STEPS,
    epoch_budget,
    tabular_patience,
    underfit_warning,
)


def test_images_keep_the_quick_default_whatever_their_size() -> None:
    for n_train in (50, 1257, 100_000):
        b = epoch_budget("image", n_train, 32)
        assert (b.epochs, b.patience) == (DEFAULT_EPOCHS, DEFAULT_PATIENCE) == (20, 5)
        assert b.reason.startswith("auto")


@pytest.mark.parametrize(
    ("n_train", "epochs"),
    [
        (102, 500),  # iris: 4 steps/epoch -> 2500 wanted, capped
        (124, 500),  # wine: 4 steps/epoch
        (398, 500),  # breast cancer: 13 steps/epoch -> 770 wanted, capped
        (3500, 91),  # the 5000-row synthetic set: 110 steps/epoch
        (20_000, 20),  # 625 steps/epoch: 16 would do, the old default is the floor
        (100_000, 20),  # a big table is never given fewer than the old default
    ],
)
def test_tables_get_a_step_budget_by_row_count(n_train: int, epochs: int) -> None:
    b = epoch_budget("tabular", n_train, 32)
    assert b.epochs == epochs
    assert "steps/epoch" in b.reason and f"{n_train} rows" in b.reason


def test_table_budget_shrinks_with_rows_and_bigger_batches() -> None:
    sizes = [50, 100, 200, 400, 800, 1600, 3200, 6400, 12800]
    budgets = [epoch_budget("tabular", n, 32).epochs for n in sizes]
    assert budgets == sorted(budgets, reverse=True)
    assert all(DEFAULT_EPOCHS <= e <= TABULAR_MAX_EPOCHS for e in budgets)
    # the step count, not the epoch count, is what is held near the target
    b = epoch_budget("tabular", 1600, 32)
    assert TABULAR_TARGET_STEPS <= b.epochs * 50 < TABULAR_TARGET_STEPS + 50
    assert epoch_budget("tabular", 1600, 128).epochs > b.epochs


def test_table_patience_scales_with_epochs_within_bounds() -> None:
    assert tabular_patience(20) == MIN_TABULAR_PATIENCE == 10
    assert tabular_patience(231) == 23
    assert tabular_patience(500) == MAX_TABULAR_PATIENCE == 30
    assert epoch_budget("tabular", 105, 32).patience == 30
    assert epoch_budget("tabular", 3500, 32).patience == 10


def test_explicit_values_always_win() -> None:
    b = epoch_budget("tabular", 105, 32, epochs=7)
    assert b.epochs == 7 and b.reason == "explicit --epochs"
    assert b.patience == MIN_TABULAR_PATIENCE  # patience still auto: scaled from 7
    assert epoch_budget("tabular", 105, 32, patience=3).patience == 3
    assert epoch_budget("tabular", 105, 32, patience=0).patience == 0
    assert epoch_budget("image", 1000, 32, epochs=2, patience=1).epochs == 2
    assert epoch_budget("image", 1000, 32, epochs=2).patience == DEFAULT_PATIENCE


@pytest.mark.parametrize(("n_train", "batch"), [(0, 32), (10, 0), (-1, 32)])
def test_nonsense_sizes_are_refused(n_train: int, batch: int) -> None:
    with pytest.raises(ValueError, match="n_train and batch_size"):
        epoch_budget("tabular", n_train, batch)


def test_warning_only_when_the_last_allowed_epoch_was_best() -> None:
    msg = underfit_warning(best_epoch=200, epochs_run=200, epochs=200)
    assert msg is not None
    assert msg.startswith("best epoch was the last (200/200): the model may be under-fit")
    assert "--epochs 400" in msg
    assert underfit_warning(best_epoch=199, epochs_run=200, epochs=200) is None
    assert underfit_warning(best_epoch=30, epochs_run=60, epochs=500) is None  # stopped early
    assert underfit_warning(best_epoch=1, epochs_run=1, epochs=1) is not None
