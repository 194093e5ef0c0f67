"""Markdown to safe HTML (markdown-it-py, cleaned with nh3) and to plain text.

Statements come from a Jekyll site and may hold raw HTML (the seed statement links with
``<a href= "…">``), so raw HTML is parsed and then cleaned: only formatting tags survive, only
http, https and mailto URLs, and never scripts, styles or event handlers.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable
from functools import lru_cache
from html.parser import HTMLParser
from urllib.parse import urljoin

import nh3
from markdown_it import MarkdownIt
from mdit_py_plugins.footnote import footnote_plugin

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5",
    "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "small", "strong", "sub", "sup",
    "table", "tbody", "td", "tfoot", "th", "thead", "tr", "u", "ul", "figure", "figcaption",
    "span", "div", "dl", "dt", "dd", "cite", "q", "mark", "kbd", "section",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "id"},
    "li": {"id"},
    "img": {"src", "alt", "title", "width", "height"},
    "td": {"align", "colspan", "rowspan"},
    "th": {"align", "colspan", "rowspan"},
    "ol": {"start"},
    "abbr": {"title"},
}
URL_SCHEMES = {"http", "https", "mailto"}
_ABSOLUTE_URL = re.compile(r"^\s*(https?://|mailto:)", re.IGNORECASE)
_URL_ATTRIBUTES = {"href", "src"}
#: the ids footnotes link between (``#fn1`` ↔ ``#fnref1``, ``#fnref1:2`` for a second
#: reference); no other id survives, so a statement cannot clobber the page's own elements
_FOOTNOTE_ID = re.compile(r"^fn(ref)?\d{1,4}(:\d{1,4})?$")
_FOOTNOTE_HREF = re.compile(r"^#fn(ref)?\d{1,4}(:\d{1,4})?$")


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # CommonMark plus tables, ~~strike~~ and footnotes ([^1]); linkify stays off so plain
    # text is never rewritten.
    return (
        MarkdownIt("commonmark", {"html": True, "linkify": False})
        .enable(["table", "strikethrough"])
        .use(footnote_plugin)
    )


def _url_filter(base_url: str | None) -> Callable[[str, str, str], str | None]:
    """nh3's attribute filter: relative URLs are made absolute against ``base_url`` when
    there is one, and dropped otherwise (in an inbox they point nowhere); nh3 then checks
    the schemes. Footnote anchors (``#fn1``) stay: they point within the message."""

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if attribute == "id":
            return value if _FOOTNOTE_ID.match(value) else None
        if attribute in _URL_ATTRIBUTES and not _ABSOLUTE_URL.match(value):
            if _FOOTNOTE_HREF.match(value.strip()):
                return value.strip()
            if base_url and value.strip():
                return urljoin(base_url, value.strip())
            return None
        return value

    return keep


def clean_html(html: str, *, base_url: str | None = None) -> str:
    """Clean an HTML fragment: formatting tags only, absolute http(s)/mailto URLs only.

    :param base_url: the address relative links and images are resolved against (a
        statement's page on its site); without it they are dropped.
    """
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_url_filter(base_url),
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
        strip_comments=True,
    )


def render_markdown(source: str, *, base_url: str | None = None) -> str:
    """Render Markdown (raw HTML allowed) to cleaned HTML, safe to insert in pages and mail.

    :param base_url: see ``clean_html``.
    """
    return clean_html(_parser().render(source), base_url=base_url)


def markdown_to_text(source: str, *, width: int = 78) -> str:
    """Render Markdown to plain text for the text part of a mail; links as ``text (url)``."""
    return html_to_text(render_markdown(source), width=width)


_BLOCKS = {
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "tr",
    "ul", "ol", "dl", "dt", "dd", "figure", "figcaption", "hr",
}  # fmt: skip


