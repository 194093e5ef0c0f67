"""Making and changing templates: create, copy, edit, delete, check and preview.

A template is checked when it is saved: both parts render with sample data (the same
sandbox as a send) and the MJML compiles. An error names the part and the line of the
template's own source, so the editor can jump to it: Jinja reports its line; for MJML the
source is compiled once more with its Jinja tags blanked out (every line kept where it was),
so mrml's byte position, or failing that expat's line, is a line the editor can see.

Built-in templates are read-only (they are refreshed from the files on upgrade); copy one to
change it. A template cannot be deleted while an issue that is not sent yet uses it, nor the
built-in transactional one, which ``POST /api/v1/tx`` relies on.
"""

from __future__ import annotations

import re
import traceback
import xml.parsers.expat
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask import current_app
from sqlalchemy import select, update

from newsletter.content.markdown import markdown_to_text, render_markdown
from newsletter.content.models import Issue, IssueStatus, Template, TemplateKind
from newsletter.content.templates import (
    BUILTIN_NAMES,
    TRANSACTIONAL_NAME,
    builtin_templates,
    get_template,
)
from newsletter.delivery.transactional import TransactionalMessage
from newsletter.errors import Conflict, TemplateError, TemplateSourceError, ValidationError
from newsletter.extensions import db
from newsletter.mail.render import (
    MAX_RENDERED_CHARS,
    compile_mjml,
    format_date,
    jinja_environment,
    tidy_text,
)

MAX_NAME = 100
#: the most characters either part of a template may hold
MAX_SOURCE = 200_000
#: issues in these statuses still need their template (they render it, or may again)
UNSENT = (IssueStatus.DRAFT, IssueStatus.SCHEDULED, IssueStatus.SENDING, IssueStatus.PAUSED)


@dataclass(frozen=True)
class Variable:
    """One name a template may use, for the list beside the editor."""

    name: str
    description: str


#: What each kind of template sees (``mail/render.issue_context`` and
#: ``delivery/transactional.template_context``).
VARIABLES: dict[TemplateKind, tuple[Variable, ...]] = {
    TemplateKind.ISSUE: (
        Variable("issue.subject", "the subject line"),
        Variable("issue.preheader", "the preview text shown after the subject"),
        Variable("issue.intro_html", "the intro as HTML (use |safe); empty when none"),
        Variable("issue.intro_text", "the intro as plain text"),
        Variable("statements", "the statements in order; each has the fields below"),
        Variable("statement.title", "its title"),
        Variable("statement.author", "its author ('' when none)"),
        Variable("statement.date", "its date as people write it: 3 November 2020"),
        Variable("statement.html", "its cleaned HTML (use |safe)"),
        Variable("statement.text", "its plain text"),
        Variable("statement.url", "its page (front matter url, or its place in the archive; "
                 "'' for an issue with no public page)"),
        Variable("statement.slug", "its slug, for anchors"),
        Variable("statement.front_matter", "every key of its front matter"),
        Variable("subscriber.name", "the reader's name (\"friend\" when none), per message"),
        Variable("unsubscribe_url", "the reader's one-click unsubscribe link, per message"),
        Variable("manage_url", "the reader's preferences page, per message"),
        Variable("archive_url", "the issue's public page ('' when it is not public: test "
                 "with {% if archive_url %})"),
        Variable("public", "true when the issue goes to the public archive"),
        Variable("list_name", "the names of the issue's lists"),
        Variable("org_name", "who sends (SITE_NAME)"),
        Variable("base_url", "this site's address"),
    ),
    TemplateKind.TRANSACTIONAL: (
        Variable("subject", "the subject, as rendered"),
        Variable("data", "the JSON object the caller sent, e.g. data.code"),
        Variable("to.email", "the recipient's address"),
        Variable("to.name", "the recipient's name as given ('' when none)"),
        Variable("subscriber.name", "the recipient's name (\"friend\" when none)"),
        Variable("org_name", "who sends (SITE_NAME)"),
        Variable("base_url", "this site's address"),
    ),
}

_SAMPLE_MARKDOWN = (
    (
        "A first statement",
        "Maria Rossi",
        "We met on **Tuesday** and agreed on three things.\n\n"
        "1. Open the hall on Saturdays\n2. Publish the minutes\n3. Meet again in March\n\n"
        "> Nothing about us without us.\n\nRead [the full minutes](https://example.org/minutes).",
    ),
    (
        "A second statement",
        "",
        "A shorter one, so the digest has something to list.\n\n"
        "| Day | Place |\n| --- | --- |\n| Saturday | The hall |\n",
    ),
)


