"""Importing subscribers from CSV: header ``email,name[,…]``, extra columns → attributes.

Bad rows are reported with their line number and reason; good rows are imported, all in one
transaction. The file is read and written in chunks, so its size does not matter.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from sqlalchemy import func, or_, select

from newsletter.audience.addresses import normalise_email
from newsletter.audience.lists import get_list_by_slug
from newsletter.audience.models import (
    ConsentSource,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.subscriptions import Pending, clean_name, enqueue_confirmations
from newsletter.errors import InvalidEmail, ValidationError
from newsletter.extensions import db
from newsletter.models import utcnow

CHUNK_SIZE = 1000


@dataclass
class ImportResult:
    created: int = 0  # new subscribers
    updated: int = 0  # subscribers we already had (name and attributes refreshed)
    subscribed: int = 0  # subscriptions to the list made or confirmed by this import
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)
    already: int = 0  # were on the list already
    kept_unsubscribed: int = 0  # had unsubscribed from the list: an import does not undo that
    awaiting_confirmation: int = 0  # double opt-in list, not imported as confirmed
    confirmations_queued: int = 0


@dataclass(frozen=True)
class _Row:
    line: int
    email: str
    name: str
    attributes: dict[str, str]


def import_csv(
    stream: TextIO,
    *,
    list_slug: str,
    confirmed: bool = False,
    send_confirmations: bool = False,
    progress: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import subscribers from CSV text into the list ``list_slug``.

    Without ``confirmed``, rows on a double opt-in list stay unconfirmed (and get no mail
    unless ``send_confirmations``). Anyone who unsubscribed from the list stays unsubscribed.
    ``progress`` is called with the number of rows read (good or bad) since its last call.

    :raises NotFound: no such list.
    :raises ValidationError: the file has no header or no ``email`` column (``field="file"``).
    """
    lst = get_list_by_slug(list_slug)
    list_id, direct = lst.id, confirmed or lst.optin is OptIn.SINGLE
    result = ImportResult()
    pending: Pending = []
    read = [0]  # rows read so far, good and bad: what the progress bar counts
    reported = 0
    try:
        for chunk in _chunks(_rows(stream, result, read)):
            _write_chunk(chunk, list_id, direct, result, pending)
            if progress is not None:
                progress(read[0] - reported)
                reported = read[0]
        if progress is not None and read[0] > reported:
            progress(read[0] - reported)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    if send_confirmations and not direct:
        enqueue_confirmations(pending)
        result.confirmations_queued = len(pending)
    return result


def _rows(stream: TextIO, result: ImportResult, read: list[int]) -> Iterator[_Row]:
    """Good rows of the file; bad ones go to ``result.bad_rows``."""
    reader = csv.reader(stream)
    rows = _readable(reader)
    header = next(rows, None)
    if not header:
        raise ValidationError("the file is empty; it needs a header like email,name", field="file")
    columns = [column.strip().lstrip("\ufeff") for column in header]
    lowered = [column.lower() for column in columns]
    if "email" not in lowered:
        raise ValidationError("the header has no email column", field="file")
    if len(set(lowered)) != len(lowered):
        raise ValidationError("the header names a column twice", field="file")
    email_at = lowered.index("email")
    name_at = lowered.index("name") if "name" in lowered else None
    extras = [i for i in range(len(columns)) if i not in (email_at, name_at) and columns[i]]
    seen: dict[str, int] = {}
    line = reader.line_num
    for cells in rows:
        start, line = line + 1, reader.line_num
        read[0] += 1
        if not any(cell.strip() for cell in cells):
            continue
        row, reason = _parse(cells, columns, email_at, name_at, extras, start)
        if row is not None:
            first = seen.setdefault(row.email.lower(), start)
            if first != start:
                row, reason = None, f"repeats the address on line {first}"
        if row is None:
            result.bad_rows.append((start, reason))
        else:
            yield row


