"""Jekyll posts as a site renders them: Liquid resolved, links made absolute, Markdown to HTML.

A post's Liquid (``{{ site.baseurl }}``, ``{% post_url %}``, ``{% include %}``, …) is
resolved with python-liquid from the site's address (``NEWSLETTER_SITE_URL``; its path is
``site.baseurl``) and the post's own front matter (``page.*``). Jekyll's own tags are added
here; a tag neither knows is removed, never shown raw, and a template the library cannot
parse at all is stripped of its tags, with a warning either way. The stored body stays the
author's source: resolving happens when a statement is rendered, so a change of the site's
address follows.

Relative links and images resolve against the post's own address on the site: its
``permalink`` from the front matter, else Jekyll's default
``/:categories/:year/:month/:day/:title.html``.
"""

from __future__ import annotations

import contextvars
import html
import json
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import IO, Any
from urllib.parse import quote, urlsplit

from liquid import DictLoader, Environment, Mode
from liquid.ast import BlockNode, Node
from liquid.exceptions import LiquidError
from liquid.parser import get_parser
from liquid.stream import TokenStream
from liquid.tag import Tag
from liquid.token import TOKEN_EXPRESSION, TOKEN_TAG

#: Jekyll's default permalink and its named styles
DEFAULT_PERMALINK = "/:categories/:year/:month/:day/:title.html"
PERMALINK_STYLES = {
    "date": DEFAULT_PERMALINK,
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title.html",
    "weekdate": "/:categories/:year/W:week/:short_day/:title.html",
    "none": "/:categories/:title.html",
}
_JEKYLL_POST_NAME = re.compile(r"^(?:.*/)?(\d{4})-(\d{2})-(\d{2})-([^/]+?)(?:\.\w+)?$")
_PLACEHOLDER = re.compile(r":(categories|year|month|day|i_month|i_day|short_year|y_day|title"
                          r"|slug|name|output_ext|week|short_day)")
# The fallback when even lax parsing fails: every tag and output goes, raw blocks' text stays.
_RAW_BLOCK = re.compile(r"\{%-?\s*raw\s*-?%\}(.*?)\{%-?\s*endraw\s*-?%\}", re.DOTALL)
_ANY_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
_INCLUDE_PARAM = re.compile(r"([\w-]+)\s*=\s*(\"[^\"]*\"|'[^']*'|\S+)")


@dataclass(frozen=True)
class Site:
    """The site's address: ``url`` is its origin (``site.url``), ``baseurl`` its path."""

    url: str = ""
    baseurl: str = ""
    title: str = ""

    @classmethod
    def from_address(cls, address: str | None, title: str = "") -> Site:
        """The site at ``address`` (``https://example.org/blog`` → url + ``/blog``)."""
        if not address:
            return cls(title=title)
        parts = urlsplit(address)
        return cls(
            url=f"{parts.scheme}://{parts.netloc}", baseurl=parts.path.rstrip("/"), title=title
        )

    @property
    def root(self) -> str:
        """The site's address with its baseurl, no trailing slash ("" when unknown)."""
        return self.url + self.baseurl if self.url else ""


#: finds a post by its Jekyll name (``2020-11-03-slug``) for ``post_url``/``link``: the
#: post's path on the site, or None (then Jekyll's default for that name is used)
PostFinder = Callable[[str], str | None]


# --- addresses ------------------------------------------------------------------------------


def categories_of(front_matter: Mapping[str, Any]) -> list[str]:
    """The post's categories: ``categories`` (a list, or words split on spaces) or
    ``category`` (one, spaces and all), as Jekyll reads them."""
    value = front_matter.get("categories")
    if value is None:
        single = front_matter.get("category")
        return [str(single)] if single is not None and str(single).strip() else []
    items = value if isinstance(value, list) else str(value).split()
    return [str(item) for item in items if str(item).strip()]


