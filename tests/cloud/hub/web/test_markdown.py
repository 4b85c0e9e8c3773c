"""The model card renderer (markdown-it-py): CommonMark + tables, and nothing of the card's
own markup, scripts, foreign images or build-machine paths gets through."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cloud.hub.web.markdown import default_resolver, render

ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "table", "thead",
                "tbody", "tr", "th", "td", "pre", "code", "blockquote", "hr", "strong", "em",
                "a", "img", "br", "del"}  # fmt: skip
ALLOWED_ATTRS = {"href", "rel", "src", "alt", "loading", "title", "class", "start"}


def parse(html: str) -> list[tuple[str, dict[str, str]]]:
    """Every start tag of ``html`` with its attributes."""
    found: list[tuple[str, dict[str, str]]] = []

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, {k: v or "" for k, v in attrs}))

        def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.handle_starttag(tag, attrs)

    P().feed(html)
    return found


def assert_inert(html: str) -> None:
    for tag, attrs in parse(html):
        assert tag in ALLOWED_TAGS, (tag, html)
        assert set(attrs) <= ALLOWED_ATTRS, (attrs, html)
        for name in ("href", "src"):
            value = attrs.get(name, "").strip().lower()
            assert not value.startswith(("javascript:", "data:", "vbscript:", "//")), html


def chart_files(url: str) -> str | None:
    """What the hub does: chart PNGs map to its file route, web links and anchors stay."""
    if url.startswith(("http://", "https://", "#")):
        return url
    return f"/files/{url}" if url.startswith("charts/") and url.endswith(".png") else None


def test_a_list_item_that_wraps_stays_one_item() -> None:
    out = render(
        "- a first item whose text is long enough\n  to wrap onto a second line\n"
        "- second\n\n1. one\n   continued\n2. two"
    )
    items = [t for t, _ in parse(out) if t == "li"]
    assert len(items) == 4
    assert "<li>a first item whose text is long enough\nto wrap onto a second line</li>" in out
    assert "<li>one\ncontinued</li>" in out
    assert "<p>" not in out  # the continuation is not a stray paragraph


def test_tables_code_emphasis_and_images() -> None:
    out = render(
        "# Title\n\nText **bold** *it* `x<y`\n\n| a | b |\n|---|--:|\n| 1 | 2 \\| 3 |\n\n"
        "```\n<b>raw</b>\n```\n\n![c](charts/c.png)",
        chart_files,
    )
    assert "<h1>Title</h1>" in out
    assert "<strong>bold</strong>" in out and "<em>it</em>" in out
    assert "<code>x&lt;y</code>" in out
    assert "<th>a</th>" in out and '<th class="num">b</th>' in out  # alignment as a class
    assert '<td class="num">2 | 3</td>' in out
    assert "style=" not in out  # the CSP blocks inline styles
    assert "<pre><code>&lt;b&gt;raw&lt;/b&gt;\n</code></pre>" in out
    assert '<img src="/files/charts/c.png" alt="c" loading="lazy" />' in out


def test_a_hostile_card_comes_out_inert() -> None:
    card = (
        "<script>alert(1)</script>\n\n<img src=x onerror=alert(1)>\n\n"
        '<a href="javascript:alert(1)" onclick="x()">html link</a>\n\n'
        "[js](javascript:alert(1)) [JS](JaVaScRiPt:alert(1)) [vb](vbscript:x)\n\n"
        "[data](data:text/html,x)\n\n"
        "[tab](java\tscript:alert(1)) [ent](&#106;avascript:alert(1)) [proto](//evil.org/x)\n\n"
        "![foreign](https://evil.org/track.png) ![data](data:image/png;base64,AAAA) "
        "![up](../../etc/passwd.png) ![root](/etc/x.png)\n\n"
        '[t](https://ok.org "x\\" onmouseover=\\"alert(1)") ![c](charts/ok.png)\n\n'
        "| <b>x</b> | [j](javascript:1) |\n|---|---|\n| <i onclick=1>y</i> | ![z](http://e/z.png) |"
    )
    out = render(card, chart_files)
    assert_inert(out)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out  # shown as text, never run
    assert "evil.org" not in "".join(a.get("src", "") + a.get("href", "") for _, a in parse(out))
    srcs = [a["src"] for t, a in parse(out) if t == "img"]
    assert srcs == ["/files/charts/ok.png"]  # only the bundle's own chart
    assert [a["href"] for t, a in parse(out) if t == "a"] == ["https://ok.org"]
    assert "foreign" in out  # a refused image leaves its alt text


def test_default_resolver_allows_web_relative_and_anchor_only() -> None:
    assert default_resolver("https://e.org/a_(b)") == "https://e.org/a_(b)"
    assert default_resolver("#intervals") == "#intervals"
    assert default_resolver("data-report.json") == "data-report.json"
    for bad in ("javascript:alert(1)", "data:x", "mailto:a@b", "//evil.org", "/etc/passwd",
                "file:///etc/passwd", "http:no-host", "a\nb", ""):  # fmt: skip
        assert default_resolver(bad) is None, bad


@pytest.mark.parametrize(
    "card",
    [
        "source `/tmp/edgekit-reference.BXE846/breast_cancer.csv` ok",
        "| source | /home/alice/data/breast_cancer.csv |\n|---|---|\n| run | /work/runs/x |",
        "- trained from ~/data/breast_cancer.csv\n- and file:///srv/x/breast_cancer.csv",
        "```\nerror in /work/main/tmp/x/breast_cancer.csv\n```",
        "![/home/alice/breast_cancer.csv](http://evil/x.png) [/tmp/a/breast_cancer.csv](#x)",
    ],
)
def test_paths_of_old_bundles_are_cut_to_file_names(card: str) -> None:
    out = render(card)
    assert "breast_cancer.csv" in out
    for leak in ("/tmp/", "/home/", "/work/", "~/", "/srv/", "file:"):
        assert leak not in out, (leak, out)


@given(
    st.text(
        alphabet=st.sampled_from(list("<>\"'`[]()!*_#|-:=/ \n\tabjsvcriptonerl&;")), max_size=200
    )
)
def test_any_input_yields_only_known_tags(text: str) -> None:
    assert_inert(render(text))
