"""One row per recipient of an issue: the record of what happened to each message."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column


class DeliveryStatus(enum.Enum):
    PENDING = "pending"  # waiting, or claimed under a lease by a worker
    SENT = "sent"
    FAILED = "failed"  # final: a 5xx, or out of attempts
    SKIPPED = "skipped"  # final: unsubscribed or blocklisted before their turn


FINAL_STATUSES = (DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SKIPPED)


class Delivery(db.Model):  # type: ignore[name-defined]
    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id", name="uq_deliveries_issue_id_subscriber_id"),
        # The claim reads the pending rows of an issue in an id range: id last (migration 0004).
        Index("ix_deliveries_issue_id_status_id", "issue_id", "status", "id"),
        # The delivery log looks an address up across issues (and ON DELETE CASCADE from
        # subscribers needs it too).
        Index("ix_deliveries_subscriber_id", "subscriber_id"),
        # No index on claimed_by or claim_token: claiming and recording a row must stay
        # HOT updates (see ``send/heartbeat.hand_over``).
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    #: None once the person was erased: the row stays, so the issue's counts stay right
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE")
    )
    status: Mapped[DeliveryStatus] = mapped_column(
        enum_column(DeliveryStatus), default=DeliveryStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    # A worker holds the row until this time; past it, another may claim the row again.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the ``workers`` row whose heartbeat vouches for the claim (None: the lease alone)
    claimed_by: Mapped[int | None] = mapped_column()
    #: drawn afresh by each claim: every outcome checks it, so a row handed to another
    #: worker is never recorded (nor released) by the one that lost it
    claim_token: Mapped[int | None] = mapped_column(BigInteger)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_reply: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    message_id: Mapped[str | None] = mapped_column(String(255))

    def __repr__(self) -> str:
        return (
            f"<Delivery issue={self.issue_id} subscriber={self.subscriber_id}"
            f" {self.status.value}>"
        )


class ProgressSample(db.Model):  # type: ignore[name-defined]
    """An issue's delivery counts at one moment: a short history to measure the send rate
    without scanning the deliveries (see ``newsletter.delivery.control.progress``)."""

    __tablename__ = "progress_samples"
    __table_args__ = (Index("ix_progress_samples_issue_id_taken_at", "issue_id", "taken_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    taken_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)
    skipped: Mapped[int] = mapped_column(default=0)
    pending: Mapped[int] = mapped_column(default=0)


class WorkerHeartbeat(db.Model):  # type: ignore[name-defined]
    """A worker process alive now, or lately: ``last_seen`` is renewed every few seconds
    (see ``newsletter.delivery.send.heartbeat``)."""

    __tablename__ = "workers"
    # Ids never come back (SQLite reuses the highest rowid otherwise): a claim naming a
    # dead worker must never be taken for the claim of a new one.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column()
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    def __repr__(self) -> str:
        return f"<WorkerHeartbeat {self.id} {self.hostname}:{self.pid} seen {self.last_seen}>"
