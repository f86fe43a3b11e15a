"""Assistant text rendered as Markdown: structure and highlighting survive, anything that could
run script or leave the page's rules does not."""

from html.parser import HTMLParser

import pytest

from sessions_app.core.rendering import assistant_html, sanitised

HOSTILE = [
    "<script>alert(1)</script>",
    '<img src=x onerror="alert(1)">',
    "[x](javascript:alert(1))",
    "[x](JaVaScRiPt:alert(1))",
    "[x](  javascript:alert(1))",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "<javascript:alert(1)>",
    '<div onclick="alert(1)">raw block</div>',
    '<a href="javascript:alert(1)" onmouseover="alert(1)">raw link</a>',
    "<iframe src=https://example.com></iframe>",
    '<svg onload="alert(1)"><circle/></svg>',
    "<style>body { display: none }</style>",
    '![img](https://example.com/x.png "t")',
    "```html\n<script>alert(1)</script>\n```",
    "| a |\n|---|\n| <script>alert(1)</script> |",
]


class Elements(HTMLParser):
    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = Elements()
    parser.feed(html)
    parser.close()
    return parser.found


@pytest.mark.parametrize("text", HOSTILE)
def test_it_never_lets_script_through(text):
    found = elements(assistant_html(text))
    tags = {tag for tag, _ in found}
    assert not tags & {"script", "img", "iframe", "svg", "style", "object", "embed", "form"}
    for _, attrs in found:
        assert not [name for name in attrs if name.startswith("on")], attrs
        assert "style" not in attrs
        href = (attrs.get("href") or "").strip().lower()
        assert not href or href.startswith(("http:", "https:", "mailto:")), href


def test_it_shows_raw_html_as_text():
    html = assistant_html("<script>alert(1)</script> and <b>bold</b>")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;b&gt;bold&lt;/b&gt;" in html


def test_it_keeps_a_javascript_link_as_text_only():
    html = assistant_html("[x](javascript:alert(1))")
    assert "href" not in html
    assert "alert(1)" in html


def test_it_opens_links_in_a_new_tab_without_referrer():
    found = elements(assistant_html("[spec](https://commonmark.org/) and [me](mailto:a@b.example)"))
    links = [attrs for tag, attrs in found if tag == "a"]
    assert [a["href"] for a in links] == ["https://commonmark.org/", "mailto:a@b.example"]
    for attrs in links:
        assert attrs["target"] == "_blank"
        assert attrs["rel"] == "noopener noreferrer nofollow"


def test_it_renders_headings_lists_and_tables():
    text = "## Title\n\n- one\n- two\n\n1. first\n\n| a | b |\n|:--|--:|\n| 1 | 2 |\n"
    found = elements(assistant_html(text))
    tags = [tag for tag, _ in found]
    for tag in ("h2", "ul", "ol", "li", "table", "thead", "tbody", "th", "td"):
        assert tag in tags, tag
    # Alignment as classes: the page's CSP refuses style attributes.
    cells = [attrs.get("class") for tag, attrs in found if tag in ("th", "td")]
    assert cells == ["align-left", "align-right", "align-left", "align-right"]


def test_it_highlights_fenced_code_with_classes():
    html = assistant_html("```python\ndef f(x):\n    return x\n```")
    found = elements(html)
    assert ("div", {"class": "highlight"}) in found
    assert ("span", {"class": "k"}) in found  # the keyword "def"
    assert [tag for tag, _ in found].count("pre") == 1
    assert "def" in html


def test_it_escapes_code_in_an_unknown_language():
    html = assistant_html("```no-such-language\n<b>x</b>\n```")
    assert "&lt;b&gt;x&lt;/b&gt;" in html
    assert "<pre>" in html


def test_it_keeps_the_classes_it_writes_and_drops_any_other():
    """markdown-it escapes raw HTML, so no Markdown text reaches the sanitiser with a class of the
    page's own: this feeds the sanitiser stage HTML as the renderer hands it (a highlighted code
    block, an aligned table cell), with page classes mixed in."""
    html = sanitised(
        '<div class="highlight approval"><pre><code><span class="k chip chip-running">def</span>'
        '</code></pre></div><table><tbody><tr><td class="align-left turn-foot">1</td></tr>'
        '</tbody></table><p class="notice">text</p>'
    )
    classes = [(tag, attrs.get("class")) for tag, attrs in elements(html) if "class" in attrs]
    assert classes == [("div", "highlight"), ("span", "k"), ("td", "align-left")]


def test_a_one_paragraph_answer_reads_as_written():
    assert assistant_html("Hello, world.") == "<p>Hello, world.</p>"
