"""Writing in the admin: statements created, edited and deleted; issues deleted or hidden.

A sent issue keeps what it sent: its rendered HTML and text are stored when sending starts
(``Issue.rendered_*``), and the archive shows that snapshot. So a statement used only by
issues that have such a snapshot can be deleted: it is detached from them first. One still
used by an issue that has not started (a draft, a scheduled send) is refused, naming it.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy import delete, select

from newsletter.content.issues import get_issue
from newsletter.content.models import Issue, IssueStatement, IssueStatus, Statement
from newsletter.content.statements import (
    MAX_AUTHOR,
    MAX_SLUG,
    MAX_STATEMENT_CHARS,
    MAX_TITLE,
    get_statement,
    slugify,
)
from newsletter.errors import IssueStateError, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow

#: an issue in one of these may be deleted (nothing of it ever reached anyone)
DELETABLE = (IssueStatus.DRAFT,)
#: an issue in one of these has started: it stays, and may only be hidden
HIDEABLE = (IssueStatus.SENT, IssueStatus.CANCELLED, IssueStatus.PAUSED)


def _fields(
    *, title: str, body: str, author: str, when: date | None, slug: str
) -> dict[str, object]:
    title = " ".join((title or "").split())
    if not title:
        raise ValidationError("A statement needs a title.", field="title")
    if len(title) > MAX_TITLE:
        raise ValidationError(f"The title is longer than {MAX_TITLE} characters.", field="title")
    body = (body or "").replace("\r\n", "\n")
    if not body.strip():
        raise ValidationError("Write the statement's text.", field="body")
    if len(body) > MAX_STATEMENT_CHARS:
        raise ValidationError(
            f"The text is longer than {MAX_STATEMENT_CHARS:,} characters.", field="body"
        )
    author = " ".join((author or "").split())
    if len(author) > MAX_AUTHOR:
        raise ValidationError(f"The author is longer than {MAX_AUTHOR} characters.", field="author")
    for name, value in (("title", title), ("body", body), ("author", author), ("slug", slug)):
        if "\x00" in value:
            raise ValidationError(f"The {name} contains a NUL character.", field=name)
    clean_slug = slugify(slug or title)[:MAX_SLUG]
    if not clean_slug:
        raise ValidationError("Cannot make a slug from the title; give one.", field="slug")
    return {
        "title": title,
        "body": body.strip("\n") + "\n",
        "author": author,
        "date": when,
        "slug": clean_slug,
    }


def _check_slug_free(slug: str, statement_id: int | None) -> None:
    other = db.session.scalar(select(Statement).where(Statement.slug == slug))
    if other is not None and other.id != statement_id:
        raise ValidationError(
            f"Another statement (“{other.title}”) has the slug {slug}; choose another.",
            field="slug",
        )


def create_statement(
    *, title: str, body: str, author: str = "", when: date | None = None, slug: str = ""
) -> Statement:
    """Write a new statement.

    :raises ValidationError: a missing title or text, a field too long, a slug in use.
    """
    values = _fields(title=title, body=body, author=author, when=when, slug=slug)
    _check_slug_free(str(values["slug"]), None)
    statement = Statement(front_matter={}, **values)
    db.session.add(statement)
    db.session.commit()
    return statement


def update_statement(
    statement_id: int,
    *,
    title: str,
    body: str,
    author: str = "",
    when: date | None = None,
    slug: str = "",
) -> Statement:
    """Change a statement. Issues already sent keep the text they sent (their snapshot).

    :raises NotFound: no such statement.
    :raises ValidationError: as for ``create_statement``.
    """
    statement = get_statement(statement_id)
    values = _fields(title=title, body=body, author=author, when=when, slug=slug or statement.slug)
    _check_slug_free(str(values["slug"]), statement.id)
    for name, value in values.items():
        setattr(statement, name, value)
    db.session.commit()
    return statement


class StatementInUse(ValidationError):
    """The statement is part of issues that have not been sent yet."""

    def __init__(self, statement: Statement, issues: list[Issue]) -> None:
        names = ", ".join(f"“{issue.subject}” ({issue.status.value})" for issue in issues)
        super().__init__(
            f"“{statement.title}” is in {names}, not sent yet: take it out of "
            f"{'that issue' if len(issues) == 1 else 'those issues'} first.",
            field="statement",
        )
        self.statement_id = statement.id
        self.issue_ids = [issue.id for issue in issues]


def delete_statement(statement_id: int) -> int:
    """Delete a statement; issues that already sent it keep their snapshot of it.

    :returns: how many sent issues it was detached from.
    :raises StatementInUse: an issue that has not rendered its snapshot still uses it.
    :raises NotFound: no such statement.
    """
    statement = get_statement(statement_id)
    rows = db.session.scalars(
        select(Issue).join(IssueStatement).where(IssueStatement.statement_id == statement.id)
    ).unique().all()
    pending = [issue for issue in rows if issue.rendered_html is None]
    if pending:
        raise StatementInUse(statement, list(pending))
    db.session.execute(delete(IssueStatement).where(IssueStatement.statement_id == statement.id))
    db.session.delete(statement)
    db.session.commit()
    db.session.expire_all()
    return len(rows)


def mark_previewed(statement: Statement) -> None:
    """Record that an editor has seen the statement rendered."""
    statement.previewed_at = utcnow()
    db.session.commit()


def delete_issue(issue_id: int) -> None:
    """Delete an issue that was never sent (a draft).

    :raises IssueStateError: the issue is scheduled, sending or done (hide it instead).
    """
    issue = get_issue(issue_id)
    if issue.status not in DELETABLE or issue.started_at is not None:
        raise IssueStateError(issue.id, issue.status.value, "delete")
    db.session.delete(issue)
    db.session.commit()


def set_hidden(issue_id: int, hidden: bool) -> Issue:
    """Hide a sent issue from the admin's list (or show it again); it is not changed.

    :raises IssueStateError: the issue has not been sent (a draft is deleted, not hidden).
    """
    issue = get_issue(issue_id)
    if issue.status not in HIDEABLE:
        raise IssueStateError(issue.id, issue.status.value, "hide")
    issue.hidden_at = utcnow() if hidden else None
    db.session.commit()
    return issue