def sample_issue_context(*, statements: int = 2) -> dict[str, Any]:
    """What an issue template sees, with sample values (for checking and previews)."""
    base_url = str(current_app.config.get("BASE_URL") or "http://localhost").rstrip("/")
    archive_url = f"{base_url}/archive/sample-issue"
    items = []
    for index, (title, author, body) in enumerate(_SAMPLE_MARKDOWN[:statements]):
        slug = f"sample-{index + 1}"
        items.append({
            "title": title,
            "author": author,
            "date": format_date(date(2026, 11, 3)),
            "date_iso": "2026-11-03",
            "slug": slug,
            "html": render_markdown(body),
            "text": markdown_to_text(body),
            "url": f"{archive_url}#{slug}",
            "front_matter": {"title": title, "author": author},
        })
    intro = "Welcome to this month's issue."
    return {
        "issue": {
            "id": 0,
            "subject": "A sample issue",
            "preheader": "What happened this month",
            "intro_html": render_markdown(intro),
            "intro_text": markdown_to_text(intro),
        },
        "statements": items,
        "subscriber": {"name": "Ada"},
        "unsubscribe_url": f"{base_url}/unsubscribe/sample",
        "manage_url": f"{base_url}/manage/sample",
        "archive_url": archive_url,
        "public": True,
        "base_url": base_url,
        "list_name": "Sample list",
        "org_name": str(current_app.config.get("SITE_NAME") or "Newsletter"),
    }


class SampleValue(str):
    """A stand-in for a value of the caller's ``data`` that the sample does not hold: it
    reads as ``[name]`` and has every attribute and key, so a template that uses
    ``data.order.id`` can be checked without knowing what callers will send."""

    def __getattr__(self, name: str) -> SampleValue:
        if name.startswith("_"):
            raise AttributeError(name)
        return SampleValue(f"[{name}]")

    def __getitem__(self, key: Any) -> SampleValue:
        return SampleValue(f"[{key}]")


class SampleData(dict[str, Any]):
    """The sample ``data`` of a transactional template: its keys, and a ``SampleValue`` for
    any other."""

    def __missing__(self, key: str) -> SampleValue:
        return SampleValue(f"[{key}]")


def sample_transactional_context() -> dict[str, Any]:
    """What a transactional template sees, with sample values (any ``data.KEY`` works)."""
    base_url = str(current_app.config.get("BASE_URL") or "http://localhost").rstrip("/")
    return {
        "data": SampleData({
            "heading": "Your order is on its way",
            "body": "Thank you for your order.\n\nIt left our hall this morning.",
            "button_url": f"{base_url}/orders/sample",
            "button_label": "Track the order",
            "code": "123456",
        }),
        "subject": "Your order",
        "to": {"email": "ada@example.org", "name": "Ada"},
        "subscriber": {"email": "ada@example.org", "name": "Ada"},
        "base_url": base_url,
        "org_name": str(current_app.config.get("SITE_NAME") or "Newsletter"),
    }


def sample_context(kind: TemplateKind) -> dict[str, Any]:
    """Sample data for a template of ``kind``."""
    if kind is TemplateKind.TRANSACTIONAL:
        return sample_transactional_context()
    return sample_issue_context()


# --- checking -------------------------------------------------------------------------------


def render_sample(mjml: str, text: str, kind: TemplateKind) -> tuple[str, str]:
    """Both parts rendered with sample data: (html, text).

    :raises TemplateSourceError: a part does not render or the MJML does not compile; the
        error names the part and, where it can be found, the line of the source.
    """
    context = sample_context(kind)
    mjml_out = _render_part("mjml", mjml, context)
    text_out = tidy_text(_render_part("text", text, context))
    try:
        html = compile_mjml(mjml_out, "template")
    except TemplateError as error:
        line = mjml_error_line(mjml, error.reason)
        reason = error.reason.removeprefix("MJML: ")
        if line is None:
            reason += " (in the MJML as rendered with the sample data)"
        raise TemplateSourceError("mjml", line, reason) from None
    return html, text_out