def post_path(
    front_matter: Mapping[str, Any], slug: str, when: date | None, *, permalink: str | None = None
) -> str:
    """The post's path below the site's baseurl, as Jekyll makes it.

    The front matter's ``permalink`` (a path, a pattern with ``:placeholders`` or a named
    style), else ``permalink`` given (the site's), else Jekyll's default.
    """
    pattern = str(front_matter.get("permalink") or permalink or DEFAULT_PERMALINK).strip()
    pattern = PERMALINK_STYLES.get(pattern, pattern)
    title = str(front_matter.get("slug") or slug)
    categories = "/".join(quote(c.lower().replace(" ", "-")) for c in categories_of(front_matter))
    day = when or date(1970, 1, 1)
    values = {
        "categories": categories,
        "year": f"{day.year:04d}",
        "month": f"{day.month:02d}",
        "day": f"{day.day:02d}",
        "i_month": str(day.month),
        "i_day": str(day.day),
        "short_year": f"{day.year % 100:02d}",
        "y_day": f"{day.timetuple().tm_yday:03d}",
        "week": f"{day.isocalendar()[1]:02d}",
        "short_day": day.strftime("%a"),
        "title": title,
        "slug": title,
        "name": title,
        "output_ext": ".html",
    }
    path = _PLACEHOLDER.sub(lambda match: values[match.group(1)], pattern)
    path = re.sub(r"/{2,}", "/", "/" + path.lstrip("/"))
    return path


def post_url(site: Site, front_matter: Mapping[str, Any], slug: str, when: date | None) -> str:
    """The post's absolute address: an absolute ``permalink`` as it is (a feed entry's
    link), else the site's address and the post's path ("" when the site is unknown)."""
    permalink = str(front_matter.get("permalink") or "")
    if re.match(r"^https?://", permalink, re.IGNORECASE):
        return permalink
    if not site.root:
        return ""
    return site.root + post_path(front_matter, slug, when)


def path_of_post_name(name: str) -> str:
    """Jekyll's default path for a post named ``2020-11-03-slug`` (no categories known)."""
    match = _JEKYLL_POST_NAME.match(name.strip())
    if not match:
        return "/" + name.strip().lstrip("/")
    year, month, day, slug = match.groups()
    return post_path({}, slug, date(int(year), int(month), int(day)))


def _page_path(target: str) -> str:
    """``{% link about.md %}``: a page's path (``.md`` → ``.html``, ``index`` → its folder)."""
    target = "/" + target.strip().lstrip("/")
    stem, dot, ext = target.rpartition(".")
    if dot and ext.lower() in ("md", "markdown", "html"):
        target = stem + ".html"
    if target.endswith("/index.html"):
        target = target[: -len("index.html")]
    return target


# --- Liquid ---------------------------------------------------------------------------------


@dataclass
class _Render:
    """What the tags of one render need: the site, the includes, warnings to add to."""

    site: Site
    includes: Mapping[str, str]
    find_post: PostFinder | None
    warnings: list[str]
    depth: int = 0


_current: contextvars.ContextVar[_Render] = contextvars.ContextVar("jekyll_render")


def _warn(message: str) -> None:
    state = _current.get(None)
    if state is not None and message not in state.warnings:
        state.warnings.append(message)


def _expression(stream: TokenStream) -> str:
    """The raw text of a tag's arguments (after ``stream.eat(TOKEN_TAG)``)."""
    if stream.current.kind == TOKEN_EXPRESSION:
        return str(stream.current.value).strip()
    return ""


class _TextNode(Node):
    """Writes what ``make`` returns when rendered."""

    __slots__ = ("make",)

    def __init__(self, token: Any, make: Callable[[Any], str]) -> None:
        super().__init__(token)
        self.make = make
        self.blank = False

    def render_to_output(self, context: Any, buffer: IO[str]) -> int:
        return buffer.write(self.make(context))


class _PostUrlTag(Tag):
    """``{% post_url 2020-11-03-slug %}`` → the post's address on the site."""

    name = "post_url"
    block = False

    def parse(self, stream: TokenStream) -> Node:
        token = stream.eat(TOKEN_TAG)
        target = _expression(stream)
        return _TextNode(token, lambda _context: _post_address(target))


class _LinkTag(Tag):
    """``{% link _posts/2020-11-03-slug.md %}`` or ``{% link about.md %}`` → an address."""

    name = "link"
    block = False

    def parse(self, stream: TokenStream) -> Node:
        token = stream.eat(TOKEN_TAG)
        target = _expression(stream)

        def make(_context: Any) -> str:
            if "_posts/" in target or _JEKYLL_POST_NAME.match(target):
                return _post_address(target.rsplit("/", 1)[-1])
            state = _current.get(None)
            base = state.site.root if state else ""
            return base + _page_path(target)

        return _TextNode(token, make)


