"""Models to JSON-ready dicts: the shapes of the API (see openapi.py for their schemas)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from newsletter.audience.models import MailingList, Subscriber, Subscription
from newsletter.content.models import Issue, Statement

#: deliveries by outcome; skipped = unsubscribed or blocklisted before their turn
COUNT_KEYS = ("total", "sent", "failed", "pending", "skipped")


def iso(value: date | datetime | None) -> str | None:
    """ISO 8601, or None."""
    return value.isoformat() if value is not None else None


def json_safe(value: Any) -> Any:
    """Front matter as JSON: YAML may hold dates (and other scalars JSON lacks)."""
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [json_safe(item) for item in value]
    if isinstance(value, date | datetime):
        return value.isoformat()
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def mailing_list(lst: MailingList) -> dict[str, Any]:
    """A list."""
    return {
        "id": lst.id,
        "slug": lst.slug,
        "name": lst.name,
        "description": lst.description,
        "optin": lst.optin.value,
        "public": lst.public,
        "created_at": iso(lst.created_at),
    }


def subscription(sub: Subscription) -> dict[str, Any]:
    """One subscriber's standing on one list."""
    return {
        "list": sub.list.slug,
        "status": sub.status.value,
        "source": sub.consent_source.value,
        "created_at": iso(sub.created_at),
        "confirmed_at": iso(sub.confirmed_at),
        "unsubscribed_at": iso(sub.unsubscribed_at),
    }


def subscriber(sub: Subscriber) -> dict[str, Any]:
    """A subscriber with their subscriptions, ordered by list slug."""
    return {
        "id": sub.id,
        "email": sub.email,
        "name": sub.name,
        "status": sub.status.value,
        "attributes": json_safe(sub.attributes or {}),
        "created_at": iso(sub.created_at),
        "subscriptions": [
            subscription(s) for s in sorted(sub.subscriptions, key=lambda s: s.list.slug)
        ],
    }


def statement_summary(statement: Statement) -> dict[str, Any]:
    """A statement without its body, for listings."""
    return {
        "id": statement.id,
        "slug": statement.slug,
        "title": statement.title,
        "author": statement.author,
        "date": iso(statement.date),
        "created_at": iso(statement.created_at),
        "updated_at": iso(statement.updated_at),
    }


def statement(statement: Statement, html: str) -> dict[str, Any]:
    """A statement in full: its Markdown source, its cleaned HTML and its front matter."""
    return {
        **statement_summary(statement),
        "markdown": statement.body,
        "html": html,
        "front_matter": json_safe(statement.front_matter or {}),
    }


def issue(issue: Issue, counts: dict[str, int]) -> dict[str, Any]:
    """An issue with its delivery counts."""
    return {
        "id": issue.id,
        "subject": issue.subject,
        "preheader": issue.preheader,
        "intro": issue.intro,
        "template": issue.template_id,
        "status": issue.status.value,
        "counts": {key: int(counts.get(key, 0)) for key in COUNT_KEYS},
        "statements": [item.statement_id for item in issue.items],
        "lists": [lst.slug for lst in issue.lists],
        "send_at": iso(issue.send_at),
        "created_at": iso(issue.created_at),
        "started_at": iso(issue.started_at),
        "finished_at": iso(issue.finished_at),
    }
