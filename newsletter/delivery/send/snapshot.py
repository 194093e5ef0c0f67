"""The audience of an issue, fixed when sending starts and written into ``deliveries``.

The audience is every active subscriber with a confirmed subscription on any target list,
whose domain is not blocklisted, once each, up to the highest subscriber id at the start
(``issue.max_subscriber_id``). An issue may also target segments (``audience/segments``):
they narrow that audience, every one of them must match; an issue with segments and no
lists goes to every active subscriber confirmed on at least one list who matches them.
The segments are compiled into the same ``INSERT … SELECT`` (bound parameters only), so
they cost the database a filter, not a round trip per person.
It is written in ascending subscriber-id ranges, one statement and one commit per range, so
the first batch can go out while later ranges are still being written: the first range is
one batch, and the ranges after it grow to a few batches each (fewer statements and commits;
each range is then split into batches by delivery id). Because ranges are written in order
and each atomically, everything up to the highest subscriber id already in ``deliveries`` is
done: a re-run resumes from there, and a duplicate row is impossible (``ON CONFLICT DO
NOTHING`` on the unique pair).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Result, exists, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from newsletter.audience.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.privacy_models import BlockedDomain
from newsletter.audience.segments.compile import compile_tree
from newsletter.audience.segments.models import Segment, issue_segments
from newsletter.audience.segments.query import parse
from newsletter.content.models import issue_lists
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.extensions import db

log = logging.getLogger(__name__)

subscribers = Subscriber.__table__
subscriptions = Subscription.__table__
deliveries = Delivery.__table__
blocked_domains = BlockedDomain.__table__


@dataclass(frozen=True)
class WrittenRange:
    """One range of the audience, written: its delivery ids and how many rows are new."""

    first_id: int
    last_id: int
    added: int


def audience_ceiling() -> int:
    """The highest subscriber id now: subscribers added later are not in this send."""
    return int(db.session.scalar(select(func.coalesce(func.max(subscribers.c.id), 0))) or 0)


#: the ranges after the first grow (doubling) up to this many batches each
MAX_RANGE_BATCHES = 8
#: with segments, a range may span this many times more of the lists' recipients
MAX_SEGMENT_STRETCH = 16


@dataclass(frozen=True)
class Targets:
    """What an issue targets, read once per pass over its audience."""

    #: False: segments only, so any confirmed list will do
    has_lists: bool = True
    #: the issue's segments compiled into one condition on ``subscribers``; None: no segments
    segments: ColumnElement[bool] | None = None


def targets_of(issue_id: int) -> Targets:
    """The issue's lists (whether it has any) and its segments, compiled for this database."""
    has_lists = db.session.scalar(
        select(exists().where(issue_lists.c.issue_id == issue_id))
    )
    queries = db.session.scalars(
        select(Segment.query)
        .join(issue_segments, issue_segments.c.segment_id == Segment.id)
        .where(issue_segments.c.issue_id == issue_id)
        .order_by(Segment.id)
    ).all()
    if not queries:
        return Targets(has_lists=bool(has_lists))
    dialect = db.session.get_bind().dialect.name
    compiled = [compile_tree(parse(query), dialect) for query in queries]
    narrowing = compiled[0]
    for condition in compiled[1:]:
        narrowing = narrowing & condition
    return Targets(has_lists=bool(has_lists), segments=narrowing)


def is_recipient(
    issue_id: int, after: int, upto: int, targets: Targets | None = None
) -> ColumnElement[bool]:
    """SQL condition on ``subscribers`` with ids in ``(after, upto]``: active, confirmed
    on one of the issue's lists (on any list, for an issue with segments and no lists),
    matching every segment of the issue (``targets``; none when not given), and not at a
    blocklisted domain."""
    targets = targets or Targets()
    confirmed_on = [
        subscriptions.c.subscriber_id == subscribers.c.id,
        # The same bounds again, on subscriptions: otherwise PostgreSQL reads every
        # subscription from the lowest id (or the whole table) for each range.
        subscriptions.c.subscriber_id > after,
        subscriptions.c.subscriber_id <= upto,
        subscriptions.c.status == SubscriptionStatus.CONFIRMED,
    ]
    if targets.has_lists:
        target_lists = select(issue_lists.c.list_id).where(issue_lists.c.issue_id == issue_id)
        confirmed_on.append(subscriptions.c.list_id.in_(target_lists))
    condition = (
        (subscribers.c.id > after)
        & (subscribers.c.id <= upto)
        & (subscribers.c.status == SubscriberStatus.ACTIVE)
        & exists().where(*confirmed_on)
    )
    if targets.segments is not None:
        condition = condition & targets.segments
    if _any_blocked_domain():
        # Only then: with no domain blocked (the usual case) the send's SQL is unchanged.
        condition &= ~exists().where(blocked_domains.c.domain == _domain_of_email())
    return condition