def _post_address(name: str) -> str:
    state = _current.get(None)
    stem = re.sub(r"\.(md|markdown|html)$", "", name.strip())
    path = state.find_post(stem) if state and state.find_post else None
    base = state.site.root if state else ""
    return base + (path or path_of_post_name(stem))


class _IncludeTag(Tag):
    """Jekyll's ``{% include file.html key="value" %}``: the file from the import's
    ``_includes/`` folder, rendered with ``include.key``; removed (with a warning) when the
    import has no such file."""

    name = "include"
    block = False

    def parse(self, stream: TokenStream) -> Node:
        token = stream.eat(TOKEN_TAG)
        expression = _expression(stream)
        filename, _, rest = expression.partition(" ")
        # Quoted values are text; bare ones name variables (Jekyll: include x=page.title).
        params = _INCLUDE_PARAM.findall(rest)
        filename = filename.strip("\"'")
        env = self.env

        def make(context: Any) -> str:
            state = _current.get(None)
            source = state.includes.get(filename) if state else None
            if source is None or state is None:
                _warn(f"{{% include {filename} %}} removed: the import has no _includes/{filename}")
                return ""
            if state.depth >= 5:
                _warn(f"{{% include {filename} %}} removed: includes nest too deeply")
                return ""
            values = {
                key: value[1:-1] if value[:1] in "\"'" else context.get(
                    value.split("."), token=None, default=""
                )
                for key, value in params
            }
            state.depth += 1
            try:
                template = env.from_string(source)
                return str(template.render(
                    site=context.resolve("site", default={}),
                    page=context.resolve("page", default={}),
                    include=values,
                ))  # fmt: skip
            except LiquidError as error:
                _warn(f"{{% include {filename} %}} removed: {_one_line(error)}")
                return ""
            finally:
                state.depth -= 1

        return _TextNode(token, make)


class _IncludeRelativeTag(_IncludeTag):
    name = "include_relative"


class _HighlightNode(Node):
    __slots__ = ("language", "block")

    def __init__(self, token: Any, language: str, block: BlockNode) -> None:
        super().__init__(token)
        self.language = language
        self.block = block
        self.blank = False

    def render_to_output(self, context: Any, buffer: IO[str]) -> int:
        inner = context.get_buffer(buffer)
        self.block.render(context, inner)
        code = inner.getvalue().strip("\n")
        fence = "```"
        while fence in code:  # a fence longer than any run of backticks in the code
            fence += "`"
        return buffer.write(f"\n{fence}{self.language}\n{code}\n{fence}\n")


class _HighlightTag(Tag):
    """``{% highlight ruby linenos %}…{% endhighlight %}`` → a fenced code block."""

    name = "highlight"
    end = "endhighlight"
    block = True

    def parse(self, stream: TokenStream) -> Node:
        token = stream.eat(TOKEN_TAG)
        words = _expression(stream).split()
        language = re.sub(r"[^\w+#.-]", "", words[0]) if words else ""
        if stream.current.kind == TOKEN_EXPRESSION:
            next(stream)
        block = get_parser(self.env).parse_block(stream, (self.end,))
        stream.expect(TOKEN_TAG, value=self.end)
        return _HighlightNode(token, language, block)


def _relative_url(value: object) -> str:
    state = _current.get(None)
    base = state.site.baseurl if state else ""
    text = str(value or "")
    if re.match(r"^[a-z][a-z0-9+.-]*:", text, re.IGNORECASE):
        return text
    return base + "/" + text.lstrip("/") if text else base + "/"


def _absolute_url(value: object) -> str:
    text = str(value or "")
    if re.match(r"^[a-z][a-z0-9+.-]*:", text, re.IGNORECASE):
        return text
    state = _current.get(None)
    return (state.site.url if state else "") + _relative_url(text)


def _date_to_string(value: object, *_args: object) -> str:
    day = _as_date(value)
    return f"{day.day:02d} {day:%b} {day.year}" if day else str(value or "")


def _date_to_long_string(value: object, *_args: object) -> str:
    day = _as_date(value)
    return f"{day.day:02d} {day:%B} {day.year}" if day else str(value or "")


def _as_date(value: object) -> date | None:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


