"""Claiming deliveries and recording what happened to each, one commit per outcome.

A delivery is claimed by setting a lease on it, the claiming worker's id and a token drawn
for the claim; until the lease runs out, or the worker's heartbeat stops (``heartbeat``), no
other worker takes it. Each outcome is committed the moment it is known, and only under the
claim's token, so a worker killed mid-batch leaves at most the one message it was sending
unrecorded, and a worker that lost its rows learns it from its next outcome.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from select import select as wait_for_socket
from typing import Any

from psycopg import pq
from sqlalchemy import Connection, bindparam, exists, func, or_, select, update

from newsletter.audience.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.content.models import issue_lists
from newsletter.delivery.bounces import policy
from newsletter.delivery.bounces.models import BounceKind, BounceSource
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.send import heartbeat
from newsletter.errors import DeliveryError, PermanentDeliveryError
from newsletter.extensions import db
from newsletter.models import utcnow

deliveries = Delivery.__table__
subscribers = Subscriber.__table__
subscriptions = Subscription.__table__

#: the longest wait between two attempts at one address
MAX_BACKOFF = timedelta(hours=6)

_ENHANCED_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Claimed:
    """A claimed delivery with what is needed to mail it."""

    delivery_id: int
    subscriber_id: int
    email: str
    name: str
    attempts: int
    #: the first target list the subscriber is still confirmed on; None: no longer a recipient
    list_id: int | None
    active: bool
    #: the subscriber's ``token_version``, signed into their manage and unsubscribe links
    token_version: int = 0
    #: the issue the delivery belongs to (kept on a bounce event)
    issue_id: int | None = None

    @property
    def still_wanted(self) -> bool:
        """False when they unsubscribed or were blocklisted since the audience was fixed."""
        return self.active and self.list_id is not None


@dataclass(frozen=True)
class Claim:
    """Rows leased together, the lease's end, and the token that says they are still ours."""

    ids: list[int]
    until: datetime
    token: int | None = None


class ClaimLost(Exception):
    """A claimed row is no longer ours (handed over, or its lease ran out and another worker
    took it): its outcome was not recorded, and the rest of the claim must not be sent."""

    def __init__(self, delivery_id: int) -> None:
        super().__init__(f"delivery {delivery_id} is claimed by another worker now")
        self.delivery_id = delivery_id


def new_token() -> int:
    """A claim token: random, positive, fits a signed 64-bit column."""
    return secrets.randbits(62) + 1


def due(issue_id: int, now: datetime) -> list[object]:
    """Conditions for the issue's pending rows that nobody holds and that are due."""
    return [
        deliveries.c.issue_id == issue_id,
        deliveries.c.status == DeliveryStatus.PENDING,
        or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until <= now),
        or_(deliveries.c.next_attempt_at.is_(None), deliveries.c.next_attempt_at <= now),
    ]


def claimable(issue_id: int, first_id: int, last_id: int, now: datetime) -> list[object]:
    """Conditions for pending rows in the range that nobody holds and that are due."""
    return [*due(issue_id, now), deliveries.c.id >= first_id, deliveries.c.id <= last_id]


def claim(issue_id: int, first_id: int, last_id: int, *, limit: int, lease: timedelta) -> Claim:
    """Lease up to ``limit`` due pending deliveries in the range (committed).

    On PostgreSQL rows another worker is claiming right now are skipped (``SKIP LOCKED``);
    SQLite serialises writers, so the same single UPDATE is already atomic there.
    """
    now = utcnow()
    until = now + lease
    token = new_token()
    chosen = (
        select(deliveries.c.id)
        .where(*claimable(issue_id, first_id, last_id, now))  # type: ignore[arg-type]
        .order_by(deliveries.c.id)
        .limit(limit)
    )
    if db.session.get_bind().dialect.name == "postgresql":
        chosen = chosen.with_for_update(skip_locked=True)
    result = db.session.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(chosen.scalar_subquery()))
        .values(lease_until=until, claimed_by=heartbeat.worker_id(), claim_token=token)
        .returning(deliveries.c.id)
    )
    ids = sorted(int(row[0]) for row in result)
    db.session.commit()
    return Claim(ids=ids, until=until, token=token)


