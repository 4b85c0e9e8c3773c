"""A tiny, safe Markdown renderer for model cards.

Model cards come inside uploaded bundles, so their text is untrusted. Rather than
sanitising arbitrary HTML, this renderer escapes every character of input first and only
ever emits the handful of tags it knows: headings, paragraphs, lists, tables, code, block
quotes, emphasis, links and images. Raw HTML in a card shows up as text. Link and image
targets pass through ``resolve_url``; ``javascript:`` and other schemes are dropped.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable

UrlResolver = Callable[[str], str | None]

_SAFE_SCHEMES = ("http://", "https://", "mailto:")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_ULIST = re.compile(r"^\s*[-*+]\s+(.*)$")
_OLIST = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_TABLE_SEP = re.compile(r"^\s*\|?\s*:?-{2,}:?\s*(\|\s*:?-{2,}:?\s*)*\|?\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")
_URL = r"((?:[^()\s]|\([^()\s]*\))+)"  # one level of balanced parentheses allowed
_IMAGE = re.compile(r"!\[([^\]]*)\]\(\s*" + _URL + r"(?:\s+&quot;[^)]*&quot;)?\s*\)")
_LINK = re.compile(r"\[([^\]]+)\]\(\s*" + _URL + r"\s*\)")
_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*(.+?)\*\*|__(.+?)__")
_EM = re.compile(r"(?<![\w*])\*(?!\s)(.+?)(?<!\s)\*(?!\w)|(?<![\w_])_(?!\s)(.+?)(?<!\s)_(?!\w)")


def default_resolver(url: str) -> str | None:
    """Keep absolute web links and in-page anchors; drop everything else."""
    if url.startswith(_SAFE_SCHEMES) or url.startswith("#"):
        return url
    return None


def render(  # noqa: C901 - a single line scanner with one branch per block kind
    text: str, resolve_url: UrlResolver = default_resolver
) -> str:
    """Render ``text`` to an HTML fragment that cannot carry markup from the input."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    out: list[str] = []
    para: list[str] = []
    i = 0

    def inline(s: str) -> str:
        return _inline(s, resolve_url)

    def flush_para() -> None:
        if para:
            out.append(f"<p>{inline(' '.join(p.strip() for p in para))}</p>")
            para.clear()

    while i < len(lines):
        line = lines[i]
        if _FENCE.match(line):
            flush_para()
            fence = _FENCE.match(line).group(1)  # type: ignore[union-attr]
            body: list[str] = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                body.append(lines[i])
                i += 1
            out.append(f"<pre><code>{html.escape(chr(10).join(body))}</code></pre>")
            i += 1
            continue
        if not line.strip():
            flush_para()
            i += 1
            continue
        heading = _HEADING.match(line)
        if heading:
            flush_para()
            level = len(heading.group(1))
            out.append(f"<h{level}>{inline(heading.group(2))}</h{level}>")
            i += 1
            continue
        if "|" in line and i + 1 < len(lines) and _TABLE_SEP.match(lines[i + 1]):
            flush_para()
            rows = [line]
            i += 2
            while i < len(lines) and "|" in lines[i] and lines[i].strip():
                rows.append(lines[i])
                i += 1
            out.append(_table(rows, inline))
            continue
        if _ULIST.match(line) or _OLIST.match(line):
            flush_para()
            ordered = bool(_OLIST.match(line)) and not _ULIST.match(line)
            pattern = _OLIST if ordered else _ULIST
            entries: list[str] = []
            while i < len(lines) and pattern.match(lines[i]):
                entries.append(pattern.match(lines[i]).group(1))  # type: ignore[union-attr]
                i += 1
            tag = "ol" if ordered else "ul"
            body_html = "".join(f"<li>{inline(e)}</li>" for e in entries)
            out.append(f"<{tag}>{body_html}</{tag}>")
            continue
        if line.lstrip().startswith(">"):
            flush_para()
            quoted: list[str] = []
            while i < len(lines) and lines[i].lstrip().startswith(">"):
                quoted.append(lines[i].lstrip()[1:].strip())
                i += 1
            out.append(f"<blockquote><p>{inline(' '.join(quoted))}</p></blockquote>")
            continue
        if re.match(r"^\s*([-*_])(\s*\1){2,}\s*$", line):
            flush_para()
            out.append("<hr>")
            i += 1
            continue
        para.append(line)
        i += 1
    flush_para()
    return "\n".join(out)


def _split_row(row: str) -> list[str]:
    row = row.strip()
    if row.startswith("|"):
        row = row[1:]
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    cells = re.split(r"(?<!\\)\|", row)
    return [c.strip().replace("\\|", "|") for c in cells]


def _table(rows: list[str], inline: Callable[[str], str]) -> str:
    head = _split_row(rows[0])
    parts = ["<table><thead><tr>"]
    parts += [f"<th>{inline(c)}</th>" for c in head]
    parts.append("</tr></thead><tbody>")
    for row in rows[1:]:
        cells = _split_row(row)
        cells += [""] * (len(head) - len(cells))
        parts.append("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in cells[: len(head)]))
        parts.append("</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _inline(text: str, resolve_url: UrlResolver) -> str:
    """Escape first, then add the few inline tags.

    Every generated tag is parked behind a NUL placeholder at once, so later patterns can
    never rewrite inside an attribute of an earlier one.
    """
    escaped = html.escape(text.replace("\x00", ""), quote=True)
    parked: list[str] = []

    def park(fragment: str) -> str:
        parked.append(fragment)
        return f"\x00{len(parked) - 1}\x00"

    def image(match: re.Match[str]) -> str:
        url = resolve_url(html.unescape(match.group(2)))
        if url is None:
            return match.group(1)
        src = html.escape(url, quote=True)
        return park(f'<img src="{src}" alt="{match.group(1)}" loading="lazy">')

    def link(match: re.Match[str]) -> str:
        url = resolve_url(html.unescape(match.group(2)))
        if url is None:
            return match.group(1)
        href = html.escape(url, quote=True)
        return park(f'<a href="{href}" rel="noopener noreferrer">{match.group(1)}</a>')

    s = _CODE.sub(lambda m: park(f"<code>{m.group(1)}</code>"), escaped)
    s = _IMAGE.sub(image, s)
    s = _LINK.sub(link, s)
    s = _STRONG.sub(lambda m: f"<strong>{m.group(1) or m.group(2)}</strong>", s)
    s = _EM.sub(lambda m: f"<em>{m.group(1) or m.group(2)}</em>", s)
    for _ in range(3):  # a link may hold a parked code span
        s = re.sub(r"\x00(\d+)\x00", lambda m: parked[int(m.group(1))], s)
    return s