def _render_part(part: str, source: str, context: dict[str, Any]) -> str:
    env = jinja_environment(html=part == "mjml")
    try:
        template = env.from_string(source)
    except Exception as error:  # noqa: BLE001 - TemplateSyntaxError, SecurityError …
        raise TemplateSourceError(part, getattr(error, "lineno", None),
                                  _message(error)) from None
    try:
        output = template.render(context)
    except Exception as error:  # noqa: BLE001 - undefined names, {{ 1 // 0 }}: the template's
        raise TemplateSourceError(part, _template_line(error), _message(error)) from None
    if len(output) > MAX_RENDERED_CHARS:
        raise TemplateSourceError(
            part, None, f"it renders to more than {MAX_RENDERED_CHARS} characters"
        )
    return output


def _message(error: Exception) -> str:
    message = getattr(error, "message", None) or str(error) or type(error).__name__
    return str(message)


def _template_line(error: BaseException) -> int | None:
    """The template line Jinja's rewritten traceback points to (its frames are
    ``<template>``), the innermost one."""
    line = None
    for frame in traceback.extract_tb(error.__traceback__):
        if frame.filename == "<template>":
            line = frame.lineno
    return line


_JINJA_TAG = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)
_POSITION = re.compile(r"position (\d+):(\d+)")
_ENTITY = re.compile(r"&[A-Za-z][A-Za-z0-9]*;")


def blank_jinja(source: str) -> str:
    """The source with every Jinja tag replaced: an expression by ``x``, a statement or a
    comment by nothing, the newlines inside each kept, so every line stays where it was."""

    def blank(match: re.Match[str]) -> str:
        newlines = "\n" * match.group(0).count("\n")
        return ("x" if match.group(0).startswith("{{") else "") + newlines

    return _JINJA_TAG.sub(blank, source)


def mjml_error_line(source: str, reason: str = "") -> int | None:
    """The line of the template source where its MJML goes wrong, or None.

    The source is compiled again with its Jinja tags blanked out: mrml reports a byte
    position for some errors (mapped to a line); for the others (an unclosed tag, a stray
    character), expat's line for the first malformed tag is the place to look.
    """
    plain = blank_jinja(source)
    try:
        compile_mjml(plain)
    except TemplateError as error:
        reason = error.reason
    else:
        if not reason:
            return None
    found = _POSITION.search(reason)
    if found:
        offset = int(found.group(1))
        return plain.encode("utf-8")[:offset].count(b"\n") + 1
    parser = xml.parsers.expat.ParserCreate()
    try:
        # Entities like &nbsp; are fine in MJML; expat knows only XML's five.
        parser.Parse(_ENTITY.sub(lambda m: " " * len(m.group(0)), plain), True)
    except xml.parsers.expat.ExpatError as error:
        return int(error.lineno)
    return None


# --- saving ---------------------------------------------------------------------------------


def _clean_name(name: str | None, *, exclude_id: int | None = None) -> str:
    cleaned = " ".join((name or "").split())
    if not cleaned:
        raise ValidationError("A template needs a name.", field="name")
    if len(cleaned) > MAX_NAME:
        raise ValidationError(f"The name is longer than {MAX_NAME} characters.", field="name")
    if cleaned.isdigit():  # POST /tx takes an id or a name: a number would be read as an id
        raise ValidationError("A template's name cannot be only digits.", field="name")
    if cleaned in BUILTIN_NAMES:
        raise Conflict(f"{cleaned!r} is the name of a built-in template.", field="name")
    query = select(Template.id).where(Template.name == cleaned)
    if exclude_id is not None:
        query = query.where(Template.id != exclude_id)
    if db.session.scalar(query) is not None:
        raise Conflict(f"There is already a template called {cleaned!r}.", field="name")
    return cleaned


def _clean_source(value: str | None, part: str) -> str:
    source = (value or "").replace("\r\n", "\n")
    if not source.strip():
        raise TemplateSourceError(part, None, "it is empty")
    if "\x00" in source:
        raise TemplateSourceError(part, None, "it contains a NUL character")
    if len(source) > MAX_SOURCE:
        raise TemplateSourceError(part, None, f"it is longer than {MAX_SOURCE} characters")
    return source


