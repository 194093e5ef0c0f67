"""The outbox: an event becomes one message row per endpoint that wants it, written in the
caller's transaction, and each row's delivery is queued only once that transaction commits.

So a change that is rolled back sends nothing, and a worker never looks for a row that is
not committed yet. Should the broker lose a job (or be down at the commit), the row is
still there and the sweep (``service.enqueue_stalled``) queues it again: the database is
the source of truth, as for every send.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from newsletter import queue
from newsletter.delivery.webhooks.models import MessageStatus, WebhookEndpoint, WebhookMessage
from newsletter.delivery.webhooks.signing import new_event_id
from newsletter.extensions import db
from newsletter.models import utcnow

log = logging.getLogger(__name__)

#: where a session keeps the ids of the messages its transaction wrote
PENDING_KEY = "webhooks.pending"
ACTOR = "deliver_webhook"


def publish(kind: str, data: dict[str, Any], *, now: datetime | None = None) -> int:
    """Write one message per active endpoint that wants ``kind``; return how many.

    Nothing is committed: the caller's commit sends them, its rollback drops them. With no
    endpoint registered this costs one small query (no flush, no row).
    """
    # no_autoflush: the look-up must not flush the caller's half-made changes early.
    with db.session.no_autoflush:
        endpoints = db.session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.events).where(
                WebhookEndpoint.active.is_(True)
            )
        ).all()
    wanted = [endpoint_id for endpoint_id, kinds in endpoints if kind in (kinds or ())]
    if not wanted:
        return 0
    now = now or utcnow()
    body = json.dumps(
        {"type": kind, "timestamp": _iso(now), "data": data},
        separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip
    event_id = new_event_id()
    subscriber_id = data.get("subscriber_id")
    rows = [
        WebhookMessage(
            endpoint_id=endpoint_id,
            event_id=event_id,
            kind=kind,
            payload=body,
            subscriber_id=subscriber_id if isinstance(subscriber_id, int) else None,
            status=MessageStatus.PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint_id in wanted
    ]
    db.session.add_all(rows)
    db.session.flush()  # the ids, for the jobs queued after the commit
    db.session.info.setdefault(PENDING_KEY, []).extend(row.id for row in rows)
    return len(rows)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@event.listens_for(Session, "after_commit")
def _enqueue_committed(session: Session) -> None:
    ids = session.info.pop(PENDING_KEY, None)
    for message_id in ids or ():
        try:
            queue.enqueue(ACTOR, message_id)
        except Exception:  # noqa: BLE001 - committed already: the sweep queues it again
            log.warning("webhook message %s: could not queue it; the sweep will", message_id,
                        exc_info=True)  # fmt: skip


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)
