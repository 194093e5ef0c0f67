"""Folding the bounce events into the hourly counts, so the charts never scan them.

The bounce handling writes ``bounce_events`` (one row per report, possibly hundreds of
thousands for a large issue); grouping them at every look would cost a second at that size.
The sweeper folds them in by id instead: a range of the primary key at a time, each row
once. Ids are handed out before commit, so a row may become visible after a higher one;
the fold therefore only goes up to the highest id seen ``SETTLE`` ago, by when every
writer then has committed or given up. What is above the mark is read live
(``unfolded_bounces``): a short range, and the answer is exact either way.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from newsletter.delivery.analytics.counters import bump_many
from newsletter.delivery.analytics.models import AnalyticsMark, Metric
from newsletter.delivery.bounces.models import BounceEvent, BounceKind
from newsletter.extensions import db
from newsletter.models import utcnow

bounces = BounceEvent.__table__
marks = AnalyticsMark.__table__
MARK = "bounce_events"
#: longer than any transaction that writes a bounce event stays open
SETTLE = timedelta(seconds=60)
METRIC_OF = {
    BounceKind.HARD: Metric.HARD_BOUNCE,
    BounceKind.SOFT: Metric.SOFT_BOUNCE,
    BounceKind.COMPLAINT: Metric.COMPLAINT,
}


def hour_expression(column: Any) -> Any:
    """The start of the column's hour, in SQL (UTC)."""
    if db.engine.dialect.name == "postgresql":
        return func.date_trunc("hour", column.op("AT TIME ZONE")(literal_column("'UTC'")))
    return func.strftime("%Y-%m-%d %H:00:00", column)


def aware(value: Any) -> datetime:
    """A time from the database, timezone-aware (SQLite gives strings or naive times)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _kind(value: Any) -> BounceKind:
    return value if isinstance(value, BounceKind) else BounceKind(value)


def folded_up_to() -> int:
    """The id up to which bounce events are in the counts (0: none yet)."""
    return int(db.session.scalar(select(marks.c.last_id).where(marks.c.name == MARK)) or 0)


def unfolded_bounces(issue_id: int) -> dict[tuple[BounceKind, datetime], int]:
    """The issue's bounce events not folded in yet, counted by kind and hour."""
    hour = hour_expression(bounces.c.occurred_at).label("hour")
    rows = db.session.execute(
        select(bounces.c.kind, hour, func.count())
        .where(bounces.c.issue_id == issue_id, bounces.c.id > folded_up_to())
        .group_by(bounces.c.kind, hour)
    ).all()
    counted: dict[tuple[BounceKind, datetime], int] = defaultdict(int)
    for kind, at, count in rows:
        counted[(_kind(kind), aware(at))] += int(count)
    return counted


def fold_bounces(now: datetime | None = None) -> int:
    """Fold the settled bounce events into the counts and commit; how many were folded.

    Run by the sweeper. Two at once on PostgreSQL take turns on the mark's row; on SQLite
    the second one's write is refused, and it leaves the work to the next sweep.
    """
    now = now or utcnow()
    try:
        folded = _fold(now)
    except OperationalError:  # SQLite: another process is folding right now
        db.session.rollback()
        return 0
    db.session.commit()
    return folded


def _fold(now: datetime) -> int:
    dialect = postgresql if db.engine.dialect.name == "postgresql" else sqlite
    db.session.execute(
        dialect.insert(marks)
        .values(name=MARK, last_id=0, pending_id=0, pending_at=None)
        .on_conflict_do_nothing(index_elements=[marks.c.name])
    )
    mark = db.session.execute(
        select(marks.c.last_id, marks.c.pending_id, marks.c.pending_at)
        .where(marks.c.name == MARK)
        .with_for_update()
    ).one()
    last_id, pending_id = int(mark.last_id), int(mark.pending_id)
    settled = mark.pending_at is None or aware(mark.pending_at) <= now - SETTLE
    if not settled:
        return 0
    folded = 0
    if pending_id > last_id:
        hour = hour_expression(bounces.c.occurred_at).label("hour")
        rows = db.session.execute(
            select(bounces.c.issue_id, bounces.c.kind, hour, func.count())
            .where(
                bounces.c.id > last_id,
                bounces.c.id <= pending_id,
                bounces.c.issue_id.is_not(None),
            )
            .group_by(bounces.c.issue_id, bounces.c.kind, hour)
        ).all()
        bump_many([
            {"issue_id": int(issue_id), "metric": METRIC_OF[_kind(kind)], "hour": aware(at),
             "count": int(count)}
            for issue_id, kind, at, count in rows
        ])  # fmt: skip
        folded = sum(int(row[3]) for row in rows)
        last_id = pending_id
    highest = int(db.session.scalar(select(func.max(bounces.c.id))) or 0)
    db.session.execute(
        marks.update()
        .where(marks.c.name == MARK)
        .values(last_id=last_id, pending_id=max(highest, last_id), pending_at=now)
    )
    return folded
