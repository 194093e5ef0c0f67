"""The audit log: who changed what, when, and from where (only when ``STORE_IP`` is on).

The web layer records every change made through the admin pages and the API with one hook
(``web/audit_trail.py``), so a new route cannot forget; commands that change things record
themselves with :func:`record_cli`. Events older than ``AUDIT_RETENTION_DAYS`` are deleted
by the workers' periodic sweep (:func:`purge_expired`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import delete, func, select

from newsletter.auth.models import AuditEvent
from newsletter.extensions import db
from newsletter.models import utcnow

CLI_ACTOR = "cli"
PAGE_SIZE = 50
MAX_PAGE_SIZE = 500

# The columns' sizes (auth/models.py): longer values are cut, never refused.
_ACTOR_LENGTH, _ACTION_LENGTH, _TARGET_LENGTH, _IP_LENGTH = 320, 100, 200, 45


def record(
    action: str,
    *,
    actor: str,
    user_id: int | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditEvent:
    """Write one event and commit it.

    :param actor: the user's address, or :data:`CLI_ACTOR`.
    :param target: what was acted on, as ids (``issue_id=12``); never a secret.
    :param detail: a small summary; never passwords, tokens or subscribers' data.
    :param ip: the client's address; dropped unless ``NEWSLETTER_STORE_IP`` is on.
    """
    keep_ip = bool(current_app.config.get("STORE_IP"))
    event = AuditEvent(
        actor=actor[:_ACTOR_LENGTH],
        user_id=user_id,
        action=action[:_ACTION_LENGTH],
        target=target[:_TARGET_LENGTH],
        detail=detail or {},
        ip=ip[:_IP_LENGTH] if keep_ip and ip else None,
    )
    db.session.add(event)
    db.session.commit()
    return event


def record_cli(action: str, *, target: str = "", detail: dict[str, Any] | None = None) -> None:
    """Record a change made by a ``newsletter`` command (``action`` like ``cli.lists_create``)."""
    record(action, actor=CLI_ACTOR, target=target, detail=detail)


@dataclass(frozen=True)
class AuditFilter:
    """What the audit page searches for; blank fields match everything."""

    #: part of the actor's address (or "cli"), any case
    actor: str = ""
    #: part of the action's name, any case (``issue`` finds ``admin.issue_send``)
    action: str = ""
    #: from the start of this day (UTC)
    since: date | None = None
    #: to the end of this day (UTC)
    until: date | None = None


@dataclass(frozen=True)
class AuditPage:
    items: list[AuditEvent]
    #: pass as ``before`` for the next (older) page; None on the last page
    next: int | None


def search(
    wanted: AuditFilter, *, before: int | None = None, limit: int = PAGE_SIZE
) -> AuditPage:
    """Events matching ``wanted``, newest first, older than the event ``before`` (keyset)."""
    limit = max(1, min(limit, MAX_PAGE_SIZE))
    query = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit + 1)
    if wanted.actor.strip():
        query = query.where(
            func.lower(AuditEvent.actor).contains(wanted.actor.strip().lower(), autoescape=True)
        )
    if wanted.action.strip():
        query = query.where(
            func.lower(AuditEvent.action).contains(wanted.action.strip().lower(), autoescape=True)
        )
    if wanted.since is not None:
        query = query.where(AuditEvent.created_at >= _start_of(wanted.since))
    if wanted.until is not None:
        query = query.where(AuditEvent.created_at < _start_of(wanted.until + timedelta(days=1)))
    if before is not None:
        query = query.where(AuditEvent.id < before)
    rows = list(db.session.scalars(query))
    following = rows[limit - 1].id if len(rows) > limit else None
    return AuditPage(items=rows[:limit], next=following)


def known_actions() -> list[str]:
    """Every action name recorded so far, for the search form's suggestions."""
    query = select(AuditEvent.action).distinct().order_by(AuditEvent.action)
    return list(db.session.scalars(query))


def purge_expired(now: datetime | None = None) -> int:
    """Delete events older than ``AUDIT_RETENTION_DAYS`` (0: keep them all); how many went."""
    days = int(current_app.config.get("AUDIT_RETENTION_DAYS") or 0)
    if days <= 0:
        return 0
    cutoff = (now or utcnow()) - timedelta(days=days)
    result = db.session.execute(delete(AuditEvent).where(AuditEvent.created_at < cutoff))
    db.session.commit()
    return int(getattr(result, "rowcount", 0) or 0)


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)
