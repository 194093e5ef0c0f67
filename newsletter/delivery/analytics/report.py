"""An issue's analytics: totals and series over time, for the page, the API and the charts.

Every query reads a primary-key range of a small table (``analytics_counts``,
``delivery_timeline``), summed in SQL, and the few bounce events not folded into the counts
yet (``rollup.py``); nothing scans the deliveries or all the bounces, so an issue of ten
million recipients answers about as fast as one of ten.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, cast, func, select

from newsletter.content.models import Issue, IssueStatus, TrackingMode
from newsletter.delivery.analytics.counters import hour_of
from newsletter.delivery.analytics.models import AnalyticsCount, DeliveryTimeline, Metric
from newsletter.delivery.analytics.rollup import METRIC_OF, aware, unfolded_bounces
from newsletter.delivery.analytics.tracking import tracked_links
from newsletter.delivery.bounces.models import BounceKind
from newsletter.delivery.control.progress import progress
from newsletter.errors import NotFound
from newsletter.extensions import db

counts = AnalyticsCount.__table__
timeline = DeliveryTimeline.__table__

#: what the events chart shows, in order: key → label
EVENT_SERIES = {
    "bounced": "Bounced",
    "complained": "Complaints",
    "unsubscribed": "Unsubscribed",
    "opens": "Opens",
    "clicks": "Clicks",
}
#: bucket widths the events chart may use, smallest first (at most ``MAX_BUCKETS`` bars)
BUCKETS = (timedelta(hours=1), timedelta(hours=3), timedelta(hours=6), timedelta(days=1),
           timedelta(days=7))  # fmt: skip
MAX_BUCKETS = 72
#: the delivery chart keeps at most this many points (minutes, merged when the send is long)
MAX_POINTS = 120


@dataclass(frozen=True)
class Point:
    at: datetime
    values: dict[str, int]


@dataclass(frozen=True)
class LinkClicks:
    position: int
    url: str
    clicks: int
    filtered: int


@dataclass
class IssueAnalytics:
    """What the page shows about one issue."""

    issue_id: int
    status: IssueStatus
    tracking: TrackingMode
    totals: dict[str, int]
    #: sent and failed so far, at the end of each minute (or merged minutes) of the send
    delivery: list[Point] = field(default_factory=list)
    #: bounces, complaints, unsubscribes, opens and clicks per bucket
    events: list[Point] = field(default_factory=list)
    bucket: timedelta = BUCKETS[0]
    links: list[LinkClicks] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """For ``GET /api/v1/issues/{id}/analytics`` (its schema writes the times)."""
        return {
            "issue_id": self.issue_id,
            "status": self.status,
            "tracking": self.tracking.value,
            "totals": self.totals,
            "bucket_seconds": int(self.bucket.total_seconds()),
            "delivery": [{"at": p.at, **p.values} for p in self.delivery],
            "events": [{"at": p.at, **p.values} for p in self.events],
            "links": [
                {"position": link.position, "url": link.url, "clicks": link.clicks,
                 "filtered": link.filtered}
                for link in self.links
            ],
        }  # fmt: skip


def issue_analytics(issue_id: int, *, now: datetime | None = None) -> IssueAnalytics:
    """Totals and series for the issue.

    :raises NotFound: no such issue.
    """
    issue = db.session.get(Issue, issue_id)
    if issue is None:
        raise NotFound("issue", issue_id)
    state = progress(issue_id, now=now)
    unfolded = unfolded_bounces(issue_id)
    metric_totals = _totals(issue_id, unfolded)
    totals = {
        "delivered": state.counts.sent,
        "failed": state.counts.failed,
        "bounced": metric_totals[Metric.HARD_BOUNCE] + metric_totals[Metric.SOFT_BOUNCE],
        "hard_bounces": metric_totals[Metric.HARD_BOUNCE],
        "soft_bounces": metric_totals[Metric.SOFT_BOUNCE],
        "complained": metric_totals[Metric.COMPLAINT],
        "unsubscribed": metric_totals[Metric.UNSUBSCRIBE],
        "opens": metric_totals[Metric.OPEN],
        "opens_filtered": metric_totals[Metric.OPEN_FILTERED],
        "unique_opens": metric_totals[Metric.OPEN_UNIQUE],
        "clicks": metric_totals[Metric.CLICK],
        "clicks_filtered": metric_totals[Metric.CLICK_FILTERED],
        "unique_clicks": metric_totals[Metric.CLICK_UNIQUE],
    }
    events, bucket = _events(issue_id, issue.started_at, unfolded)
    by_link = _links(issue_id)
    links = []
    if issue.rendered_html and (by_link or issue.tracking is not TrackingMode.OFF):
        for position, url in enumerate(tracked_links(issue.rendered_html), start=1):
            clicked = by_link.get(position, (0, 0))
            links.append(LinkClicks(position, url, clicked[0], clicked[1]))
    return IssueAnalytics(
        issue_id=issue_id,
        status=state.status,
        tracking=issue.tracking,
        totals=totals,
        delivery=_delivery(issue_id),
        events=events,
        bucket=bucket,
        links=links,
    )


#: what the events chart takes from the counts, by metric
_SERIES_OF = {
    Metric.UNSUBSCRIBE: "unsubscribed",
    Metric.OPEN: "opens",
    Metric.CLICK: "clicks",
    Metric.HARD_BOUNCE: "bounced",
    Metric.SOFT_BOUNCE: "bounced",
    Metric.COMPLAINT: "complained",
}


def _totals(issue_id: int, unfolded: dict[tuple[BounceKind, datetime], int]) -> dict[Metric, int]:
    """The issue's total of each metric (summed in SQL), bounces not folded in yet added."""
    totals: dict[Metric, int] = dict.fromkeys(Metric, 0)
    for metric, total in db.session.execute(
        select(counts.c.metric, func.sum(counts.c.count))
        .where(counts.c.issue_id == issue_id)
        .group_by(counts.c.metric)
    ):
        totals[Metric(metric)] += int(total)
    for (kind, _), count in unfolded.items():
        totals[METRIC_OF[kind]] += count
    return totals


