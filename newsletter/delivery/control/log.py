"""The per-recipient delivery log: did this address get issue 12, and what did the relay say?

Searches go through indexes only: the address through ``lower(email)`` on subscribers and
``subscriber_id`` on deliveries; an issue (and status) through ``(issue_id, status)``.
Pages are keyset pages by delivery id (``after`` = the previous page's ``next``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from newsletter.audience.addresses import normalise_email
from newsletter.audience.models import Subscriber
from newsletter.content.models import Issue
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.errors import InvalidEmail, ValidationError
from newsletter.extensions import db

deliveries = Delivery.__table__
subscribers = Subscriber.__table__
issues = Issue.__table__

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class LogEntry:
    """One recipient of one issue, and what happened."""

    delivery_id: int
    issue_id: int
    issue_subject: str
    subscriber_id: int
    email: str
    status: DeliveryStatus
    attempts: int
    last_reply: str | None
    sent_at: datetime | None
    message_id: str | None
    next_attempt_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, dates in ISO 8601."""
        return {
            "id": self.delivery_id,
            "issue": self.issue_id,
            "subject": self.issue_subject,
            "subscriber": self.subscriber_id,
            "email": self.email,
            "status": self.status.value,
            "attempts": self.attempts,
            "last_reply": self.last_reply,
            "sent_at": _iso(self.sent_at),
            "message_id": self.message_id,
            "next_attempt_at": _iso(self.next_attempt_at),
        }


@dataclass(frozen=True)
class LogPage:
    items: list[LogEntry]
    #: pass as ``after`` for the next page; None on the last page
    next: int | None


def parse_status(value: str | None) -> DeliveryStatus | None:
    """A delivery status from a query string (blank: any).

    :raises ValidationError: not one of pending, sent, failed, skipped (``field="status"``).
    """
    if not value:
        return None
    try:
        return DeliveryStatus(value.strip().lower())
    except ValueError:
        names = ", ".join(status.value for status in DeliveryStatus)
        raise ValidationError(f"status must be one of {names}", field="status") from None


def search(
    *,
    email: str | None = None,
    issue_id: int | None = None,
    status: DeliveryStatus | None = None,
    after: int = 0,
    limit: int = DEFAULT_LIMIT,
) -> LogPage:
    """Deliveries matching every filter given, by delivery id from ``after`` on.

    ``email`` matches the whole address, whatever its case.
    """
    limit = max(1, min(limit, MAX_LIMIT))
    query = (
        select(
            deliveries.c.id,
            deliveries.c.issue_id,
            issues.c.subject,
            deliveries.c.subscriber_id,
            subscribers.c.email,
            deliveries.c.status,
            deliveries.c.attempts,
            deliveries.c.last_reply,
            deliveries.c.sent_at,
            deliveries.c.message_id,
            deliveries.c.next_attempt_at,
        )
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .join(issues, issues.c.id == deliveries.c.issue_id)
        .where(deliveries.c.id > after)
        .order_by(deliveries.c.id)
        .limit(limit + 1)  # one more says whether a next page exists, without a COUNT
    )
    if email is not None and email.strip():
        wanted = select(subscribers.c.id).where(
            func.lower(subscribers.c.email) == _search_form(email)
        )
        query = query.where(deliveries.c.subscriber_id.in_(wanted.scalar_subquery()))
    if issue_id is not None:
        query = query.where(deliveries.c.issue_id == issue_id)
    if status is not None:
        query = query.where(deliveries.c.status == status)
    rows = db.session.execute(query).all()
    db.session.commit()
    entries = [
        LogEntry(
            delivery_id=int(row[0]),
            issue_id=int(row[1]),
            issue_subject=row[2],
            subscriber_id=int(row[3]),
            email=row[4],
            status=DeliveryStatus(row[5]),
            # The send records an accepted message without counting that attempt (the hot
            # path writes as little as it can), so a sent row has made one more.
            attempts=int(row[6]) + (1 if DeliveryStatus(row[5]) is DeliveryStatus.SENT else 0),
            last_reply=row[7],
            sent_at=row[8],
            message_id=row[9],
            next_attempt_at=row[10],
        )
        for row in rows[:limit]
    ]
    following = entries[-1].delivery_id if len(rows) > limit else None
    return LogPage(items=entries, next=following)


def _search_form(email: str) -> str:
    """The address as stored (normalised), lower-cased like the index on subscribers."""

    cleaned = email.strip()
    try:
        cleaned = normalise_email(cleaned)
    except InvalidEmail:
        pass  # not an address we could hold: it simply matches nothing
    return cleaned.lower()


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


@dataclass(frozen=True)
class SubscriberDelivery:
    """One issue sent (or being sent) to one subscriber, for their page."""

    issue_id: int
    issue_subject: str
    status: DeliveryStatus
    sent_at: datetime | None
    last_reply: str | None


def latest_for_subscriber(
    subscriber_id: int, limit: int = DEFAULT_LIMIT
) -> list[SubscriberDelivery]:
    """A subscriber's latest deliveries, newest first (through ``ix_deliveries_subscriber_id``)."""
    rows = db.session.execute(
        select(
            deliveries.c.issue_id,
            issues.c.subject,
            deliveries.c.status,
            deliveries.c.sent_at,
            deliveries.c.last_reply,
        )
        .join(issues, issues.c.id == deliveries.c.issue_id)
        .where(deliveries.c.subscriber_id == subscriber_id)
        .order_by(deliveries.c.id.desc())
        .limit(max(1, min(limit, MAX_LIMIT)))
    ).all()
    return [
        SubscriberDelivery(
            issue_id=int(row[0]),
            issue_subject=row[1],
            status=DeliveryStatus(row[2]),
            sent_at=row[3],
            last_reply=row[4],
        )
        for row in rows
    ]