def renew(claim: Claim, delivery_ids: Sequence[int], lease: timedelta) -> Claim:
    """Extend the lease on those of ``delivery_ids`` still held under ``claim`` (committed).

    A row whose lease ran out and that another worker took is no longer ours: it is left
    out of the returned claim, so it is never sent by both.
    """
    until = utcnow() + lease
    result = db.session.execute(
        update(deliveries)
        .where(
            deliveries.c.id.in_(list(delivery_ids)),
            deliveries.c.status == DeliveryStatus.PENDING,
            _held(claim),
        )
        .values(lease_until=until)
        .returning(deliveries.c.id)
    )
    ids = sorted(int(row[0]) for row in result)
    db.session.commit()
    return Claim(ids=ids, until=until, token=claim.token)


def _held(claim: Claim) -> Any:
    """The condition that a row is still held under ``claim``."""
    if claim.token is None:
        return deliveries.c.lease_until == claim.until
    return deliveries.c.claim_token == claim.token


def load(issue_id: int, delivery_ids: Sequence[int]) -> list[Claimed]:
    """The claimed deliveries with their subscriber's address, name, status and list.

    Two plain look-ups by key rather than a correlated subquery per row: with the statistics
    of a freshly written audience, PostgreSQL planned that subquery as a scan of the whole
    list for every recipient.
    """
    if not delivery_ids:
        return []
    rows = db.session.execute(
        select(
            deliveries.c.id,
            subscribers.c.id,
            subscribers.c.email,
            subscribers.c.name,
            deliveries.c.attempts,
            subscribers.c.status,
            subscribers.c.token_version,
        )
        .join(subscribers, subscribers.c.id == deliveries.c.subscriber_id)
        .where(deliveries.c.id.in_(list(delivery_ids)))
        .order_by(deliveries.c.id)
    ).all()
    first_lists = _first_confirmed_lists(issue_id, [row[1] for row in rows])
    return [
        Claimed(
            delivery_id=row[0],
            subscriber_id=row[1],
            email=row[2],
            name=row[3] or "",
            attempts=row[4],
            list_id=first_lists.get(row[1]),
            active=row[5] is SubscriberStatus.ACTIVE,
            token_version=row[6] or 0,
            issue_id=issue_id,
        )
        for row in rows
    ]


def _first_confirmed_lists(issue_id: int, subscriber_ids: list[int]) -> dict[int, int]:
    """For each subscriber, the lowest-id target list of the issue they are confirmed on
    (the list their unsubscribe link names; any list for an issue with segments and no
    lists); absent: on none of them any more."""
    if not subscriber_ids:
        return {}
    target_lists = select(issue_lists.c.list_id).where(issue_lists.c.issue_id == issue_id)
    on_target = subscriptions.c.list_id.in_(target_lists.scalar_subquery())
    # An issue with segments and no lists goes to people confirmed on any list. Asked
    # apart: folded into the query as "OR NOT EXISTS" it makes PostgreSQL's plan 5x slower.
    if not db.session.scalar(select(exists().where(issue_lists.c.issue_id == issue_id))):
        on_target = subscriptions.c.list_id.is_not(None)
    rows = db.session.execute(
        select(subscriptions.c.subscriber_id, func.min(subscriptions.c.list_id))
        .where(
            subscriptions.c.subscriber_id.in_(subscriber_ids),
            on_target,
            subscriptions.c.status == SubscriptionStatus.CONFIRMED,
        )
        .group_by(subscriptions.c.subscriber_id)
    ).all()
    return {int(subscriber_id): int(list_id) for subscriber_id, list_id in rows}


def record_sent(delivery_id: int, *, message_id: str, reply: str) -> None:
    """The relay took the message: final, and never sent again."""
    _finish(
        delivery_id,
        status=DeliveryStatus.SENT,
        sent_at=utcnow(),
        message_id=message_id,
        last_reply=reply,
    )