def _links(issue_id: int) -> dict[int, tuple[int, int]]:
    """(clicks, filtered) by link position."""
    links: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for metric, link, total in db.session.execute(
        select(counts.c.metric, counts.c.link, func.sum(counts.c.count))
        .where(counts.c.issue_id == issue_id, counts.c.link > 0,
               counts.c.metric.in_([Metric.CLICK, Metric.CLICK_FILTERED]))
        .group_by(counts.c.metric, counts.c.link)
    ):  # fmt: skip
        links[int(link)][0 if Metric(metric) is Metric.CLICK else 1] += int(total)
    return {key: (value[0], value[1]) for key, value in links.items()}


def _slot(column: Any, start: int, seconds: int) -> Any:
    """In SQL: which bucket of ``seconds`` from ``start`` (seconds since 1970) a time is in;
    never negative here, so SQLite's integer division is the floor."""
    if db.engine.dialect.name == "postgresql":
        return func.floor((func.extract("epoch", column) - start) / seconds)
    return (cast(func.strftime("%s", column), Integer) - start) / seconds


def _events(
    issue_id: int, started_at: datetime | None, unfolded: dict[tuple[BounceKind, datetime], int]
) -> tuple[list[Point], timedelta]:
    """The events chart: counts per bucket from the start (or the first count) to the last,
    in the smallest buckets that keep it to ``MAX_BUCKETS`` bars, summed in SQL."""
    where = [counts.c.issue_id == issue_id, counts.c.metric.in_(list(_SERIES_OF))]
    low, high = db.session.execute(
        select(func.min(counts.c.hour), func.max(counts.c.hour)).where(*where)
    ).one()
    moments = [aware(value) for value in (low, high) if value is not None]
    moments += [hour for _, hour in unfolded]
    if not moments:
        return [], BUCKETS[0]
    first, last = min(moments), max(moments)
    if started_at is not None:
        first = min(first, hour_of(aware(started_at)))
    bucket = next((size for size in BUCKETS if (last - first) / size < MAX_BUCKETS), BUCKETS[-1])
    origin = first.replace(hour=0) if bucket >= timedelta(days=1) else first
    if timedelta(hours=1) < bucket < timedelta(days=1):
        origin = first.replace(hour=first.hour - first.hour % int(bucket.total_seconds() // 3600))
    seconds = int(bucket.total_seconds())
    start = int(origin.timestamp())
    index = _slot(counts.c.hour, start, seconds).label("slot")
    merged: dict[int, dict[str, int]] = {}
    for slot in range((last - origin) // bucket + 1):
        merged[slot] = dict.fromkeys(EVENT_SERIES, 0)
    for metric, slot, total in db.session.execute(
        select(counts.c.metric, index, func.sum(counts.c.count))
        .where(*where)
        .group_by(counts.c.metric, index)
    ):
        merged[int(slot)][_SERIES_OF[Metric(metric)]] += int(total)
    for (kind, hour), count in unfolded.items():
        merged[(hour - origin) // bucket][_SERIES_OF[METRIC_OF[kind]]] += count
    return [Point(origin + bucket * slot, values) for slot, values in merged.items()], bucket


def _delivery(issue_id: int) -> list[Point]:
    """Sent and failed so far, minute by minute (the last minute of each merged span)."""
    rows = db.session.execute(
        select(timeline.c.minute, timeline.c.sent, timeline.c.failed)
        .where(timeline.c.issue_id == issue_id)
        .order_by(timeline.c.minute)
    ).all()
    points = [Point(aware(minute), {"sent": sent, "failed": failed})
              for minute, sent, failed in rows]  # fmt: skip
    if len(points) <= MAX_POINTS:
        return points
    step = -(-len(points) // MAX_POINTS)
    kept = points[step - 1 :: step]
    if kept[-1] is not points[-1]:
        kept.append(points[-1])
    return kept
