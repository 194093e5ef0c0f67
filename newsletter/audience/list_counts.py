"""How many people each list holds, by subscription status, fast at a million rows.

The lists page used to group every subscription (``count(*) … GROUP BY list_id, status``):
a read of the whole table at each look. On PostgreSQL the large figures now come from the
extended statistics ``st_subscriptions_list_id_status`` (migration 0020: the most common
``(list_id, status)`` pairs with their share of the rows, refreshed by ANALYZE and
autovacuum), shown as "about N"; the small ones, and every pair the statistics do not name,
are counted exactly through the ``(list_id, status)`` index, which is quick for few rows.
Small databases (and SQLite) are counted exactly, as before.
"""

from __future__ import annotations

from sqlalchemy import func, select

from newsletter.audience.models import MailingList, Subscription, SubscriptionStatus
from newsletter.extensions import db
from newsletter.ops.estimates import EXACT_BELOW, Tally, estimated_rows, pair_frequencies

#: the extended statistics object on ``subscriptions (list_id, status)``
STATISTICS = "st_subscriptions_list_id_status"

subscriptions = Subscription.__table__

Counts = dict[int, dict[str, Tally]]


def subscription_counts() -> Counts:
    """Per list id, per subscription status value: how many subscriptions (exact or about)."""
    total = estimated_rows(subscriptions)
    frequencies = pair_frequencies(subscriptions, STATISTICS) if total else None
    if total is None or total < EXACT_BELOW or not frequencies:
        return _exact()
    counts: Counts = {}
    estimated: set[tuple[int, str]] = set()
    for (list_id, stored), share in frequencies.items():
        rows = int(share * total)
        if rows >= EXACT_BELOW and list_id.isdigit():
            value = _status_value(stored)
            counts.setdefault(int(list_id), {})[value] = Tally(rows, exact=False)
            estimated.add((int(list_id), value))
    list_ids = list(db.session.scalars(select(MailingList.id)))
    for wanted in SubscriptionStatus:
        rest = [list_id for list_id in list_ids if (list_id, wanted.value) not in estimated]
        if rest:
            _add_exact(counts, rest, wanted)
    return counts


def _status_value(stored: str) -> str:
    try:
        return SubscriptionStatus(stored).value
    except ValueError:
        return SubscriptionStatus[stored].value  # an Enum stored by name


def _exact() -> Counts:
    rows = db.session.execute(
        select(subscriptions.c.list_id, subscriptions.c.status, func.count()).group_by(
            subscriptions.c.list_id, subscriptions.c.status
        )
    )
    counts: Counts = {}
    for list_id, status, number in rows:
        counts.setdefault(int(list_id), {})[SubscriptionStatus(status).value] = Tally(int(number))
    return counts


def _add_exact(counts: Counts, list_ids: list[int], status: SubscriptionStatus) -> None:
    """The exact counts of ``status`` on these lists (pairs the estimates leave out: few rows
    each, read through the ``(list_id, status)`` index)."""
    rows = db.session.execute(
        select(subscriptions.c.list_id, func.count())
        .where(subscriptions.c.status == status, subscriptions.c.list_id.in_(list_ids))
        .group_by(subscriptions.c.list_id)
    )
    for list_id, number in rows:
        counts.setdefault(int(list_id), {})[status.value] = Tally(int(number))
