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

from sqlalchemy import func, select

from newsletter.content.models import Issue, IssueStatus, TrackingMode
from newsletter.delivery.analytics.counters import hour_of
from newsletter.delivery.analytics.models import AnalyticsCount, DeliveryTimeline, Metric
from newsletter.delivery.analytics.rollup import METRIC_OF, aware, unfolded_bounces
from newsletter.delivery.analytics.tracking import tracked_links
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
    metric_totals, by_hour, by_link = _counters(issue_id)
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
    hourly: dict[datetime, dict[str, int]] = defaultdict(lambda: dict.fromkeys(EVENT_SERIES, 0))
    for (metric, hour), count in by_hour.items():
        hourly[hour][_SERIES_OF[metric]] += count
    start = issue.started_at
    events, bucket = _bucketed(hourly, start)
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


def _counters(
    issue_id: int,
) -> tuple[dict[Metric, int], dict[tuple[Metric, datetime], int], dict[int, tuple[int, int]]]:
    """Totals by metric, counts by (metric, hour), and (clicks, filtered) by link: summed in
    SQL over the issue's range of the primary key, bounces not folded in yet added."""
    where = counts.c.issue_id == issue_id
    totals: dict[Metric, int] = dict.fromkeys(Metric, 0)
    for metric, total in db.session.execute(
        select(counts.c.metric, func.sum(counts.c.count)).where(where).group_by(counts.c.metric)
    ):
        totals[Metric(metric)] += int(total)
    by_hour: dict[tuple[Metric, datetime], int] = defaultdict(int)
    for metric, hour, total in db.session.execute(
        select(counts.c.metric, counts.c.hour, func.sum(counts.c.count))
        .where(where, counts.c.metric.in_(list(_SERIES_OF)))
        .group_by(counts.c.metric, counts.c.hour)
    ):
        by_hour[(Metric(metric), aware(hour))] += int(total)
    links: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for metric, link, total in db.session.execute(
        select(counts.c.metric, counts.c.link, func.sum(counts.c.count))
        .where(where, counts.c.link > 0,
               counts.c.metric.in_([Metric.CLICK, Metric.CLICK_FILTERED]))
        .group_by(counts.c.metric, counts.c.link)
    ):  # fmt: skip
        links[int(link)][0 if Metric(metric) is Metric.CLICK else 1] += int(total)
    for (kind, hour), count in unfolded_bounces(issue_id).items():
        totals[METRIC_OF[kind]] += count
        by_hour[(METRIC_OF[kind], hour)] += count
    return totals, by_hour, {key: (value[0], value[1]) for key, value in links.items()}


def _bucketed(
    hourly: dict[datetime, dict[str, int]], start: datetime | None
) -> tuple[list[Point], timedelta]:
    """Hourly counts merged into the smallest buckets that keep the chart to
    ``MAX_BUCKETS`` bars, every bucket from the start (or the first count) to the last."""
    if not hourly:
        return [], BUCKETS[0]
    first = min(hourly)
    if start is not None:
        first = min(first, hour_of(aware(start)))
    last = max(hourly)
    bucket = next((size for size in BUCKETS if (last - first) / size < MAX_BUCKETS), BUCKETS[-1])
    origin = first.replace(hour=0) if bucket >= timedelta(days=1) else first
    if timedelta(hours=1) < bucket < timedelta(days=1):
        origin = first.replace(hour=first.hour - first.hour % int(bucket.total_seconds() // 3600))
    merged: dict[datetime, dict[str, int]] = {}
    moment = origin
    while moment <= last:
        merged[moment] = dict.fromkeys(EVENT_SERIES, 0)
        moment += bucket
    for hour, values in hourly.items():
        key = origin + bucket * ((hour - origin) // bucket)
        for name, count in values.items():
            merged[key][name] += count
    return [Point(at, values) for at, values in merged.items()], bucket


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