class _TextWriter(HTMLParser):
    """Turns cleaned HTML into readable plain text (paragraphs, lists, links as text (url))."""

    def __init__(self, width: int) -> None:
        super().__init__(convert_charrefs=True)
        self.width = width
        self.blocks: list[tuple[str, str]] = []  # (text, kind); list items and rows pack tight
        self.current: list[str] = []
        self.links: list[tuple[str, int]] = []  # (href, position in current)
        self.lists: list[list[int | None]] = []  # per open list: [counter or None]
        self.prefix = ""
        self.pre = 0
        self.quote = 0
        self.cells: list[str] | None = None
        self.top_list = 0  # numbers top-level lists: items of one list pack tight, two lists don't

    # -- block handling -------------------------------------------------------------
    def _flush(self) -> None:
        text = "".join(self.current)
        self.current = []
        if self.pre:
            if text.strip("\n"):
                self.blocks.append((self._quoted(text.strip("\n")), "pre"))
            return
        text = re.sub(r"\s+", " ", text).strip()
        if not text:
            return
        indent = "  " * max(len(self.lists) - 1, 0)
        kind = f"item-{self.top_list}" if self.prefix else "para"
        first = indent + self.prefix
        rest = indent + " " * len(self.prefix)
        self.prefix = ""
        wrapped = textwrap.fill(
            text, width=self.width, initial_indent=first, subsequent_indent=rest,
            break_long_words=False, break_on_hyphens=False,
        )  # fmt: skip
        self.blocks.append((self._quoted(wrapped), kind))

    def _quoted(self, text: str) -> str:
        if not self.quote:
            return text
        marker = "> " * self.quote
        return "\n".join(marker + line if line else marker.rstrip() for line in text.split("\n"))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "li":
            self._flush()
            if self.lists:
                counter = self.lists[-1]
                if counter[0] is None:
                    self.prefix = "- "
                else:
                    self.prefix = f"{counter[0]}. "
                    counter[0] += 1
            else:
                self.prefix = "- "
        elif tag in ("ul", "ol"):
            self._flush()
            start = attributes.get("start")
            number = int(start) if tag == "ol" and start and start.isdigit() else 1
            if not self.lists:
                self.top_list += 1
            self.lists.append([number if tag == "ol" else None])
        elif tag == "br":
            self.current.append("\n" if self.pre else " ")
            if not self.pre:
                self._flush()
        elif tag == "a":
            self.links.append((attributes.get("href") or "", len(self.current)))
        elif tag == "img":
            alt = (attributes.get("alt") or "").strip()
            src = attributes.get("src") or ""
            self.current.append(f"[{alt or 'image'}]" + (f" ({src})" if src else ""))
        elif tag in ("td", "th"):
            self.cells = self.cells if self.cells is not None else []
            self.current = []
        elif tag == "blockquote":
            self._flush()
            self.quote += 1
        elif tag == "pre":
            self._flush()
            self.pre += 1
        elif tag in _BLOCKS:
            self._flush()
            if tag == "hr":
                self.blocks.append((self._quoted("* * *"), "para"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "a" and self.links:
            href, start = self.links.pop()
            label = re.sub(r"\s+", " ", "".join(self.current[start:])).strip()
            if href and href.startswith("mailto:") and label == href[len("mailto:") :]:
                pass
            elif href and label and label != href:
                self.current.append(f" ({href})")
            elif href and not label:
                self.current.append(href)
        elif tag in ("td", "th") and self.cells is not None:
            self.cells.append(re.sub(r"\s+", " ", "".join(self.current)).strip())
            self.current = []
        elif tag == "tr" and self.cells is not None:
            self.blocks.append((self._quoted(" | ".join(self.cells)), "row"))
            self.cells = None
        elif tag in ("ul", "ol"):
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag == "blockquote":
            self._flush()
            self.quote = max(self.quote - 1, 0)
        elif tag == "pre":
            self._flush()
            self.pre = max(self.pre - 1, 0)
        elif tag in _BLOCKS or tag == "li":
            self._flush()

    def handle_data(self, data: str) -> None:
        self.current.append(data)

    def text(self) -> str:
        self._flush()
        parts: list[str] = []
        previous = ""
        for text, kind in self.blocks:
            if parts:
                tight = kind == previous and kind != "para" and kind != "pre"
                parts.append("\n" if tight else "\n\n")
            parts.append(text)
            previous = kind
        return "".join(parts)


def html_to_text(html: str, *, width: int = 78) -> str:
    """Plain text from (cleaned) HTML: paragraphs wrapped at ``width``, links as text (url)."""
    writer = _TextWriter(width)
    writer.feed(html)
    writer.close()
    return writer.text()
