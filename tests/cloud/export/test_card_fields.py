"""Card sections for user card fields and metrics per group render what they are given."""

from __future__ import annotations

import numpy as np

from cloud.card_info import CardInfo
from cloud.export.card.fields import (
    card_info_header_rows,
    card_info_summary,
    citation_section,
    groups_section,
    intended_use_section,
)
from cloud.export.fairness import group_report

GENERIC = "## Intended use and limitations\n\nClassifies things.\n\n- Not for decisions."


def test_nothing_given_changes_nothing() -> None:
    assert card_info_header_rows(None) == [] and card_info_summary(None) == ""
    assert intended_use_section(None, GENERIC) == GENERIC
    assert intended_use_section(CardInfo(owners=("a",)), GENERIC) == GENERIC
    assert citation_section(None) == "" and citation_section(CardInfo()) == ""
    assert groups_section(None) == ""


def test_header_rows_and_summary() -> None:
    info = CardInfo(owners=("Ana", "Bo"), license="MIT", contact="a@x", description="Sorts.")
    assert card_info_header_rows(info) == [
        ("owners", "Ana; Bo"),
        ("license", "MIT"),
        ("contact", "a@x"),
    ]
    assert card_info_summary(info) == "Sorts."


def test_user_uses_replace_the_generic_text_and_keep_its_technical_notes() -> None:
    info = CardInfo(intended_uses=("line 3 sorting",), limitations=("one camera\nonly",))
    text = intended_use_section(info, GENERIC)
    assert text.startswith("## Intended use and limitations")
    assert text.count("## Intended use and limitations") == 1
    assert "- line 3 sorting" in text
    assert "**Out-of-scope uses** (from the model's owners):\n\n- not stated by the owners" in text
    assert "- one camera\n  only" in text  # continuation lines stay in the bullet
    notes = text.index("### Technical notes (edgekit)")
    assert text.index("Classifies things.") > notes


def test_citation_fence_outgrows_backticks_in_the_text() -> None:
    text = citation_section(CardInfo(citation="see ```code``` here"))
    assert text.startswith("## Citation\n\n````text\n") and text.endswith("\n````")


def _report(n_groups: int) -> dict[str, object]:
    rng = np.random.default_rng(0)
    n = 40 * n_groups
    y = rng.integers(0, 2, n)
    groups = np.array([f"g{i % n_groups}" for i in range(n)])
    scores = np.eye(2)[np.where(rng.random(n) < 0.9, y, 1 - y)]
    variant = np.eye(2)[np.where(rng.random(n) < 0.8, y, 1 - y)]
    return group_report(
        column="site",
        y_true=y,
        groups=groups,
        float_scores=scores,
        variants=[{"target": "litert-int8", "included": True, "scores": variant}],
        n_classes=2,
        split_counts={"train": {"g0": 5}, "val": {"g0": 1}, "test": {"g0": 40}},
    )


def test_groups_section_shows_each_group_the_gap_and_every_variant() -> None:
    text = groups_section(_report(3))
    assert text.startswith("## Metrics per group")
    assert "Group column `site`" in text
    assert "| group | train | val | test rows | accuracy | 95% interval | macro-F1 |" in text
    assert "| `g0` | 5 | 1 | 40 |" in text and "| `g2` | 0 | 0 | 40 |" in text
    assert "Largest accuracy gap: **" in text
    assert "| model | in bundle | `g0` | `g1` | `g2` |" in text
    assert "| `litert-int8` | yes |" in text and "| `float` | n/a |" in text


def test_many_groups_show_only_the_worst_group_per_variant() -> None:
    text = groups_section(_report(9))
    assert "| model | in bundle | worst group | largest gap (points) | significant |" in text
