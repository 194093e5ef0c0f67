"""What the outgoing webhooks keep: the endpoints, one message per endpoint and event (the
outbox), and every attempt to deliver one (the delivery log)."""

from __future__ import annotations

import enum
import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column, utcnow


class MessageStatus(enum.Enum):
    PENDING = "pending"  # waiting for its first attempt or its next retry
    DELIVERED = "delivered"  # the endpoint answered 2xx
    FAILED = "failed"  # given up: retries spent, 410 Gone, a refused address, disabled


class WebhookEndpoint(db.Model):  # type: ignore[name-defined]
    """A URL an admin registered, the events it wants and the secret its messages are
    signed with."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    #: ``whsec_`` and the base64 of the key, as the receiver is shown it (kept as is: the
    #: key signs every message, so it cannot be hashed like an API token)
    secret: Mapped[str] = mapped_column(String(100))
    #: the secret before the last rotation, still signing beside the new one until
    #: ``previous_secret_until`` so that receivers can switch without losing a message
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: the event kinds it receives (``newsletter.events.EventKind`` values)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(default=True)
    #: why it was turned off (an admin, or the endpoint's own 410 Gone)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    messages: Mapped[list[WebhookMessage]] = relationship(
        back_populates="endpoint", cascade="all, delete-orphan", passive_deletes=True
    )

    def __repr__(self) -> str:
        return f"<WebhookEndpoint {self.id} {self.url!r} active={self.active}>"


class WebhookMessage(db.Model):  # type: ignore[name-defined]
    """One event for one endpoint: the exact body sent (the same bytes on every retry) and
    where its delivery stands."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_endpoint_id_id", "endpoint_id", "id"),
        Index("ix_webhook_messages_status_next_attempt_at", "status", "next_attempt_at"),
        Index("ix_webhook_messages_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    #: the ``webhook-id`` header: one per event, the same for every endpoint and retry
    event_id: Mapped[str] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(40))
    #: the JSON body, as signed and sent
    payload: Mapped[str] = mapped_column(Text)
    #: whom the event is about: erasing the person erases the messages that name them
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[MessageStatus] = mapped_column(
        enum_column(MessageStatus), default=MessageStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    #: when the next attempt is due (pending messages only)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: a worker is attempting it until then; nobody else may
    leased_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: an admin's "retry": one more attempt, then failed again if it fails
    manual_retry: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_status_code: Mapped[int | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)

    endpoint: Mapped[WebhookEndpoint] = relationship(back_populates="messages")
    attempt_log: Mapped[list[WebhookAttempt]] = relationship(
        back_populates="message", cascade="all, delete-orphan", passive_deletes=True,
        order_by="WebhookAttempt.id",
    )  # fmt: skip

    def __repr__(self) -> str:
        return f"<WebhookMessage {self.id} {self.kind} {self.status.value} x{self.attempts}>"

    def data(self) -> dict[str, Any]:
        """The event's ``data`` object, read back from the body (for the log's page)."""
        value = json.loads(self.payload).get("data")
        return value if isinstance(value, dict) else {}


class WebhookAttempt(db.Model):  # type: ignore[name-defined]
    """One POST of a message: when, what the endpoint answered, what went wrong."""

    __tablename__ = "webhook_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True
    )
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: the HTTP status; None when no answer came (refused, timed out, connection broken)
    status_code: Mapped[int | None] = mapped_column()
    #: empty on success; else why it failed, with the start of the endpoint's answer
    error: Mapped[str] = mapped_column(Text, default="")
    duration_ms: Mapped[int] = mapped_column(default=0)

    message: Mapped[WebhookMessage] = relationship(back_populates="attempt_log")

    def __repr__(self) -> str:
        return f"<WebhookAttempt {self.id} of {self.message_id}: {self.status_code}>"
