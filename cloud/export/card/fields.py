"""Model card sections for the user's card fields (``--card-info``) and metrics per group.

Pure functions from data to markdown, so the card package places them in the card and
they can be tested without a model. Each returns "" (or the generic text it was given) when
there is nothing to show, so a card without groups or card info looks as before.
"""

from __future__ import annotations

import re
from typing import Any

from cloud.card_info import CardInfo
from cloud.export.card.text import table as _table

MATRIX_MAX_GROUPS = 8  # per-variant accuracy per group as columns only up to this many groups


def _bullets(items: tuple[str, ...]) -> str:
    return "\n".join("- " + item.replace("\n", "\n  ") for item in items)


def _pct(v: float) -> str:
    return f"{100.0 * v:.1f}%"


def _interval(iv: list[float] | None) -> str:
    return "n/a" if iv is None else f"[{100 * iv[0]:.1f}, {100 * iv[1]:.1f}]"


# ----------------------------------------------------------------------------- card info


def card_info_header_rows(info: CardInfo | None) -> list[tuple[str, str]]:
    """Header-table rows for the fields the user gave: owners, licence, contact."""
    if info is None:
        return []
    rows = []
    if info.owners:
        rows.append(("owners", "; ".join(info.owners)))
    if info.license:
        rows.append(("license", info.license))
    if info.contact:
        rows.append(("contact", info.contact))
    return rows


def card_info_summary(info: CardInfo | None) -> str:
    """The user's description paragraph, for right below the header ("" when none)."""
    return "" if info is None or not info.description else info.description


def intended_use_section(info: CardInfo | None, generic: str) -> str:
    """The user's intended uses, out-of-scope uses and limitations in place of the generic text.

    ``generic`` is the card's generic section; it is returned unchanged when the user gave
    none of the three fields, and otherwise follows as "Technical notes (edgekit)", since
    what it says (closed set of classes, drift, calibration) is true of every edgekit model.
    """
    if info is None or not (info.intended_uses or info.out_of_scope_uses or info.limitations):
        return generic
    parts = ["## Intended use and limitations"]
    for title, items in (
        ("Intended uses", info.intended_uses),
        ("Out-of-scope uses", info.out_of_scope_uses),
        ("Limitations", info.limitations),
    ):
        parts.append(f"**{title}** (from the model's owners):")
        parts.append(_bullets(items) if items else "- not stated by the owners")
    body = re.sub(r"\A\s*##[^\n]*\n", "", generic.strip() + "\n").strip()
    if body:
        parts.append("### Technical notes (edgekit)\n\n" + body)
    return "\n\n".join(parts)


def citation_section(info: CardInfo | None) -> str:
    """A "Citation" section with the text verbatim in a code block ("" when none)."""
    if info is None or not info.citation:
        return ""
    longest = max((len(m) for m in re.findall(r"`+", info.citation)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"## Citation\n\n{fence}text\n{info.citation}\n{fence}"


# ----------------------------------------------------------------------------- groups


def _gap_text(gap: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    if gap.get("gap") is None:
        return f"Largest gap: none ({gap.get('note', '')})."
    acc = {r["group"]: r["accuracy"] for r in rows}
    verdict = "significant" if gap["significant"] else "not significant"
    return (
        f"Largest accuracy gap: **{100 * gap['gap']:.1f} points** between `{gap['best']}` "
        f"({_pct(acc[gap['best']])}) and `{gap['worst']}` ({_pct(acc[gap['worst']])}), "
        f"{verdict}: {gap['note']}."
    )


def groups_section(groups: dict[str, Any] | None) -> str:
    """ "Metrics per group": the float model per group, the largest gap, and every variant."""
    if not groups:
        return ""
    models: dict[str, dict[str, Any]] = groups.get("models") or {}
    float_block = models.get("float")
    if float_block is None:
        return ""
    conf = f"{100 * float(groups.get('confidence', 0.95)):g}%"
    counts: dict[str, dict[str, int]] = groups.get("counts") or {}
    head = ["group"]
    head += [s for s in ("train", "val") if s in counts]
    head += ["test rows", "accuracy", f"{conf} interval", "macro-F1"]
    rows = []
    for r in float_block["groups"]:
        row: list[Any] = [f"`{r['group']}`"]
        row += [counts[s].get(r["group"], 0) for s in ("train", "val") if s in counts]
        row += [r["n"], _pct(r["accuracy"]), _interval(r["interval"]), f"{r['macro_f1']:.3f}"]
        rows.append(row)
    text = (
        f"## Metrics per group\n\nGroup column `{groups.get('column')}`: kept out of the "
        "features (the model and the device never see it) and carried from training to "
        f"export. Test split; accuracy with its {conf} Wilson interval; macro-F1 over the "
        "classes present in each group. The gap between two groups has Newcombe's interval "
        "for a difference of independent proportions; only groups with at least "
        f"{groups.get('min_group_rows')} test rows are compared when two or more have that "
        "many.\n\n**Float model:**\n\n" + _table(head, rows)
    )
    text += "\n\n" + _gap_text(float_block["gap"], float_block["groups"])
    absent = groups.get("absent_from_test") or []
    if absent:
        text += "\n\nGroups with no test rows (unmeasured): " + ", ".join(f"`{g}`" for g in absent)
    variants = [(k, v) for k, v in models.items() if k != "float"]
    if variants:
        text += "\n\n" + _variant_table(variants, float_block)
    return text


def _variant_table(variants: list[tuple[str, dict[str, Any]]], float_block: dict[str, Any]) -> str:
    names = [r["group"] for r in float_block["groups"]]
    matrix = len(names) <= MATRIX_MAX_GROUPS
    head = ["model", "in bundle"]
    head += [f"`{g}`" for g in names] if matrix else ["worst group"]
    head += ["largest gap (points)", "significant"]
    rows = []
    for name, block in [("float", float_block), *variants]:
        acc = {r["group"]: r["accuracy"] for r in block["groups"]}
        gap = block["gap"]
        inc = block.get("included")
        row: list[Any] = [f"`{name}`", "n/a" if inc is None else ("yes" if inc else "no")]
        if matrix:
            row += [_pct(acc[g]) if g in acc else "n/a" for g in names]
        else:
            worst = gap.get("worst")
            row.append("n/a" if worst is None else f"`{worst}` {_pct(acc[worst])}")
        row.append("n/a" if gap.get("gap") is None else f"{100 * gap['gap']:.1f}")
        row.append("yes" if gap.get("significant") else "no")
        rows.append(row)
    return "**Every evaluated variant** (accuracy per group on the test split):\n\n" + _table(
        head, rows
    )
