"""The model card renderer must never let markup from a card through."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cloud.hub.web.markdown import render

ALLOWED_TAGS = {"h1", "h2", "h3", "h4", "h5", "h6", "p", "ul", "ol", "li", "table", "thead",
                "tbody", "tr", "th", "td", "pre", "code", "blockquote", "hr", "strong", "em",
                "a", "img"}  # fmt: skip


def tags(html: str) -> set[str]:
    from html.parser import HTMLParser

    found: set[str] = set()

    class P(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.add(tag)
            for name, value in attrs:
                assert not name.startswith("on"), (name, html)
                assert not (value or "").lower().startswith("javascript:"), (value, html)

    P().feed(html)
    return found


def test_headings_tables_lists_code_and_images() -> None:
    out = render(
        "# Title\n\nText **bold** *it* `x<y`\n\n| a | b |\n|---|--:|\n| 1 | 2 |\n\n"
        "- one\n- two\n\n1. first\n\n```\n<b>raw</b>\n```\n\n![c](charts/c.png)",
        lambda url: "/img/" + url,
    )
    assert "<h1>Title</h1>" in out
    assert "<strong>bold</strong>" in out and "<em>it</em>" in out
    assert "<code>x&lt;y</code>" in out
    assert "<th>a</th><th>b</th>" in out and "<td>1</td><td>2</td>" in out
    assert "<ul><li>one</li><li>two</li></ul>" in out and "<ol><li>first</li></ol>" in out
    assert "<pre><code>&lt;b&gt;raw&lt;/b&gt;</code></pre>" in out
    assert '<img src="/img/charts/c.png" alt="c"' in out


def test_html_and_script_urls_are_text() -> None:
    out = render(
        "<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n"
        "[x](javascript:alert(1)) ![y](data:text/html;base64,xx) [ok](https://e.org/a_(b))"
    )
    assert "<script" not in out and "<img" not in out
    assert "&lt;script&gt;" in out
    assert 'href="https://e.org/a_(b)"' in out
    assert "javascript" not in out.split("<a ")[0] or 'href="javascript' not in out


def test_nested_link_inside_image_url_cannot_break_attributes() -> None:
    out = render('![x](http://a/[b](http://c" onerror="alert(1))')
    assert tags(out) <= ALLOWED_TAGS


@given(
    st.text(alphabet=st.sampled_from(list("<>\"'`[]()!*_#|-:=/ \nabjsvcriptonerl&;")), max_size=200)
)
def test_any_input_yields_only_known_tags(text: str) -> None:
    assert tags(render(text)) <= ALLOWED_TAGS