def _any_blocked_domain() -> bool:
    return db.session.scalar(select(blocked_domains.c.id).limit(1)) is not None


def _domain_of_email() -> ColumnElement[str]:
    """The domain of ``subscribers.email`` in SQL (stored addresses hold one ``@``)."""
    email = subscribers.c.email
    if db.session.get_bind().dialect.name == "postgresql":
        return func.lower(func.split_part(email, "@", 2))
    return func.lower(func.substr(email, func.instr(email, "@") + 1))


def has_recipients(issue_id: int, ceiling: int) -> bool:
    """True when at least one subscriber up to ``ceiling`` would get the issue (one probe
    that stops at the first, checked before a send starts)."""
    where = is_recipient(issue_id, 0, ceiling, targets_of(issue_id))
    first = db.session.scalar(select(subscribers.c.id).where(where).limit(1))
    return first is not None


def count_audience(issue_id: int) -> int:
    """How many people the issue's selection holds now: what a send starting now would
    write (the lists' confirmed members, narrowed by its segments)."""
    where = is_recipient(issue_id, 0, audience_ceiling(), targets_of(issue_id))
    return int(db.session.scalar(select(func.count()).select_from(subscribers).where(where)) or 0)


def written_up_to(issue_id: int) -> int:
    """The highest subscriber id already in the issue's deliveries (0 for none)."""
    highest = select(func.coalesce(func.max(deliveries.c.subscriber_id), 0)).where(
        deliveries.c.issue_id == issue_id
    )
    return int(db.session.scalar(highest) or 0)


def next_range_end(
    issue_id: int, after: int, ceiling: int, size: int, targets: Targets | None = None
) -> int | None:
    """The subscriber id that closes the next range of at most ``size`` recipients above
    ``after``; None when no recipient is left below the ceiling."""
    ids = (
        select(subscribers.c.id)
        .where(is_recipient(issue_id, after, ceiling, targets))
        .order_by(subscribers.c.id)
        .limit(size)
        .subquery()
    )
    end = db.session.scalar(select(func.max(ids.c.id)))
    return int(end) if end is not None else None


def write_range(
    issue_id: int, after: int, end: int, targets: Targets | None = None
) -> WrittenRange | None:
    """Insert the recipients with ids in ``(after, end]`` as pending deliveries (not committed).

    :returns: the range of delivery ids now holding them, or None if there are none.
    """
    chosen = select(
        literal(issue_id),
        subscribers.c.id,
        literal(DeliveryStatus.PENDING.value),
        literal(0),
    ).where(is_recipient(issue_id, after, end, targets))
    statement = _insert()(deliveries).from_select(
        ["issue_id", "subscriber_id", "status", "attempts"], chosen.order_by(subscribers.c.id)
    )
    statement = statement.on_conflict_do_nothing(
        index_elements=["issue_id", "subscriber_id"]
    ).returning(deliveries.c.id)
    # Counted from RETURNING: psycopg reports no rowcount for INSERT … SELECT … ON CONFLICT.
    added = len(db.session.execute(statement).all())
    bounds = db.session.execute(
        select(func.min(deliveries.c.id), func.max(deliveries.c.id)).where(
            deliveries.c.issue_id == issue_id,
            deliveries.c.subscriber_id > after,
            deliveries.c.subscriber_id <= end,
        )
    ).one()
    if bounds[0] is None:
        return None
    return WrittenRange(first_id=int(bounds[0]), last_id=int(bounds[1]), added=int(added))