_FILTERS: dict[str, Callable[..., Any]] = {
    "relative_url": _relative_url,
    "absolute_url": _absolute_url,
    "date_to_string": _date_to_string,
    "date_to_long_string": _date_to_long_string,
    "date_to_xmlschema": lambda value: str(value or ""),
    "date_to_rfc822": lambda value: str(value or ""),
    "xml_escape": lambda value: html.escape(str(value or "")),
    "cgi_escape": lambda value: quote(str(value or ""), safe=""),
    "uri_escape": lambda value: quote(str(value or ""), safe="/:?&=#%"),
    "jsonify": lambda value: json.dumps(value, default=str),
    "slugify": lambda value, *_args: re.sub(r"[^\w]+", "-", str(value or "").lower()).strip("-"),
    "number_of_words": lambda value: len(str(value or "").split()),
    "markdownify": lambda value: str(value or ""),  # the whole post is Markdown already
    "smartify": lambda value: str(value or ""),
    "normalize_whitespace": lambda value: " ".join(str(value or "").split()),
    "array_to_sentence_string": lambda value, connector="and": _sentence(value, str(connector)),
}


def _sentence(value: object, connector: str) -> str:
    items = [str(item) for item in value] if isinstance(value, list) else [str(value)]
    if len(items) <= 2:
        return f" {connector} ".join(items)
    return ", ".join(items[:-1]) + f", {connector} " + items[-1]


def _environment(mode: Mode) -> Environment:
    env = Environment(tolerance=mode, loader=DictLoader({}))
    for tag in (_PostUrlTag, _LinkTag, _IncludeTag, _IncludeRelativeTag, _HighlightTag):
        env.add_tag(tag)
    for name, function in _FILTERS.items():
        env.add_filter(name, function)
    return env


_STRICT = _environment(Mode.STRICT)
_LAX = _environment(Mode.LAX)


@contextmanager
def _rendering(state: _Render) -> Iterator[None]:
    reset = _current.set(state)
    try:
        yield
    finally:
        _current.reset(reset)


def _one_line(error: Exception) -> str:
    lines = str(error).splitlines()
    return " ".join(lines[0].split())[:200] if lines else type(error).__name__


def render_liquid(
    source: str,
    *,
    site: Site,
    page: Mapping[str, Any],
    includes: Mapping[str, str] | None = None,
    find_post: PostFinder | None = None,
) -> tuple[str, list[str]]:
    """Resolve a post's Liquid; the text and the warnings (tags removed, and why).

    Parsed strictly first so that every unknown tag is named; then leniently, which drops
    what it cannot resolve; and if even that fails, every ``{% %}``/``{{ }}`` is stripped
    (the text of ``{% raw %}`` blocks stays).
    """
    if "{%" not in source and "{{" not in source:
        return source, []
    state = _Render(site, includes or {}, find_post, [])
    data = {
        "site": {"url": site.url, "baseurl": site.baseurl, "title": site.title},
        "page": dict(page),
    }
    with _rendering(state):
        try:
            return _STRICT.from_string(source).render(**data), state.warnings
        except LiquidError as error:
            state.warnings.append(
                f"Liquid: {_one_line(error)}; what it could not resolve was removed"
            )
        try:
            return _LAX.from_string(source).render(**data), state.warnings
        except Exception as error:  # noqa: BLE001 - any failure falls back to stripping
            state.warnings.append(f"Liquid could not be read ({_one_line(error)}): tags stripped")
    return _strip_tags(source), state.warnings


def _strip_tags(source: str) -> str:
    raws: list[str] = []

    def keep(match: re.Match[str]) -> str:
        raws.append(match.group(1))
        return f"\x00{len(raws) - 1}\x00"

    text = _ANY_TAG.sub("", _RAW_BLOCK.sub(keep, source))
    return re.sub(r"\x00(\d+)\x00", lambda match: raws[int(match.group(1))], text)


# --- the whole post -------------------------------------------------------------------------


def page_variables(
    site: Site, front_matter: Mapping[str, Any], slug: str, title: str, when: date | None
) -> dict[str, Any]:
    """``page.*``: the front matter, and what Jekyll adds (url, slug, date, categories)."""
    page = dict(front_matter)
    page.setdefault("title", title)
    page.setdefault("slug", slug)
    page["date"] = str(front_matter.get("date") or (when.isoformat() if when else ""))
    page["categories"] = categories_of(front_matter)
    address = post_url(site, front_matter, slug, when)
    page["url"] = address[len(site.root):] if site.root and address.startswith(site.root) else (
        address or post_path(front_matter, slug, when)
    )
    return page