def create_template(*, name: str, kind: TemplateKind | str, mjml: str, text: str) -> Template:
    """Make a template once both parts render with sample data.

    :raises ValidationError: no name, or a part is empty (``field`` names it).
    :raises TemplateSourceError: a part does not render or compile (with its line).
    :raises Conflict: the name is taken.
    """
    kind = TemplateKind(kind)
    builtin_templates()  # the built-in names are taken from the start
    cleaned = _clean_name(name)
    mjml, text = _clean_source(mjml, "mjml"), _clean_source(text, "text")
    render_sample(mjml, text, kind)
    template = Template(name=cleaned, kind=kind, mjml=mjml, text=text, builtin=False)
    db.session.add(template)
    db.session.commit()
    return template


def update_template(template_id: int, **fields: Any) -> Template:
    """Change a template's ``name``, ``kind``, ``mjml`` or ``text`` (those given).

    :raises NotFound: no such template.
    :raises Conflict: it is built in (copy it instead), or the new name is taken.
    :raises ValidationError, TemplateSourceError: as for ``create_template``.
    """
    unknown = set(fields) - {"name", "kind", "mjml", "text"}
    if unknown:
        raise TypeError(f"update_template() got unexpected fields {sorted(unknown)}")
    template = get_template(template_id)
    if template.builtin:
        raise Conflict(
            f"{template.name!r} is a built-in template and cannot be changed; copy it and "
            "change the copy.", field="template",
        )
    name = _clean_name(fields["name"], exclude_id=template.id) if "name" in fields \
        else template.name
    kind = TemplateKind(fields["kind"]) if "kind" in fields else template.kind
    mjml = _clean_source(fields["mjml"], "mjml") if "mjml" in fields else template.mjml
    text = _clean_source(fields["text"], "text") if "text" in fields else template.text
    if kind is not template.kind and kind is TemplateKind.TRANSACTIONAL and _unsent_users(
        template.id
    ):
        raise Conflict("Issues not sent yet use this template; it must stay an issue "
                       "template.", field="kind")
    render_sample(mjml, text, kind)
    template.name, template.kind, template.mjml, template.text = name, kind, mjml, text
    db.session.commit()
    return template


def copy_template(template_id: int, name: str | None = None) -> Template:
    """A new template with the same parts and kind (named "Copy of …" unless ``name``).

    :raises NotFound: no such template.
    :raises Conflict: ``name`` is taken.
    """
    source = get_template(template_id)
    if name is None:
        name = f"Copy of {source.name}"
        number = 2
        while db.session.scalar(select(Template.id).where(Template.name == name)) is not None:
            name, number = f"Copy of {source.name} ({number})", number + 1
    template = Template(
        name=_clean_name(name), kind=source.kind, mjml=source.mjml, text=source.text,
        builtin=False,
    )
    db.session.add(template)
    db.session.commit()
    return template


def _unsent_users(template_id: int) -> list[Issue]:
    return list(db.session.scalars(
        select(Issue).where(Issue.template_id == template_id, Issue.status.in_(UNSENT))
        .order_by(Issue.id)
    ))


def delete_template(template_id: int) -> None:
    """Delete a template. Sent and cancelled issues that used it keep what was sent (their
    rendering) and forget the template.

    :raises NotFound: no such template.
    :raises Conflict: it is built in, or an issue not sent yet uses it (the message names
        the issues).
    """
    template = get_template(template_id)
    if template.name == TRANSACTIONAL_NAME and template.builtin:
        raise Conflict("The built-in transactional template cannot be deleted: "
                       "POST /api/v1/tx relies on it.", field="template")
    if template.builtin:
        raise Conflict(f"{template.name!r} is a built-in template and cannot be deleted.",
                       field="template")
    users = _unsent_users(template.id)
    if users:
        named = ", ".join(f"#{issue.id} “{issue.subject}”" for issue in users[:5])
        more = f" and {len(users) - 5} more" if len(users) > 5 else ""
        raise Conflict(
            f"{template.name!r} is used by issues not sent yet ({named}{more}); choose "
            "another template for them first.", field="template",
        )
    db.session.execute(
        update(Issue).where(Issue.template_id == template.id).values(template_id=None)
    )
    db.session.execute(
        update(TransactionalMessage)
        .where(TransactionalMessage.template_id == template.id)
        .values(template_id=None)
    )
    db.session.delete(template)
    db.session.commit()


def preview(template: Template) -> tuple[str, str]:
    """The template rendered with sample data: (html, text).

    :raises TemplateSourceError: it does not render.
    """
    return render_sample(template.mjml, template.text, template.kind)
