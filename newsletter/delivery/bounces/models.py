"""What the bounce handling keeps: one event per report, and the reports nobody could read."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column, utcnow


class BounceKind(enum.Enum):
    HARD = "hard"  # the address does not exist or refuses for good: stop at once
    SOFT = "soft"  # a full mailbox, a temporary refusal: scored
    COMPLAINT = "complaint"  # the reader marked it as spam: unsubscribed everywhere


class BounceSource(enum.Enum):
    """The path a report came in by."""

    SMTP = "smtp"  # the synchronous 5xx reply to one of our own sends
    IMPORT = "import"  # `newsletter bounces import`
    LMTP = "lmtp"  # `newsletter bounces serve`
    MAILBOX = "mailbox"  # the IMAP or Maildir poller
    API = "api"  # POST /api/v1/bounces
    SES = "ses"
    POSTMARK = "postmark"
    SENDGRID = "sendgrid"
    MAILGUN = "mailgun"
    ADMIN = "admin"


class BounceEvent(db.Model):  # type: ignore[name-defined]
    """One bounce or complaint reported for one address (shown on the subscriber's page)."""

    __tablename__ = "bounce_events"
    __table_args__ = (
        Index("ix_bounce_events_subscriber_id_occurred_at", "subscriber_id", "occurred_at"),
        Index("ix_bounce_events_issue_id_kind", "issue_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    #: erasing the person erases their events with them
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    #: the issue the bounced message belonged to, when the report says (None: unknown, or a
    #: transactional message)
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issues.id", ondelete="SET NULL"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL")
    )
    kind: Mapped[BounceKind] = mapped_column(enum_column(BounceKind))
    source: Mapped[BounceSource] = mapped_column(enum_column(BounceSource))
    #: the reply or the report's diagnostic, capped (never the whole message)
    reason: Mapped[str] = mapped_column(Text, default="")
    #: whether a soft bounce raised the score (at most one a day counts)
    counted: Mapped[bool] = mapped_column(default=True)


class UnreadBounce(db.Model):  # type: ignore[name-defined]
    """A message sent to the bounce address that the classifier could not read: kept for an
    editor to look at, never dropped."""

    __tablename__ = "unread_bounces"

    id: Mapped[int] = mapped_column(primary_key=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    source: Mapped[BounceSource] = mapped_column(enum_column(BounceSource))
    subject: Mapped[str] = mapped_column(String(998), default="")
    #: why the classifier gave up
    problem: Mapped[str] = mapped_column(Text, default="")
    #: the message as it came (capped by the intake before parsing)
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    #: set when an editor dealt with it (classified it by hand or dismissed it)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
