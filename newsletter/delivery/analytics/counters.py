"""Counting what happened to an issue: by the hour, with one upsert per event.

Opens, clicks and unsubscribes are counted as they happen (``bump``); the delivery timeline
is noted from the progress samples a send takes anyway (``note_progress``), so the hot path
of a send writes nothing more. Both tables are read by primary-key ranges only, so the
charts cost the same at 10,000 or 10,000,000 deliveries.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite

from newsletter.delivery.analytics.models import AnalyticsCount, DeliveryTimeline, Metric
from newsletter.extensions import db
from newsletter.models import utcnow

counts = AnalyticsCount.__table__
timeline = DeliveryTimeline.__table__


def hour_of(moment: datetime) -> datetime:
    """The start of the moment's hour."""
    return moment.replace(minute=0, second=0, microsecond=0)


def minute_of(moment: datetime) -> datetime:
    """The start of the moment's minute."""
    return moment.replace(second=0, microsecond=0)


def _insert(table: Any) -> Any:
    """INSERT … ON CONFLICT for this database (PostgreSQL and SQLite both have it)."""
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def bump(
    issue_id: int, metric: Metric, *, link: int = 0, at: datetime | None = None, by: int = 1
) -> None:
    """Add ``by`` to the issue's count of ``metric`` (for ``link``) in the hour of ``at``.

    One statement, safe against others counting at the same time; the caller commits.
    """
    statement = _insert(counts).values(
        issue_id=issue_id, metric=metric, link=link, hour=hour_of(at or utcnow()), count=by
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[counts.c.issue_id, counts.c.metric, counts.c.link, counts.c.hour],
            set_={"count": counts.c.count + statement.excluded.count},
        )
    )


def bump_many(rows: list[dict[str, Any]]) -> None:
    """``bump`` for many (issue, metric, hour) at once, in one batch: each row's
    ``issue_id``, ``metric``, ``hour`` (an hour's start) and ``count``. The caller commits."""
    if not rows:
        return
    statement = _insert(counts)
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[counts.c.issue_id, counts.c.metric, counts.c.link, counts.c.hour],
            set_={"count": counts.c.count + statement.excluded.count},
        ),
        [{"link": 0, **row} for row in rows],
    )


def record_unsubscribe(issue_id: int, at: datetime | None = None) -> None:
    """Count one unsubscribe from a link mailed with the issue, and commit. Only the count
    is kept: the subscription itself already says who left, and when."""
    bump(issue_id, Metric.UNSUBSCRIBE, at=at)
    db.session.commit()


def note_progress(
    issue_id: int, taken_at: datetime, *, sent: int, failed: int,
    finished_at: datetime | None = None,
) -> None:  # fmt: skip
    """Keep the issue's totals as last counted in the minute of ``taken_at``.

    A count taken after the send finished belongs to the minute it finished in (someone
    may look days later), so the timeline never shows a late jump. The caller commits.
    """
    moment = min(taken_at, finished_at) if finished_at is not None else taken_at
    statement = _insert(timeline).values(
        issue_id=issue_id, minute=minute_of(moment), sent=sent, failed=failed
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[timeline.c.issue_id, timeline.c.minute],
            set_={"sent": statement.excluded.sent, "failed": statement.excluded.failed},
        )
    )
