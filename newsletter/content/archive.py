"""The public archive's rules: which issues are public, and their permalinks.

An issue is public when it was sent (or is being sent) to at least one public list and no
editor kept it out. An issue sent only to private lists is for their members: the archive,
its pages and its feed never show it, and its mail carries no "view in browser" link.

Each issue gets a slug from its subject when sending starts (``assign_slug``), unique, and
never changed afterwards, so ``/archive/<slug>`` is a permalink; ``/archive/<id>`` redirects.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import ColumnElement, and_, select

from newsletter.audience.models import MailingList
from newsletter.content.models import Issue, IssueStatus
from newsletter.extensions import db
from newsletter.models import get_or_raise

SLUG_LENGTH = 80
#: paths under /archive/ that are not issues
RESERVED = frozenset({"image"})


def slugify(text: str) -> str:
    """A URL slug from a subject: ASCII letters and digits joined by ``-`` (``issue`` when
    nothing is left)."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    return slug[:SLUG_LENGTH].rstrip("-") or "issue"


def assign_slug(issue: Issue) -> str:
    """The issue's slug, made now from its subject if it has none (the caller commits).

    A slug taken by another issue gets ``-2``, ``-3`` …; an all-digit slug (or a reserved
    word) gets ``issue-`` in front, so it can never be read as an old ``/archive/<id>`` link.
    """
    if issue.slug:
        return issue.slug
    base = slugify(issue.subject or "")
    if base.isdigit() or base in RESERVED:
        base = f"issue-{base}"
    taken = set(
        db.session.scalars(
            select(Issue.slug).where(Issue.slug.like(f"{base}%"), Issue.id != issue.id)
        )
    )
    slug, number = base, 2
    while slug in taken:
        slug, number = f"{base}-{number}", number + 1
    issue.slug = slug
    return slug


def public_condition() -> ColumnElement[bool]:
    """SQL: an issue the archive shows (sent, to a public list, not kept out)."""
    return and_(
        Issue.status == IssueStatus.SENT,
        Issue.kept_out.is_(False),
        Issue.lists.any(MailingList.public.is_(True)),
    )


def meant_for_public(issue: Issue) -> bool:
    """True when the issue, once sent, belongs in the archive (a public list, not kept out)."""
    return not issue.kept_out and any(lst.public for lst in issue.lists)


def set_kept_out(issue_id: int, kept_out: bool) -> Issue:
    """Keep an issue out of the archive (or let it back in), whatever its status.

    :raises NotFound: no such issue.
    """
    issue = get_or_raise(Issue, issue_id, "issue")
    issue.kept_out = kept_out
    db.session.commit()
    return issue


def archive_state(issue: Issue) -> str:
    """Where the issue stands with the archive: ``public`` (shown), ``kept_out``,
    ``private`` (only private lists, or none), or ``not_sent`` (public once sent)."""
    if issue.kept_out:
        return "kept_out"
    if not meant_for_public(issue):
        return "private"
    return "public" if issue.status is IssueStatus.SENT else "not_sent"


def archive_url(issue: Issue) -> str:
    """The issue's page in the archive: by slug once it has one, else by id (which
    redirects to the slug once there is one)."""
    base = _base_url()
    if issue.slug:
        return f"{base}/archive/{issue.slug}"
    return f"{base}/archive/{issue.id}"


def _base_url() -> str:
    if has_app_context():
        return str(current_app.config.get("BASE_URL") or "http://localhost").rstrip("/")
    return "http://localhost"


def contents_as_sent(issue: Issue) -> dict[str, Any]:
    """The intro and statements (their Markdown and what the page shows of them), to keep
    with the issue when sending starts: the archive page of a sent issue shows what was
    sent, whatever becomes of its statements later."""
    return {
        "intro": issue.intro or "",
        "statements": [
            {
                "title": statement.title,
                "slug": statement.slug,
                "author": statement.author or "",
                "date": statement.date.isoformat() if statement.date else None,
                "body": statement.body,
            }
            for statement in issue.statements
        ],
    }