def write_audience(issue_id: int, ceiling: int, size: int) -> Iterator[WrittenRange]:
    """Write the rest of the audience range by range, committing each before yielding it.

    The first range holds ``size`` recipients, so that its batch starts at once; each next
    one twice as many, up to ``MAX_RANGE_BATCHES`` times ``size``.
    """
    after = written_up_to(issue_id)
    targets = targets_of(issue_id)
    # The ranges are cut on the lists' recipients alone: the planner cannot estimate how
    # many people a segment keeps (JSON, EXISTS), and with a low guess it gives up walking
    # subscribers in id order up to the LIMIT for a plan that reads the whole table first.
    # The segments then narrow each range's INSERT … SELECT, bounded by ids.
    plain = Targets(has_lists=targets.has_lists)
    range_size = size
    most = size * MAX_RANGE_BATCHES
    while after < ceiling:
        end = next_range_end(issue_id, after, ceiling, range_size, plain)
        if end is None:
            return
        written = write_range(issue_id, after, end, targets)
        db.session.commit()
        if written is not None:
            yield written
        after = end
        if targets.segments is None:
            range_size = min(range_size * 2, most)
        elif written is None or written.added < most:
            # a segment thins the ranges out: stretch them until they write as much as a
            # plain range would, within reason
            range_size = min(range_size * 2, most * MAX_SEGMENT_STRETCH)


def split_range(written: WrittenRange, size: int) -> list[tuple[int, int]]:
    """The delivery ids of a written range in batches of at most ``size`` ids.

    One INSERT numbers its rows consecutively; rows another issue wrote at the same time
    only leave some batches with fewer rows of this one.
    """
    return [
        (first, min(first + size - 1, written.last_id))
        for first in range(written.first_id, written.last_id + 1, size)
    ]


def refresh_statistics(*tables: str) -> None:
    """``ANALYZE`` the tables on PostgreSQL before a send reads them row by row.

    Right after a big import the planner still thinks a list has a handful of subscribers
    and looks up each recipient's subscription by scanning the whole list: at a million
    recipients that is most of the send's time. ANALYZE samples, but at a million rows it
    still takes seconds on a loaded machine: tables whose statistics are fresh (see
    ``_statistics_stale``) are left alone. Nothing to do on SQLite; a database user not
    allowed to ANALYZE only loses speed.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return
    db.session.commit()
    try:
        for table in tables:
            if _statistics_stale(table):
                db.session.execute(text(f"ANALYZE {table}"))  # names are ours, never input
        db.session.commit()
    except DBAPIError as error:
        db.session.rollback()
        log.warning("could not refresh planner statistics: %s", error)


#: statistics are redone when the table's size or its changed rows since the last ANALYZE
#: pass this share of it (autovacuum's own default threshold is 10 %)
STALE_SHARE = 0.1


def _statistics_stale(table: str) -> bool:
    """Whether ``table``'s planner statistics no longer describe it: never gathered, the
    table grew or shrank by more than ``STALE_SHARE`` since (its size on disk now against
    the size ANALYZE saw, exact even right after another process's import), or that share
    of its rows changed since (the statistics collector's count).

    ANALYZE of a million subscribers and their subscriptions takes 2 to 4 s on a loaded
    machine: done at every send, it was most of the wait for the first message.
    """
    row = db.session.execute(
        text(
            "SELECT c.reltuples, c.relpages, "
            "pg_relation_size(c.oid) / current_setting('block_size')::int, "
            "coalesce(s.n_mod_since_analyze, 0), "
            "s.last_analyze IS NULL AND s.last_autoanalyze IS NULL "
            "FROM pg_class c LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "WHERE c.oid = to_regclass(:name)"
        ),
        {"name": table},
    ).first()
    if row is None:
        return True
    reltuples, relpages, pages_now, changed, never = row
    if never or reltuples is None or float(reltuples) < 0:
        return True
    if abs(int(pages_now or 0) - int(relpages or 0)) > STALE_SHARE * max(int(relpages or 0), 1):
        return True
    return int(changed or 0) > STALE_SHARE * max(float(reltuples), 1.0)


def rowcount(result: Result[Any]) -> int:
    """Rows an INSERT or UPDATE touched (typed: every DML result is a cursor result)."""
    return int(cast(CursorResult[Any], result).rowcount or 0)


def _insert() -> Any:
    """The dialect's INSERT, which knows ``ON CONFLICT DO NOTHING`` (SQLite and PostgreSQL)."""
    if db.session.get_bind().dialect.name == "postgresql":
        return pg_insert
    return sqlite_insert