class SentRecorder:
    """Records accepted messages on a connection of its own, one autocommitted UPDATE each.

    The hot path of a send. On PostgreSQL the UPDATE is sent without waiting (libpq's
    asynchronous calls on a prepared statement) and its commit collected by ``wait``: the
    sender calls that once the next message's content is out and before its end, so the
    database's work overlaps the relay's, and still no message can be accepted before the
    previous outcome on its connection is committed. Elsewhere ``record`` commits at once
    and ``wait`` has nothing to do.
    """

    _statement = (
        update(deliveries)
        .where(
            deliveries.c.id == bindparam("delivery_id"),
            deliveries.c.claim_token == bindparam("token"),
        )
        .values(
            status=DeliveryStatus.SENT,
            sent_at=bindparam("sent_at"),
            message_id=bindparam("message_id"),
            last_reply=bindparam("reply"),
            lease_until=None,
            claimed_by=None,
            claim_token=None,
        )
    )
    #: the same UPDATE as a PostgreSQL prepared statement
    _prepared_name = b"newsletter_record_sent_v2"
    _postgresql = (
        b"UPDATE deliveries SET status = 'sent', sent_at = $1, message_id = $2,"
        b" last_reply = $3, lease_until = NULL, claimed_by = NULL, claim_token = NULL"
        b" WHERE id = $4 AND claim_token = $5"
    )

    def __init__(self) -> None:
        self._connection: Connection | None = None
        self._pgconn: Any = None
        self._in_flight: int | None = None  # the delivery whose outcome is on its way

    def record(self, delivery_id: int, *, message_id: str, reply: str, token: int) -> None:
        """The relay took the message: final, and never sent again (committed by ``wait``
        on PostgreSQL, at once elsewhere), if the row is still ours under ``token``.

        :raises ClaimLost: (at once, or from ``wait``) the row was handed to another worker.
        """
        if self._connection is None:
            self._connection = self._connect()
            if self._connection.dialect.name == "postgresql":
                self._pgconn = self._prepare(self._connection)
        if self._pgconn is None:
            params = {"delivery_id": delivery_id, "sent_at": utcnow(), "message_id": message_id,
                      "reply": reply, "token": token}  # fmt: skip
            if self._connection.execute(self._statement, params).rowcount != 1:
                raise ClaimLost(delivery_id)
            return
        self.wait()
        values = [utcnow().isoformat().encode(), message_id.encode(), reply.encode(),
                  str(delivery_id).encode(), str(token).encode()]  # fmt: skip
        pgconn = self._pgconn
        pgconn.send_query_prepared(self._prepared_name, values)
        self._in_flight = delivery_id
        while pgconn.flush():  # the whole UPDATE handed to the kernel before going on
            wait_for_socket([], [pgconn.socket], [])

    def wait(self) -> None:
        """Return once the last recorded outcome is committed.

        :raises OutcomeNotRecorded: the database refused it or the connection is gone.
        :raises ClaimLost: the row was no longer ours: nothing was recorded.
        """
        delivery_id = self._in_flight
        if delivery_id is None:
            return
        self._in_flight = None
        pgconn = self._pgconn
        try:
            pgconn.consume_input()
            while pgconn.is_busy():
                wait_for_socket([pgconn.socket], [], [])
                pgconn.consume_input()
            result = pgconn.get_result()
            while pgconn.get_result() is not None:  # the end of this query's results
                pass
        except Exception as error:  # noqa: BLE001 - psycopg's errors, a closed socket
            raise OutcomeNotRecorded(str(error)) from error
        if result is None or result.status != pq.ExecStatus.COMMAND_OK:
            message = result.get_error_message() if result is not None else "no result"
            raise OutcomeNotRecorded(str(message))
        if result.command_tuples != 1:
            raise ClaimLost(delivery_id)

    @classmethod
    def _prepare(cls, connection: Connection) -> Any:
        """Prepare the UPDATE on the connection's libpq handle and return the handle."""
        pgconn = connection.connection.driver_connection.pgconn  # type: ignore[union-attr]
        result = pgconn.prepare(cls._prepared_name, cls._postgresql)
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise OutcomeNotRecorded(str(result.get_error_message()))
        return pgconn

    @staticmethod
    def _connect() -> Connection:
        connection = db.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        if connection.dialect.name == "postgresql":
            # Waiting for each outcome's WAL flush would halve the send rate. Without it a
            # killed worker still loses nothing (the server has the commit); only a crash of
            # PostgreSQL itself could forget the last fraction of a second of outcomes, whose
            # messages would then go out a second time. A clean restart flushes everything.
            connection.exec_driver_sql("SET synchronous_commit TO off")
        return connection

    def close(self) -> None:
        """Wait for the last outcome, then give the connection back to the pool, as durable
        as every other (a broken one is dropped instead).

        :raises OutcomeNotRecorded: the last outcome could not be committed.
        """
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            self.wait()
            if self._pgconn is not None:
                self._pgconn.exec_(b"DEALLOCATE " + self._prepared_name)
                connection.exec_driver_sql("RESET synchronous_commit")
        except Exception:
            connection.invalidate()
            raise
        finally:
            self._pgconn = None
            connection.close()


