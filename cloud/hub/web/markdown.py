"""Model cards to safe HTML with markdown-it-py (CommonMark plus GFM tables).

Model cards come inside uploaded bundles, so their text is untrusted. The parser runs with
raw HTML off (a ``<script>`` in a card is escaped and shows as text), so the only markup
in the output is what markdown-it itself renders. On top of that, every link and image
target passes through ``resolve_url``: what it refuses is not a link (the text stays) or
not an image (the alt text stays), so ``javascript:`` and ``data:`` never reach the page;
images must be relative (files of the bundle) before ``resolve_url`` even sees them.
Table alignment becomes a class, not a ``style`` attribute, which the hub's
Content-Security-Policy would block. Text and code pass through
:func:`cloud.paths.strip_paths`, so cards of bundles exported before the exporter wrote
file names only still show no build-machine directories.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from markdown_it import MarkdownIt
from markdown_it.renderer import RendererHTML
from markdown_it.rules_core import StateCore
from markdown_it.token import Token
from markdown_it.utils import EnvType, OptionsDict

from cloud.paths import strip_paths

UrlResolver = Callable[[str], str | None]

_WEB_SCHEMES = ("http", "https")
_ALIGN = {"text-align:left": "left", "text-align:center": "center", "text-align:right": "num"}
_TEXT_TOKENS = frozenset({"text", "code_inline", "fence", "code_block"})


def default_resolver(url: str) -> str | None:
    """Keep web links, in-page anchors and relative links; drop every other scheme.

    A relative link is one without scheme or host (``data-report.json``, ``#intervals``);
    ``//host/x`` and ``/abs/path`` are refused: a card may only point into itself.
    """
    if not url or any(ord(c) < 32 for c in url):
        return None
    parts = urlsplit(url)
    if parts.scheme:
        return url if parts.scheme.lower() in _WEB_SCHEMES and parts.netloc else None
    return url if is_relative(url) else None


def is_relative(url: str) -> bool:
    """True for a path inside the bundle (``charts/roc.png``): no scheme, host or root."""
    parts = urlsplit(url)
    return not (parts.scheme or parts.netloc or url.startswith(("/", "\\")) or ".." in url)


def render(text: str, resolve_url: UrlResolver = default_resolver) -> str:
    """Render ``text`` to an HTML fragment that cannot carry markup from the input."""
    return _parser().render(text.replace("\x00", ""), {"resolve_url": resolve_url})


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable("table")
    md.enable("strikethrough")
    md.core.ruler.push("edgekit_safe", _neutralise)
    md.add_render_rule("link_open", _link_open)
    md.add_render_rule("link_close", _link_close)
    md.add_render_rule("th_open", _cell_open)
    md.add_render_rule("td_open", _cell_open)
    return md


def _neutralise(state: StateCore) -> None:
    """Resolve link and image targets, strip build-machine paths from text."""
    resolve: UrlResolver = state.env.get("resolve_url", default_resolver)
    for block in state.tokens:
        if block.type in _TEXT_TOKENS:
            block.content = strip_paths(block.content)
        if block.children:
            block.children = _inline(block.children, resolve)


def _inline(tokens: list[Token], resolve: UrlResolver) -> list[Token]:
    out: list[Token] = []
    dropped: list[bool] = []  # one entry per open link: was it refused?
    for tok in tokens:
        if tok.type in _TEXT_TOKENS:
            tok.content = strip_paths(tok.content)
        if tok.type == "link_open":
            url = resolve(str(tok.attrGet("href") or ""))
            dropped.append(url is None)
            if url is None:
                tok.meta["dropped"] = True
            else:
                tok.attrSet("href", url)
                tok.attrSet("rel", "noopener noreferrer")
        elif tok.type == "link_close" and dropped and dropped.pop():
            tok.meta["dropped"] = True
        elif tok.type == "image":  # only the bundle's own files, never another host
            src = str(tok.attrGet("src") or "")
            url = resolve(src) if is_relative(src) and not src.startswith("#") else None
            if url is None:
                alt = Token("text", "", 0)
                alt.content = strip_paths("".join(c.content for c in tok.children or []))
                out.append(alt)
                continue
            tok.attrSet("src", url)
            tok.attrSet("loading", "lazy")
            for child in tok.children or []:
                child.content = strip_paths(child.content)
        out.append(tok)
    return out


def _link_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return "" if tokens[idx].meta.get("dropped") else self.renderToken(tokens, idx, options, env)


def _link_close(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    return "" if tokens[idx].meta.get("dropped") else self.renderToken(tokens, idx, options, env)


def _cell_open(
    self: RendererHTML, tokens: Sequence[Token], idx: int, options: OptionsDict, env: EnvType
) -> str:
    tok = tokens[idx]
    style = str(tok.attrGet("style") or "")
    if style:
        attrs: dict[str, Any] = {k: v for k, v in tok.attrs.items() if k != "style"}
        if style in _ALIGN:
            attrs["class"] = _ALIGN[style]
        tok.attrs = attrs
    return self.renderToken(tokens, idx, options, env)
