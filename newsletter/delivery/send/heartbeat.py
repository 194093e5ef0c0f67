"""Worker heartbeats, and handing the claims of a worker whose heartbeat stopped to the others.

A lease alone makes a dead worker's rows wait out the whole lease (300 s) before anyone sends
them. So each ``newsletter worker`` process keeps a row in ``workers`` and renews its
``last_seen`` every ``HEARTBEAT_SECONDS`` from a thread of its own; every row it claims
carries its worker id (``claimed_by``) and a token drawn for that claim (``claim_token``).

The same thread, in every live worker, then hands over: the pending rows claimed by a worker
that is not live (no ``workers`` row seen within ``HEARTBEAT_TIMEOUT_SECONDS``) lose their
claim, the stale ``workers`` rows are deleted, and the work of the sends concerned is queued
again, so the rows go out within about ``timeout + interval`` of the last heartbeat (25 s by
default), not after the lease. The lease stays, as the last resort for claims without a
worker (the embedded queue) and for a database that lost the heartbeats.

Why at most one duplicate per open connection, even for a worker that is only cut off (or
slow) and still sending: a row is recorded sent only under its claim token (``UPDATE … WHERE
id = … AND claim_token = …``), and the sender collects that outcome before it lets the relay
accept the next message on the connection (see ``sender``). A worker whose rows were handed
over therefore learns it from the first outcome it records after the hand-over, and stops:
the one message before that is the duplicate. Releasing rows, renewing a lease and every
other outcome are checked against the token too, so the loser never touches the rows of
their new owner. Besides, a worker whose own heartbeat has not reached the database for
``timeout - interval`` stops sending on its own (``lost``), before the others may take over.

Timestamps are each host's clock, as for the lease: the hosts' clocks must agree to well
under ``timeout - interval`` (NTP does).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import delete, insert, select, update

from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.models import Delivery, DeliveryStatus, WorkerHeartbeat
from newsletter.extensions import db
from newsletter.models import utcnow

log = logging.getLogger(__name__)

deliveries = Delivery.__table__
workers = WorkerHeartbeat.__table__

#: default seconds between two heartbeats (``HEARTBEAT_SECONDS``)
HEARTBEAT_SECONDS = 5.0
#: default seconds without a heartbeat after which a worker's claims go to the others
#: (``HEARTBEAT_TIMEOUT_SECONDS``)
HEARTBEAT_TIMEOUT_SECONDS = 20.0

_current: Heartbeat | None = None

#: the sends whose pending rows may be claimed
ACTIVE = (IssueStatus.SENDING, IssueStatus.PAUSED)


@dataclass(frozen=True)
class HandOver:
    """What one hand-over did: the rows released, their sends, the workers forgotten."""

    rows: int
    issue_ids: list[int]
    dead_workers: list[int]


#: what the worker does after a hand-over: queue the sends' work again (``workers.py``
#: passes the dispatcher's recovery; this module stays below the dispatcher)
Requeue = Callable[[HandOver], None]


def worker_id() -> int | None:
    """This process's ``workers`` row, when it keeps a heartbeat; None otherwise (claims
    then rest on their lease alone)."""
    beat = _current
    return beat.worker_id if beat is not None else None


def lost() -> bool:
    """True when this process keeps a heartbeat that has not reached the database for long
    enough that the others may soon take its claims: stop sending."""
    beat = _current
    return beat is not None and beat.lost()


class Heartbeat(threading.Thread):
    """Renews this process's ``workers`` row and hands over the claims of dead workers."""

    def __init__(
        self,
        app: Flask,
        *,
        interval: float,
        timeout: float,
        requeue: Requeue | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(name="newsletter-heartbeat", daemon=True)
        self.app = app
        self.interval = interval
        self.timeout = timeout
        self.requeue = requeue
        self._clock = clock
        self._stop_event = threading.Event()
        self.worker_id: int | None = None
        #: when the last heartbeat that reached the database was begun (monotonic)
        self._last_ok = clock()

    def register(self) -> int:
        """Insert this process's row (committed) and return its id."""
        now = utcnow()
        beat_at = self._clock()
        new_id = db.session.execute(
            insert(workers)
            .values(hostname=socket.gethostname()[:255], pid=os.getpid(), started_at=now,
                    last_seen=now)
            .returning(workers.c.id)
        ).scalar_one()  # fmt: skip
        db.session.commit()
        self.worker_id = int(new_id)
        self._last_ok = beat_at
        return self.worker_id

    def beat(self) -> None:
        """Renew ``last_seen`` (committed). A row deleted meanwhile means the others took
        this worker for dead and handed its claims over: it registers again, afresh."""
        beat_at = self._clock()
        renewed = db.session.execute(
            update(workers).where(workers.c.id == self.worker_id).values(last_seen=utcnow())
        )
        db.session.commit()
        if renewed.rowcount != 1:  # type: ignore[attr-defined]
            old = self.worker_id
            self.register()
            log.warning("worker %s was taken for dead (claims handed over); now worker %s",
                        old, self.worker_id)  # fmt: skip
        self._last_ok = beat_at

    def lost(self) -> bool:
        """Whether the last heartbeat that reached the database is older than
        ``timeout - interval``."""
        return self._clock() - self._last_ok > self.timeout - self.interval

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            with self.app.app_context():
                try:
                    self.beat()
                    handed = hand_over(timedelta(seconds=self.timeout))
                    if self.requeue is not None and (handed.rows or handed.dead_workers):
                        self.requeue(handed)
                except Exception:  # noqa: BLE001 - the next beat tries again
                    log.exception("heartbeat failed")
                    db.session.rollback()
                finally:
                    db.session.remove()

    def stop(self) -> None:
        """End the thread and mark this process's row stale: claims still held (none, after
        a clean stop) go to the others at their next heartbeat, which then deletes it."""
        global _current
        self._stop_event.set()
        if self.is_alive():
            self.join(self.interval + 10)
        if _current is self:
            _current = None
        with self.app.app_context():
            try:
                db.session.execute(
                    update(workers)
                    .where(workers.c.id == self.worker_id)
                    .values(last_seen=datetime(1970, 1, 1, tzinfo=UTC))
                )
                db.session.commit()
            except Exception:  # noqa: BLE001 - gone with the database: it times out instead
                log.warning("could not delete worker %s's heartbeat row", self.worker_id)
            finally:
                db.session.remove()


def start(app: Flask, requeue: Requeue) -> Heartbeat:
    """Register this process as a worker and start its heartbeat thread (call before the
    process claims anything); ``requeue`` queues the work of handed-over rows again."""
    global _current
    beat = Heartbeat(
        app,
        interval=float(app.config.get("HEARTBEAT_SECONDS") or HEARTBEAT_SECONDS),
        timeout=float(app.config.get("HEARTBEAT_TIMEOUT_SECONDS") or HEARTBEAT_TIMEOUT_SECONDS),
        requeue=requeue,
    )
    with app.app_context():
        try:
            beat.register()
        finally:
            db.session.remove()
    _current = beat
    beat.start()
    return beat


def hand_over(timeout: timedelta) -> HandOver:
    """Release the pending rows claimed by workers not seen within ``timeout`` and forget
    those workers (committed); the caller queues the sends' work again.

    While every worker beats, this is one look at the small ``workers`` table: the claim
    columns carry no index, so that claiming and recording a row stay HOT updates on
    PostgreSQL (an index on ``claimed_by`` cost the send about a tenth of its rate). Only
    when a worker is stale are the pending rows of the sends under way read for its claims.
    A stale worker's row is deleted once none of its claims is left, so rows skipped now are
    found again at a later beat.

    Rows (and ``workers`` rows) locked at this instant are skipped on PostgreSQL (``SKIP
    LOCKED``), so a half-done claim of a vanished host can never block the heartbeat of a
    live one.
    """
    postgresql = db.session.get_bind().dialect.name == "postgresql"
    stale = select(workers.c.id).where(workers.c.last_seen < utcnow() - timeout)
    if postgresql:
        # A host cut off between its heartbeat's UPDATE and COMMIT holds its row's lock
        # until its connection dies: skip it now, take it at a later beat.
        stale = stale.with_for_update(skip_locked=True)
    dead = [int(worker) for worker in db.session.scalars(stale)]
    if not dead:
        db.session.commit()
        return HandOver(rows=0, issue_ids=[], dead_workers=[])
    held = (
        deliveries.c.issue_id.in_(select(Issue.id).where(Issue.status.in_(ACTIVE))),
        deliveries.c.status == DeliveryStatus.PENDING,
        deliveries.c.claimed_by.in_(dead),
    )
    orphaned = select(deliveries.c.id).where(*held)
    if postgresql:
        orphaned = orphaned.with_for_update(skip_locked=True)
    released = db.session.execute(
        update(deliveries)
        .where(deliveries.c.id.in_(orphaned.scalar_subquery()))
        .values(lease_until=None, claimed_by=None, claim_token=None)
        .returning(deliveries.c.issue_id)
    ).all()
    # Claims left (rows locked by their vanished host): keep the worker until they are free.
    left = set(db.session.scalars(select(deliveries.c.claimed_by).where(*held).distinct()))
    forgotten = [worker for worker in dead if worker not in left]
    if forgotten:
        db.session.execute(delete(workers).where(workers.c.id.in_(forgotten)))
    db.session.commit()
    if forgotten or released:
        log.warning("workers %s stopped their heartbeat; %s claimed rows handed over",
                    sorted(dead), len(released))  # fmt: skip
    return HandOver(
        rows=len(released),
        issue_ids=sorted({int(row[0]) for row in released}),
        dead_workers=sorted(forgotten),
    )
