"""What analytics keeps: counts by the hour (no row names a person), the delivery timeline,
and, only for issues whose editor chose ``individual`` tracking, one row per open or click."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from newsletter.content.models import TrackingMode
from newsletter.delivery.bounces.models import BounceEvent
from newsletter.extensions import db
from newsletter.models import UTCDateTime, enum_column, utcnow


class Metric(enum.Enum):
    OPEN = "open"
    OPEN_FILTERED = "open_filtered"  # a privacy proxy, a scanner, a HEAD request
    OPEN_UNIQUE = "open_unique"  # individual mode: a delivery's first open
    CLICK = "click"
    CLICK_FILTERED = "click_filtered"  # a link scanner: too fast, HEAD, a known agent
    CLICK_UNIQUE = "click_unique"  # individual mode: a delivery's first click
    UNSUBSCRIBE = "unsubscribe"  # from a link mailed with this issue
    # folded in from ``bounce_events`` (``rollup.py``), so the charts never scan them
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"


class TrackingKind(enum.Enum):
    OPEN = "open"
    CLICK = "click"


class AnalyticsCount(db.Model):  # type: ignore[name-defined]
    """How many times ``metric`` happened for an issue (and one of its links) in an hour."""

    __tablename__ = "analytics_counts"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    metric: Mapped[Metric] = mapped_column(enum_column(Metric), primary_key=True)
    #: the link's position in the issue (1 …), 0 for what is not about a link
    link: Mapped[int] = mapped_column(primary_key=True, default=0)
    #: the hour's start, UTC
    hour: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)

    def __repr__(self) -> str:
        return (
            f"<AnalyticsCount issue={self.issue_id} {self.metric.value} {self.hour} {self.count}>"
        )


class TrackingEvent(db.Model):  # type: ignore[name-defined]
    """One open or click of one delivery (``individual`` mode only); no address, no agent."""

    __tablename__ = "tracking_events"
    __table_args__ = (
        Index("ix_tracking_events_delivery_id_kind", "delivery_id", "kind"),
        Index("ix_tracking_events_issue_id_kind", "issue_id", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issues.id", ondelete="CASCADE"))
    #: erasing the person erases their deliveries, and these with them
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id", ondelete="CASCADE"))
    kind: Mapped[TrackingKind] = mapped_column(enum_column(TrackingKind))
    link: Mapped[int] = mapped_column(default=0)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class DeliveryTimeline(db.Model):  # type: ignore[name-defined]
    """An issue's sent and failed totals as last counted in a minute (from the progress
    samples the send takes anyway, so the hot path writes nothing more)."""

    __tablename__ = "delivery_timeline"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issues.id", ondelete="CASCADE"), primary_key=True
    )
    minute: Mapped[datetime] = mapped_column(UTCDateTime(), primary_key=True)
    sent: Mapped[int] = mapped_column(default=0)
    failed: Mapped[int] = mapped_column(default=0)


class AnalyticsMark(db.Model):  # type: ignore[name-defined]
    """How far a table of events is folded into ``analytics_counts`` (``rollup.py``)."""

    __tablename__ = "analytics_marks"

    name: Mapped[str] = mapped_column(String(50), primary_key=True)
    #: every event with an id up to this one is in the counts
    last_id: Mapped[int] = mapped_column(default=0)
    #: the highest id seen at ``pending_at``: folded in once every writer then has finished
    pending_id: Mapped[int] = mapped_column(default=0)
    pending_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


#: the charts read an issue's bounces and complaints by kind and time: an index range (the
#: table is the bounce handling's; the index is ours, made by migration 0017)
_bounces = BounceEvent.__table__
Index(
    "ix_bounce_events_issue_id_kind_occurred_at",
    _bounces.c.issue_id,
    _bounces.c.kind,
    _bounces.c.occurred_at,
)

__all__ = [
    "AnalyticsCount",
    "AnalyticsMark",
    "DeliveryTimeline",
    "Metric",
    "TrackingEvent",
    "TrackingKind",
    "TrackingMode",
]
