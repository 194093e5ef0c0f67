"""Subscribers out as CSV: everyone, a list's members, or a segment, streamed.

Columns: ``email,name,status,lists,created_at``, then one column per attribute key, in
alphabetical order. The keys are collected first, in one cheap pass of the database over the
same selection (``SELECT DISTINCT`` of the JSON keys), so every row has the same columns and
a spreadsheet (or our own importer, which turns extra columns into attributes) reads the
file as it is. Keys starting with ``_`` are ours, not the organisation's, and never leave.
``lists`` holds the slugs of the lists the person is confirmed on, separated by spaces.
``--list`` exports that list's confirmed members; ``--segment`` who the segment matches
(of any status); both together, who is in both.

The rows are read in keyset pages of ``CHUNK`` subscribers (``id > last``), one query for
the page and one for its lists, and each page is yielded as CSV text: memory stays the same
at a thousand or a million subscribers. Every cell that a spreadsheet would run as a formula
(it starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return) is neutralised with a
leading ``'`` (OWASP's advice for CSV injection).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, true

from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import MailingList, Subscriber, Subscription, SubscriptionStatus
from newsletter.audience.segments import service as segment_service
from newsletter.audience.segments.compile import on_list
from newsletter.extensions import db

#: subscribers per keyset page
CHUNK = 5000
BASE_COLUMNS = ("email", "name", "status", "lists", "created_at")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

subscribers = Subscriber.__table__
subscriptions = Subscription.__table__
lists = MailingList.__table__


def selection(*, list_slug: str | None = None, segment_id: int | None = None
              ) -> ColumnElement[bool]:
    """The condition on ``subscribers`` for an export (everyone when neither is given).

    :raises NotFound: no such list or segment.
    """
    conditions: list[ColumnElement[bool]] = []
    if list_slug is not None:
        conditions.append(on_list(get_list_by_slug(list_slug).slug))
    if segment_id is not None:
        conditions.append(segment_service.condition(segment_service.get_segment(segment_id).query))
    return and_(*conditions) if conditions else true()


def export_filename(*, list_slug: str | None = None, segment_id: int | None = None) -> str:
    """A file name that says what the export holds."""
    parts = ["subscribers"]
    if list_slug is not None:
        parts.append(list_slug)
    if segment_id is not None:
        parts.append(f"segment-{segment_id}")
    return "-".join(parts) + ".csv"


def attribute_keys(where: ColumnElement[bool]) -> list[str]:
    """Every attribute key the selected subscribers use (never one starting with ``_``)."""
    if db.session.get_bind().dialect.name == "postgresql":
        key = func.json_object_keys(subscribers.c.attributes).label("key")
        # json_object_keys fails on a non-object; attributes are always objects here.
        query = select(key).where(where, func.json_typeof(subscribers.c.attributes) == "object")
        keys = select(query.subquery().c.key).distinct()
    else:
        each = func.json_each(subscribers.c.attributes).table_valued("key").alias("each")
        keys = (
            select(each.c.key)
            .select_from(subscribers)
            .join(each, true())
            .where(where, func.json_type(subscribers.c.attributes) == "object")
            .distinct()
        )
    found = {str(value) for value in db.session.scalars(keys) if value is not None}
    return sorted(key for key in found if not key.startswith("_"))


def neutralise(cell: str) -> str:
    """The cell, made safe from spreadsheet formulas (a leading ``'`` when it needs one)."""
    return "'" + cell if cell.startswith(_FORMULA_STARTS) else cell


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def export_csv(*, list_slug: str | None = None, segment_id: int | None = None,
               chunk: int = CHUNK) -> Iterator[str]:
    """The export as CSV text, one piece per page of ``chunk`` subscribers (the header
    first). Resolve the list and segment before the first piece: a wrong one raises at the
    first ``next()``, before anything is written.

    :raises NotFound: no such list or segment.
    """
    where = selection(list_slug=list_slug, segment_id=segment_id)
    keys = attribute_keys(where)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([neutralise(name) for name in (*BASE_COLUMNS, *keys)])
    yield _drain(buffer)
    after = 0
    while True:
        page = db.session.execute(
            select(
                subscribers.c.id, subscribers.c.email, subscribers.c.name,
                subscribers.c.status, subscribers.c.created_at, subscribers.c.attributes,
            )
            .where(subscribers.c.id > after, where)
            .order_by(subscribers.c.id)
            .limit(chunk)
        ).all()
        if not page:
            return
        ids = [row.id for row in page]
        slugs = _confirmed_lists(after, ids)
        for row in page:
            attributes = row.attributes if isinstance(row.attributes, dict) else {}
            cells = [
                row.email, row.name or "", row.status.value, " ".join(slugs.get(row.id, ())),
                row.created_at.isoformat() if row.created_at else "",
                *(_cell(attributes.get(key)) for key in keys),
            ]
            writer.writerow([neutralise(cell) for cell in cells])
        after = ids[-1]
        # Nothing of this page stays in the session: the ORM never saw these rows.
        yield _drain(buffer)


def _confirmed_lists(after: int, ids: list[int]) -> dict[int, list[str]]:
    """The confirmed lists of a page's subscribers (``ids``, all above ``after``)."""
    rows = db.session.execute(
        select(subscriptions.c.subscriber_id, lists.c.slug)
        .join(lists, lists.c.id == subscriptions.c.list_id)
        .where(
            # The id range lets PostgreSQL read the page's rows off the primary key; a
            # list of 5,000 ids alone it answers with a scan of every subscription.
            subscriptions.c.subscriber_id > after,
            subscriptions.c.subscriber_id <= ids[-1],
            subscriptions.c.subscriber_id.in_(ids),
            subscriptions.c.status == SubscriptionStatus.CONFIRMED,
        )
        .order_by(subscriptions.c.subscriber_id, lists.c.slug)
    ).all()
    found: dict[int, list[str]] = {}
    for subscriber_id, slug in rows:
        found.setdefault(int(subscriber_id), []).append(str(slug))
    return found


def _drain(buffer: io.StringIO) -> str:
    text = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return text


def start_export(*, list_slug: str | None = None, segment_id: int | None = None
                 ) -> Iterator[str]:
    """``export_csv`` with the header already computed: the list and segment are checked
    (NotFound raised) here, before a response or stdout is committed to."""
    pieces = export_csv(list_slug=list_slug, segment_id=segment_id)
    first = next(pieces)

    def chained() -> Iterator[str]:
        yield first
        yield from pieces

    return chained()
