"""Assistant text as HTML: Markdown, highlighted code, and a sanitiser that has the last word.

A model can be made to write anything, so its text is untrusted input. markdown-it-py parses it
with raw HTML disabled (tags come out as text), Pygments highlights fenced code with CSS classes
(the page's CSP allows no inline style), and nh3 then keeps only the tags, attributes and URL
schemes listed here, whatever the two before it produced.
"""

import html
import re
import threading
from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, replace

import nh3
from markdown_it import MarkdownIt
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.token import STANDARD_TYPES
from pygments.util import ClassNotFound

# The classes of the stylesheet `static/agentproj/highlight.css` (see README to regenerate it).
CODE_CSS_CLASS = "highlight"

ALLOWED_TAGS = {
    "p",
    "br",
    "hr",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "strong",
    "em",
    "s",
    "del",
    "blockquote",
    "ul",
    "ol",
    "li",
    "a",
    "code",
    "pre",
    "span",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
}
ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "ol": {"start"}}
ALIGNMENTS = ("left", "center", "right")
# Only the classes this module writes, so an answer cannot dress itself up as the page's own
# elements (a status chip, an approval card) with the page's classes.
ALLOWED_CLASSES = {
    "div": {CODE_CSS_CLASS},
    "span": {name for name in STANDARD_TYPES.values() if name},
    "th": {f"align-{side}" for side in ALIGNMENTS},
    "td": {f"align-{side}" for side in ALIGNMENTS},
}
ALLOWED_URL_SCHEMES = {"http", "https", "mailto"}
LINK_REL = "noopener noreferrer nofollow"

_formatter = HtmlFormatter(cssclass=CODE_CSS_CLASS, nowrap=True)


def _highlight(code: str, language: str) -> str:
    """A fenced block's inner HTML: highlighted when its language is known, escaped otherwise."""
    try:
        lexer = get_lexer_by_name(language) if language else None
    except ClassNotFound:
        lexer = None
    if lexer is None:
        return html.escape(code)
    return highlight(code, lexer, _formatter)


_markdown = MarkdownIt("commonmark", {"html": False})
_markdown.enable(["table", "strikethrough"])


def _fence(_renderer, tokens, idx, _options, _env) -> str:
    token = tokens[idx]
    # The info string's first word names the language (```python title="x" is valid).
    language = token.info.split(maxsplit=1)[0] if token.info.strip() else ""
    inner = _highlight(token.content, language)
    return f'<div class="{CODE_CSS_CLASS}"><pre><code>{inner}</code></pre></div>\n'


def _alignment_classes(state) -> None:
    """Table alignment as a class: markdown-it writes a style attribute, which the CSP refuses."""
    for token in state.tokens:
        if token.type in ("th_open", "td_open") and token.attrs.get("style"):
            side = str(token.attrs.pop("style")).removeprefix("text-align:")
            token.attrSet("class", f"align-{side}")


_markdown.add_render_rule("fence", _fence)
_markdown.core.ruler.push("alignment_classes", _alignment_classes)


def assistant_html(text: str) -> str:
    """The sanitised HTML of an assistant message's Markdown text.

    Without the newline markdown-it ends each block with, a one-paragraph answer reads (as the
    page's text) exactly as it was written.
    """
    return sanitised(_markdown.render(text)).strip()


def sanitised(html: str) -> str:
    """What the renderer's HTML may keep: the listed tags, attributes, URL schemes and classes.
    The last word, whatever markdown-it and Pygments wrote."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=ALLOWED_URL_SCHEMES,
        link_rel=LINK_REL,
        set_tag_attribute_values={"a": {"target": "_blank"}},
        allowed_classes=ALLOWED_CLASSES,
    )


# A line that opens or closes a fenced code block.
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
# Streaming messages whose closed part is kept rendered: about as many as stream at once.
STREAMING_KEPT = 1024


@dataclass(frozen=True)
class StreamingParts:
    """A streaming answer's HTML in its parts: the closed blocks as rendered, each piece with the
    length of text it ends at (``chunks``), and the open block at the end (``open_html``).
    ``closed`` is the length of the text the chunks cover."""

    closed: int
    chunks: tuple[tuple[int, str], ...]
    open_html: str

    @property
    def closed_html(self) -> str:
        return joined(*(html for _, html in self.chunks))

    def closed_after(self, length: int) -> str | None:
        """The HTML of the chunks closed after ``length`` of the text, for a page that has the
        chunks up to there; None when ``length`` is not where a chunk ends (the page's chunks
        were cut elsewhere: it needs them all)."""
        if length == 0:
            return self.closed_html
        ends = [end for end, _ in self.chunks]
        if length not in ends:
            return None
        return joined(*(html for end, html in self.chunks if end > length))


@dataclass(frozen=True)
class _Rendered:
    closed: str
    chunks: tuple[tuple[int, str], ...] = ()
    tail: str = ""
    tail_html: str = ""


class StreamingRenders:
    """The HTML of answers still streaming, rendered once for every page that shows them, and
    only where they changed.

    A checkpoint brings an answer's whole text so far, again and again, to every page that
    watches it. Rendering all of it each time would cost each token more the longer the answer
    grew, once per watching socket. Here an answer's closed part (the blocks before its last
    blank line outside a fenced code block) is rendered once, kept per message and extended by
    the blocks closed since; only the open block at its end is rendered again, once per
    checkpoint. Blocks rendered apart may differ in small ways from the whole (a loose list
    reads as several lists) until the final text is rendered in one piece.
    """

    def __init__(self, kept: int = STREAMING_KEPT):
        self._kept = kept
        self._rendered: OrderedDict[Hashable, _Rendered] = OrderedDict()
        self._lock = threading.Lock()

    def html(self, key: Hashable, text: str) -> str:
        parts = self.parts(key, text)
        return joined(parts.closed_html, parts.open_html)

    def parts(self, key: Hashable, text: str) -> StreamingParts:
        with self._lock:
            rendered = self._rendered.get(key)
        if rendered is None or not text.startswith(rendered.closed):
            rendered = _Rendered(closed="")
        start = len(rendered.closed)
        closed = start + closed_length(text[start:])
        tail = text[closed:]
        if closed > start:
            added = (closed, assistant_html(text[start:closed]))
            rendered = _Rendered(closed=text[:closed], chunks=(*rendered.chunks, added))
        if closed > start or tail != rendered.tail:
            rendered = replace(rendered, tail=tail, tail_html=assistant_html(tail) if tail else "")
            with self._lock:
                self._rendered[key] = rendered
                self._rendered.move_to_end(key)
                while len(self._rendered) > self._kept:
                    self._rendered.popitem(last=False)
        return StreamingParts(
            closed=len(rendered.closed), chunks=rendered.chunks, open_html=rendered.tail_html
        )


def joined(*parts: str) -> str:
    """HTML blocks one after the other, as markdown-it separates them."""
    return "\n".join(part for part in parts if part)


def closed_length(text: str) -> int:
    """How much of ``text`` is closed blocks: up to the end of its last blank line outside a
    fenced code block (a line still being written closes nothing)."""
    fence = None
    closed = position = 0
    for line in text.splitlines(keepends=True):
        if not line.endswith("\n"):
            break
        position += len(line)
        opening = _FENCE.match(line)
        if fence is None:
            if opening:
                fence = opening.group(1)
            elif not line.strip():
                closed = position
        elif (
            opening
            and opening.group(1)[0] == fence[0]
            and len(opening.group(1)) >= len(fence)
            and not line[opening.end() :].strip()
        ):
            fence = None
    return closed


streaming = StreamingRenders()