class OutcomeNotRecorded(Exception):
    """An accepted message's outcome could not be committed (the database is gone)."""


def record_temporary(
    delivery: Claimed, error: DeliveryError, *, max_attempts: int, backoff: timedelta,
    token: int | None = None,
) -> bool:
    """A 4xx or a lost connection: try again after a growing wait, or give up (only while
    the row is held under ``token``, when given).

    :returns: True when the delivery is now failed (out of attempts).
    """
    attempts = delivery.attempts + 1
    if attempts >= max_attempts:
        _finish(
            delivery.delivery_id,
            token=token,
            status=DeliveryStatus.FAILED,
            attempts=attempts,
            last_reply=error.message,
        )
        return True
    _finish(
        delivery.delivery_id,
        token=token,
        status=DeliveryStatus.PENDING,
        attempts=attempts,
        next_attempt_at=utcnow() + retry_delay(attempts, backoff),
        last_reply=error.message,
    )
    return False


def record_permanent(
    delivery: Claimed, error: PermanentDeliveryError, token: int | None = None
) -> None:
    """A 5xx: failed for good; an address that does not exist is blocklisted (hard bounce)."""
    _finish(
        delivery.delivery_id,
        token=token,
        status=DeliveryStatus.FAILED,
        attempts=delivery.attempts + 1,
        last_reply=error.message,
        commit=False,
    )
    if is_hard_bounce(error):
        # Through the bounce policy, like every other report: kept as an event (source
        # smtp) and the address stopped; it commits the outcome with it.
        policy.record(
            delivery.subscriber_id,
            BounceKind.HARD,
            error.message,
            BounceSource.SMTP,
            issue_id=delivery.issue_id,
            delivery_id=delivery.delivery_id,
        )
        return
    db.session.commit()


def record_skipped(delivery_ids: Sequence[int], token: int | None = None) -> None:
    """Unsubscribed or blocklisted since the audience was fixed: final, not mailed."""
    _update_pending(delivery_ids, token, status=DeliveryStatus.SKIPPED, **_UNCLAIMED)


def release(delivery_ids: Sequence[int], token: int | None = None) -> None:
    """Give back claimed rows that were not tried, so any worker may take them at once
    (those still held under ``token``, when given)."""
    _update_pending(delivery_ids, token, **_UNCLAIMED)


_UNCLAIMED: dict[str, Any] = {"lease_until": None, "claimed_by": None, "claim_token": None}


def _update_pending(delivery_ids: Sequence[int], token: int | None, **values: Any) -> None:
    """Set ``values`` on those of the rows that are still pending (and held under
    ``token``, when given), and commit."""
    if delivery_ids:
        held = () if token is None else (deliveries.c.claim_token == token,)
        db.session.execute(
            update(deliveries)
            .where(
                deliveries.c.id.in_(list(delivery_ids)),
                deliveries.c.status == DeliveryStatus.PENDING,
                *held,
            )
            .values(**values)
        )
        db.session.commit()


def retry_delay(attempts: int, backoff: timedelta) -> timedelta:
    """``backoff`` doubled after every failed attempt, at most ``MAX_BACKOFF``."""
    return min(backoff * (2 ** max(attempts - 1, 0)), MAX_BACKOFF)


def is_hard_bounce(error: PermanentDeliveryError) -> bool:
    """True when the reply says the address itself is bad (blocklist it).

    A 5xx about the message (too large, content policy, relaying) is not the address's
    fault: blocklisting for it would empty the list after one bad send. With an enhanced
    status code (RFC 3463) only ``5.1.x`` (bad address) and ``5.2.1`` (mailbox disabled)
    count; without one, 550, 551 and 553.
    """
    match = _ENHANCED_STATUS.search(error.message)
    if match:
        subject, detail = match.group(2), match.group(3)
        return match.group(1) == "5" and (subject == "1" or (subject, detail) == ("2", "1"))
    return error.code in {550, 551, 553}


def _finish(
    delivery_id: int, *, commit: bool = True, token: int | None = None, **values: object
) -> None:
    held = () if token is None else (deliveries.c.claim_token == token,)
    db.session.execute(
        update(deliveries)
        .where(deliveries.c.id == delivery_id, *held)
        .values(**_UNCLAIMED, **values)
    )
    if commit:
        db.session.commit()
