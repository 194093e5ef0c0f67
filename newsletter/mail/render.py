"""Rendering an issue: Jinja into the MJML template, ``mjml2html`` once, and a text part.

Per-recipient values stay as placeholders in the rendered HTML and text and are filled per
message by ``MessageSkeleton.personalise`` (or ``fill_placeholders``). Templates come from the
database and may be edited in the admin, so they run in Jinja's sandbox; the MJML pass
autoescapes, the text pass does not (it is plain text). Statement HTML is inserted with
``|safe`` because ``render_markdown`` has already cleaned it with nh3.
"""

from __future__ import annotations

import functools
import html as html_lib
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import jinja2
from flask import current_app, has_app_context
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment
from mjml import mjml2html

from newsletter.content.archive import archive_url as issue_archive_url
from newsletter.content.archive import meant_for_public
from newsletter.content.compose import render_body
from newsletter.content.models import Issue, Template
from newsletter.content.statements import statement_url
from newsletter.content.templates import default_template
from newsletter.errors import TemplateError

# What the templates see as {{ subscriber.name }}, {{ unsubscribe_url }}, {{ manage_url }}
# while rendering once per issue; replaced per recipient.
PLACEHOLDERS = {
    "name": "%%NL-NAME%%",
    "unsubscribe_url": "%%NL-UNSUBSCRIBE-URL%%",
    "manage_url": "%%NL-MANAGE-URL%%",
}
#: put in at send, not seen by templates: the open and click tracking token of an issue that
#: tracks (``delivery/analytics/tracking.py``); the skeleton fills it like the others
TRACKING_PLACEHOLDER = "%%NL-TRACK%%"
SEND_PLACEHOLDERS = {**PLACEHOLDERS, "tracking": TRACKING_PLACEHOLDER}
#: the name used when a subscriber gave none ("Hello friend,")
FALLBACK_NAME = "friend"


@dataclass(frozen=True)
class RenderedIssue:
    subject: str
    html: str  # still holding PLACEHOLDERS
    text: str  # still holding PLACEHOLDERS


#: the most characters one rendering may produce (an MJML template, a text part, a subject)
MAX_RENDERED_CHARS = 8 * 1024 * 1024
#: the longest string or list one ``*`` may make
MAX_PRODUCT_LENGTH = 1024 * 1024
#: the most bits a number made by ``**`` may have
MAX_POWER_BITS = 4096


class BoundedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, also refusing what would make a huge string from a short template:
    ``{{ 'a' * 10**8 }}`` is 17 characters of template and 100 MB of output, which the
    sandbox alone would compute. Refused: ``*`` and ``**`` with huge results, ``%`` and
    ``|format`` with huge widths, huge widths to ``center``/``ljust``/… and ``|center``,
    ``|indent``, and replacing the empty string. (Intercepted operators are not folded at
    compile time either.) What still grows, by repeated ``~``, stops at
    ``MAX_RENDERED_CHARS`` of output."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        for name in ("center", "indent", "format", "replace"):
            self.filters[name] = _bounded_filter(self.filters[name])

    def call_binop(
        self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any
    ) -> Any:
        if operator == "*":
            _check_product(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif isinstance(left, str):
            _check_format(left)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any,  # noqa: N805
             **kwargs: Any) -> Any:
        if isinstance(getattr(__obj, "__self__", None), str):  # a method of a string
            _check_arguments(getattr(__obj, "__name__", ""), args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        sandboxed = super().wrap_str_format(value)
        if sandboxed is None:
            return None
        _check_format(value.__self__)
        format_ = sandboxed

        def bounded(*args: Any, **kwargs: Any) -> str:
            _check_arguments("format", args, kwargs)  # '{:>{w}}'.format(1, w=10**9)
            return format_(*args, **kwargs)

        return bounded


def _check_product(left: Any, right: Any) -> None:
    for sequence, times in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(times, int):
            if len(sequence) * times > MAX_PRODUCT_LENGTH:
                raise SecurityError(
                    f"'*' would make more than {MAX_PRODUCT_LENGTH} items or characters"
                )


def _check_power(base: Any, exponent: Any) -> None:
    if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and exponent > 0:
        if exponent * abs(base).bit_length() > MAX_POWER_BITS:
            raise SecurityError(f"'**' would make a number of more than {MAX_POWER_BITS} bits")


#: a width or precision of seven digits or more, or one taken from the arguments (``*``)
_HUGE_WIDTH = re.compile(r"%[-#0 +]*(?:\*|\d{7,})|%[-#0 +]*\d*\.(?:\*|\d{7,})|\{[^}]*\d{7,}")


def _check_format(template: str) -> None:
    if _HUGE_WIDTH.search(template):
        raise SecurityError("a format with a huge width")


def _check_arguments(method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    values = [*args, *kwargs.values()]
    if any(isinstance(v, int) and v > MAX_PRODUCT_LENGTH for v in values):
        raise SecurityError(f"{method}() with a number over {MAX_PRODUCT_LENGTH}")
    if method == "replace" and values[:1] == [""]:
        raise SecurityError("replacing the empty string")


def _bounded_filter(function: Any) -> Any:
    """A filter that first refuses huge widths (and replacing "") among its arguments."""

    @functools.wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        strings = [a for a in args if isinstance(a, str)]
        name = function.__name__.removeprefix("do_")
        _check_arguments(name, args, kwargs)
        if name == "format" and strings:
            _check_format(strings[0])
        if name == "replace" and len(strings) > 1 and strings[1] == "":
            raise SecurityError("replacing the empty string")
        return function(*args, **kwargs)

    return bounded


def _environment(*, autoescape: bool) -> SandboxedEnvironment:
    return BoundedSandbox(
        autoescape=autoescape,
        undefined=jinja2.StrictUndefined,  # a typo in a template fails the preview, not a send
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


_MJML_ENV = _environment(autoescape=True)
_TEXT_ENV = _environment(autoescape=False)


def render_issue(issue: Issue) -> RenderedIssue:
    """Render the issue once with its template.

    :raises TemplateError: the template does not render (Jinja or MJML), with the reason.
    """
    template = _template_of(issue)
    context = issue_context(issue)
    mjml_source = _render(_MJML_ENV, template.mjml, context, template.name)
    html = compile_mjml(mjml_source, template.name)
    text = tidy_text(_render(_TEXT_ENV, template.text, context, template.name))
    return RenderedIssue(subject=issue.subject, html=html, text=text)


def _template_of(issue: Issue) -> Template:
    if issue.template is not None:
        return issue.template

    return default_template()


def issue_context(issue: Issue) -> dict[str, Any]:
    """What an issue template sees; the per-recipient values are placeholders.

    ``archive_url`` (the "view in browser" link) is the issue's permalink when the issue is
    meant for the public archive, and empty otherwise: an issue for private lists has no
    public page to point to. It is the same for every recipient, so it costs nothing per
    message.
    """
    base_url = _config("BASE_URL", "http://localhost").rstrip("/")
    public = meant_for_public(issue)
    archive_url = issue_archive_url(issue) if public else ""
    list_name = " & ".join(lst.name for lst in issue.lists) or _org_name()
    values = body_values(issue, list_name=list_name, archive_url=archive_url)
    statements = []
    for statement in issue.statements:
        # relative links and images resolve against the post's address on its site
        base = statement_url(statement) or None
        html, text = render_body(statement.body, values, base_url=base)
        statements.append({
            "title": statement.title,
            "author": statement.author or "",
            "date": format_date(statement.date),
            "date_iso": statement.date.isoformat() if statement.date else "",
            "slug": statement.slug,
            "html": html,
            "text": text,
            "url": _statement_url(statement.front_matter, archive_url, statement.slug),
            "front_matter": statement.front_matter or {},
        })
    intro = issue.intro or ""
    intro_html, intro_text = render_body(intro, values) if intro.strip() else ("", "")
    return {
        "issue": {
            "id": issue.id,
            "subject": issue.subject,
            "preheader": issue.preheader or "",
            "intro_html": intro_html,
            "intro_text": intro_text,
        },
        "statements": statements,
        "subscriber": {"name": PLACEHOLDERS["name"]},
        "unsubscribe_url": PLACEHOLDERS["unsubscribe_url"],
        "manage_url": PLACEHOLDERS["manage_url"],
        "archive_url": archive_url,
        "public": public,
        "base_url": base_url,
        "list_name": list_name,
        "org_name": _org_name(),
    }


def body_values(
    issue: Issue | None, *, list_name: str = "", archive_url: str = ""
) -> dict[str, str]:
    """What the placeholders of intros and statements stand for (``content/compose.py``);
    the reader's name stays a per-recipient placeholder."""
    base_url = _config("BASE_URL", "http://localhost").rstrip("/")
    if issue is not None and not archive_url and meant_for_public(issue):
        archive_url = issue_archive_url(issue)  # a private issue has no page: the archive
    return {
        "name": PLACEHOLDERS["name"],
        "list_name": list_name or _org_name(),
        "org_name": _org_name(),
        "archive_url": archive_url or f"{base_url}/archive",
    }


def _statement_url(front_matter: dict[str, Any] | None, archive_url: str, slug: str) -> str:
    """The statement's own page when its front matter names one, else its place in the
    archive ('' when the issue has no public page)."""
    for key in ("canonical_url", "url", "link"):
        value = (front_matter or {}).get(key)
        if isinstance(value, str) and re.match(r"^https?://", value):
            return value
    return f"{archive_url}#{slug}" if archive_url else ""


def format_date(value: date | None) -> str:
    """A date as people write it in mail: ``3 November 2020``."""
    if value is None:
        return ""
    return f"{value.day} {value.strftime('%B')} {value.year}"


@functools.lru_cache(maxsize=64)
def _compiled(env: SandboxedEnvironment, source: str) -> jinja2.Template:
    """The template of ``source``, compiled once: compiling costs tens of milliseconds, and
    an issue's page renders the same few templates at every look."""
    return env.from_string(source)


def _render(env: SandboxedEnvironment, source: str, context: dict[str, Any], name: str) -> str:
    try:
        return _bounded(_compiled(env, source).generate(context), name)
    except TemplateError:
        raise
    except jinja2.TemplateSyntaxError as error:
        raise TemplateError(name, f"line {error.lineno}: {error.message}") from None
    except jinja2.TemplateError as error:
        raise TemplateError(name, str(error.message or error)) from None
    except Exception as error:  # noqa: BLE001 - {{ 1 // 0 }}, {% for x in 5 %}: still the template
        raise TemplateError(name, f"{type(error).__name__}: {error}") from None


def _bounded(chunks: Iterator[str], name: str) -> str:
    """The rendered text, stopping as soon as it passes ``MAX_RENDERED_CHARS``."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_RENDERED_CHARS:
            raise TemplateError(name, f"it renders to more than {MAX_RENDERED_CHARS} characters")
        parts.append(chunk)
    return "".join(parts)


def compile_mjml(source: str, name: str = "template") -> str:
    """MJML to HTML with mjml-python; web fonts off, so the mail makes no third-party requests.

    :raises TemplateError: the MJML does not compile.
    """
    try:
        return _mjml_to_html(source)
    except Exception as error:  # noqa: BLE001 - the Rust binding raises plain exceptions
        raise TemplateError(name, f"MJML: {error}") from None


@functools.lru_cache(maxsize=32)
def _mjml_to_html(source: str) -> str:
    # The same source gives the same HTML: an issue's or template's page compiles it once,
    # not at every look (a failure is not cached).
    return str(mjml2html(source, disable_comments=True, fonts={}))


def tidy_text(text: str) -> str:
    """Trailing spaces off each line, at most two blank lines in a row, one final newline."""
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    return re.sub(r"\n{4,}", "\n\n\n", "\n".join(lines)).strip("\n") + "\n"


def fill_placeholders(
    rendered: str, *, name: str, unsubscribe_url: str, manage_url: str, html: bool
) -> str:
    """Replace the placeholders for one recipient (HTML-escaped when ``html``).

    An empty name becomes ``FALLBACK_NAME`` so greetings still read well.
    """
    values = placeholder_values(name=name, unsubscribe_url=unsubscribe_url, manage_url=manage_url)
    for key, value in values.items():
        rendered = rendered.replace(
            PLACEHOLDERS[key], html_lib.escape(value, quote=True) if html else value
        )
    return rendered


def placeholder_values(*, name: str, unsubscribe_url: str, manage_url: str) -> dict[str, str]:
    """The unescaped value for each placeholder key (one line each)."""
    return {
        "name": " ".join(name.split()) or FALLBACK_NAME,
        "unsubscribe_url": "".join(unsubscribe_url.split()),
        "manage_url": "".join(manage_url.split()),
    }


def preview_issue(issue: Issue, name: str = "Reader") -> tuple[str, str]:
    """The issue as a reader would get it (html, text), with sample name and links."""
    rendered = render_issue(issue)
    sample = f"{_config('BASE_URL', 'http://localhost').rstrip('/')}/subscribe"
    values = {"name": name, "unsubscribe_url": sample, "manage_url": sample}
    return (
        fill_placeholders(rendered.html, html=True, **values),
        fill_placeholders(rendered.text, html=False, **values),
    )


def web_version(issue: Issue) -> str:
    """The issue's HTML for the public archive: no reader's name, links to /subscribe.

    An issue that was sent shows exactly what was sent; a draft is rendered now.
    """
    source = issue.rendered_html or render_issue(issue).html
    subscribe = f"{_config('BASE_URL', 'http://localhost').rstrip('/')}/subscribe"
    return fill_placeholders(
        source, name="", unsubscribe_url=subscribe, manage_url=subscribe, html=True
    )


def _config(key: str, default: str) -> str:
    if has_app_context():
        return str(current_app.config.get(key) or default)
    return default


def _org_name() -> str:
    """Who sends (``SITE_NAME``, completed by the config from the From display name)."""
    return _config("SITE_NAME", "Newsletter")


def render_template(template: Template, context: dict[str, Any]) -> tuple[str, str]:
    """Any stored template with ``context`` (transactional mail): its (html, text).

    :raises TemplateError: the template does not render (Jinja or MJML), with the reason.
    """
    mjml_source = _render(_MJML_ENV, template.mjml, context, template.name)
    html = compile_mjml(mjml_source, template.name)
    return html, tidy_text(_render(_TEXT_ENV, template.text, context, template.name))


def render_text(source: str, context: dict[str, Any], name: str) -> str:
    """A one-off plain-text Jinja string (a subject line) in the sandbox, not escaped.

    :raises TemplateError: it does not render, with the reason.
    """
    return _render(_TEXT_ENV, source, context, name)


def jinja_environment(*, html: bool) -> SandboxedEnvironment:
    """The sandbox templates render in: autoescaping for MJML (``html``), not for text."""
    return _MJML_ENV if html else _TEXT_ENV
