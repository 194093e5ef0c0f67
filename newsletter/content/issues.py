"""Issues: statements in order, an intro, a template and target lists; sent as one mailing.

What state a send is in and its counts: ``delivery/control/progress.py``, for every caller.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from newsletter.audience.models import MailingList
from newsletter.audience.segments.models import Segment
from newsletter.content.models import Issue, IssueStatement, IssueStatus, Statement
from newsletter.content.templates import default_template, get_template
from newsletter.errors import IssueStateError, NotFound, ValidationError
from newsletter.extensions import db
from newsletter.models import get_or_raise

MAX_SUBJECT = 300
MAX_PREHEADER = 300
_EDITABLE = {
    "subject", "statement_ids", "list_slugs", "segment_ids", "template_id", "preheader", "intro",
    "sender_name",
}
MAX_SENDER_NAME = 200


def create_issue(
    *,
    subject: str,
    statement_ids: list[int],
    list_slugs: list[str],
    template_id: int | None = None,
    preheader: str = "",
    intro: str = "",
    sender_name: str = "",
    segment_ids: list[int] | None = None,
) -> Issue:
    """Make a draft issue for lists, segments or both (segments narrow the lists' audience;
    with no lists, they choose among everyone confirmed on some list).

    :raises ValidationError: an empty subject, no statements, or neither lists nor segments
        (``field`` names it).
    :raises NotFound: a statement, list, segment or template that does not exist (``field``
        names it).
    """
    issue = Issue(status=IssueStatus.DRAFT)
    _apply(
        issue,
        subject=subject,
        statement_ids=statement_ids,
        list_slugs=list_slugs,
        segment_ids=segment_ids or [],
        template_id=template_id,
        preheader=preheader,
        intro=intro,
        sender_name=sender_name,
    )
    db.session.add(issue)
    db.session.commit()
    return issue


def update_issue(issue_id: int, **fields: Any) -> Issue:
    """Change a draft issue; only the fields given change (same names as ``create_issue``).

    :raises IssueStateError: the issue is not a draft any more.
    :raises ValidationError, NotFound: as for ``create_issue``.
    """
    unknown = set(fields) - _EDITABLE
    if unknown:
        raise TypeError(f"update_issue() got unexpected fields {sorted(unknown)}")
    issue = get_issue(issue_id)
    if issue.status is not IssueStatus.DRAFT:
        raise IssueStateError(issue.id, issue.status.value, "edit")
    try:
        _apply(issue, **fields)
    except Exception:
        db.session.rollback()
        raise
    db.session.commit()
    return issue


def _apply(issue: Issue, **fields: Any) -> None:
    """Validate every given field first, then set them, so a bad field changes nothing."""
    values: dict[str, Any] = {}
    for name in ("subject", "preheader", "intro", "sender_name"):
        if "\x00" in str(fields.get(name) or ""):  # PostgreSQL stores no NUL in text
            raise ValidationError(f"The {name} contains a NUL character.", field=name)
    if "subject" in fields:
        values["subject"] = _subject(fields["subject"])
    if "preheader" in fields:
        values["preheader"] = _preheader(fields["preheader"])
    if "intro" in fields:
        values["intro"] = (fields["intro"] or "").strip()
    if "sender_name" in fields:
        values["sender_name"] = _sender_name(fields["sender_name"])
    if "statement_ids" in fields:
        values["statements"] = _statements(fields["statement_ids"])
    if "list_slugs" in fields:
        values["lists"] = _lists(fields["list_slugs"])
    if "segment_ids" in fields:
        values["segments"] = _segments(fields["segment_ids"])
    if "lists" in values or "segments" in values:
        lists = values.get("lists", issue.lists)
        segments = values.get("segments", issue.segments)
        if not lists and not segments:
            raise ValidationError("Choose at least one list or segment.", field="lists")
    if "template_id" in fields:
        template_id = fields["template_id"]
        values["template"] = (
            default_template() if template_id is None else get_template(int(template_id))
        )
    for name in ("subject", "preheader", "intro", "sender_name", "lists", "segments", "template"):
        if name in values:
            setattr(issue, name, values[name])
    if "statements" in values:
        _set_statements(issue, values["statements"])


def _subject(value: str | None) -> str:
    subject = " ".join((value or "").split())  # one line: it becomes a mail header
    if not subject:
        raise ValidationError("An issue needs a subject.", field="subject")
    if len(subject) > MAX_SUBJECT:
        raise ValidationError(
            f"The subject is longer than {MAX_SUBJECT} characters.", field="subject"
        )
    return subject


def _preheader(value: str | None) -> str:
    preheader = " ".join((value or "").split())
    if len(preheader) > MAX_PREHEADER:
        raise ValidationError(
            f"The preheader is longer than {MAX_PREHEADER} characters.", field="preheader"
        )
    return preheader


def _sender_name(value: str | None) -> str:
    # A display name only: quotes, brackets and @ would make it look like another address.
    name = " ".join((value or "").split())
    if len(name) > MAX_SENDER_NAME:
        raise ValidationError(
            f"The sender name is longer than {MAX_SENDER_NAME} characters.", field="sender_name"
        )
    if any(char in name for char in '<>@"'):
        raise ValidationError(
            "The sender name is a name only: no <, >, @ or quotes.", field="sender_name"
        )
    return name


def _statements(statement_ids: list[int] | None) -> list[Statement]:
    ids: list[int] = []
    for value in statement_ids or []:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{value!r} is not a statement id.", field="statements") from None
        if number not in ids:  # the same statement twice would only repeat it
            ids.append(number)
    if not ids:
        raise ValidationError("Choose at least one statement.", field="statements")
    found = {s.id: s for s in db.session.scalars(select(Statement).where(Statement.id.in_(ids)))}
    for number in ids:
        if number not in found:
            raise _not_found("statement", number, "statements")
    return [found[number] for number in ids]


def _lists(list_slugs: list[str] | None) -> list[MailingList]:
    slugs = list(dict.fromkeys(str(slug).strip() for slug in list_slugs or [] if str(slug).strip()))
    if not slugs:
        return []
    query = select(MailingList).where(MailingList.slug.in_(slugs))
    found = {lst.slug: lst for lst in db.session.scalars(query)}
    for slug in slugs:
        if slug not in found:
            raise _not_found("list", slug, "lists")
    return [found[slug] for slug in slugs]


def _segments(segment_ids: list[int] | None) -> list[Segment]:
    ids: list[int] = []
    for value in segment_ids or []:
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise ValidationError(f"{value!r} is not a segment id.", field="segments") from None
        if number not in ids:
            ids.append(number)
    found = {s.id: s for s in db.session.scalars(select(Segment).where(Segment.id.in_(ids)))}
    for number in ids:
        if number not in found:
            raise _not_found("segment", number, "segments")
    return [found[number] for number in ids]


def _set_statements(issue: Issue, statements: list[Statement]) -> None:
    # Reuse the rows of statements that stay, so the (issue, statement) key never collides.
    existing = {item.statement_id: item for item in issue.items}
    items = [existing.get(s.id) or IssueStatement(statement=s) for s in statements]
    issue.items = items
    issue.items.reorder()  # type: ignore[attr-defined]


def _not_found(kind: str, key: object, field: str) -> NotFound:
    error = NotFound(kind, key)
    error.field = field
    return error


def get_issue(issue_id: int) -> Issue:
    """The issue with this id.

    :raises NotFound: no such issue.
    """
    return get_or_raise(Issue, issue_id, "issue")


def issue_ids_page(*, before: int | None, limit: int) -> list[int]:
    """The ids of up to ``limit`` issues, newest (highest id) first, below ``before``."""
    query = select(Issue.id).order_by(Issue.id.desc()).limit(limit)
    if before is not None:
        query = query.where(Issue.id < before)
    return [int(issue_id) for issue_id in db.session.scalars(query)]


def issues_with_targets(issue_ids: list[int]) -> list[Issue]:
    """These issues, newest first, with their statements, lists and segments loaded in a
    query each (for a listing that shows them all)."""
    query = (
        select(Issue)
        .where(Issue.id.in_(issue_ids))
        .order_by(Issue.id.desc())
        .options(
            selectinload(Issue.items), selectinload(Issue.lists), selectinload(Issue.segments)
        )
    )
    return list(db.session.scalars(query))


def list_issues() -> list[Issue]:
    """Every issue, newest first."""
    query = select(Issue).order_by(Issue.created_at.desc(), Issue.id.desc())
    return list(db.session.scalars(query))