def _readable(reader: Iterator[list[str]]) -> Iterator[list[str]]:
    """The reader's rows; a line the csv module cannot read (a field over its size limit)
    stops the import with an error naming the line, like a missing header does."""
    try:
        yield from reader
    except csv.Error as error:
        line = getattr(reader, "line_num", 0)
        raise ValidationError(f"line {line} cannot be read: {error}", field="file") from None


def _parse(
    cells: list[str],
    columns: list[str],
    email_at: int,
    name_at: int | None,
    extras: list[int],
    line: int,
) -> tuple[_Row | None, str]:
    if len(cells) > len(columns):
        return None, f"has {len(cells)} fields but the header has {len(columns)}"
    cells = cells + [""] * (len(columns) - len(cells))
    if not cells[email_at].strip():
        return None, "has no email address"
    try:
        address = normalise_email(cells[email_at])
        name = clean_name(cells[name_at]) if name_at is not None else ""
    except InvalidEmail as error:
        return None, f"invalid email address {error.address!r}: {error.reason}"
    except ValidationError as error:
        return None, error.message
    attributes = {columns[i]: cells[i].strip() for i in extras if cells[i].strip()}
    return _Row(line, address, name, attributes), ""


def _chunks(rows: Iterator[_Row]) -> Iterator[list[_Row]]:
    chunk: list[_Row] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= CHUNK_SIZE:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _write_chunk(
    chunk: list[_Row], list_id: int, direct: bool, result: ImportResult, pending: Pending
) -> None:
    addresses = [row.email for row in chunk]
    found = db.session.scalars(
        select(Subscriber).where(
            or_(
                Subscriber.email.in_(addresses),
                func.lower(Subscriber.email).in_([a.lower() for a in addresses]),
            )
        )
    )
    existing = {subscriber.email.lower(): subscriber for subscriber in found}
    subscriptions = {
        s.subscriber_id: s
        for s in db.session.scalars(
            select(Subscription).where(
                Subscription.list_id == list_id,
                Subscription.subscriber_id.in_([s.id for s in existing.values()]),
            )
        )
    }
    now = utcnow()
    fresh: list[Subscriber] = []
    for row in chunk:
        subscriber = existing.get(row.email.lower())
        if subscriber is None:
            subscriber = Subscriber(email=row.email, name=row.name, attributes=row.attributes)
            db.session.add(subscriber)
            result.created += 1
        else:
            if row.name:
                subscriber.name = row.name
            if row.attributes:
                # A new dict, so the JSON column sees the change.
                subscriber.attributes = {**(subscriber.attributes or {}), **row.attributes}
            result.updated += 1
        subscription = subscriptions.get(subscriber.id) if subscriber.id else None
        if subscription is None:
            subscription = Subscription(
                list_id=list_id, consent_source=ConsentSource.IMPORT, created_at=now
            )
            if subscriber.id:
                # By id: appending to the relationship would load every subscription it has.
                subscription.subscriber_id = subscriber.id
                db.session.add(subscription)
            else:
                subscriber.subscriptions.append(subscription)
        elif subscription.status is SubscriptionStatus.UNSUBSCRIBED:
            result.kept_unsubscribed += 1
            continue
        elif subscription.status is SubscriptionStatus.CONFIRMED or not direct:
            result.already += 1
            if subscription.status is SubscriptionStatus.UNCONFIRMED:
                fresh.append(subscriber)
            continue
        subscription.status = (
            SubscriptionStatus.CONFIRMED if direct else SubscriptionStatus.UNCONFIRMED
        )
        subscription.confirmed_at = now if direct else None
        result.subscribed += 1
        if not direct:
            fresh.append(subscriber)
    db.session.flush()
    for subscriber in fresh:
        result.awaiting_confirmation += 1
        if subscriber.status is SubscriberStatus.ACTIVE:
            pending.append((subscriber.id, list_id))
    # Keep the session small on big files: the rows are written, only ids are needed now.
    db.session.expunge_all()
