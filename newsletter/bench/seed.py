"""Seed the bench database: N confirmed subscribers on one list and a ~20 KB issue.

Subscribers go in with PostgreSQL ``COPY`` or one SQLite ``executemany`` transaction, a
million in seconds. Subscriber ``i`` is ``r<i>@b<i % 16>.example.net`` ("Reader i"), the
form the sink's counter recognises.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Column, Table

from newsletter.audience.lists import create_list as make_list
from newsletter.audience.models import (
    ConsentSource,
    OptIn,
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.audience.tokens import manage_url, unsubscribe_url
from newsletter.content.issues import create_issue as make_issue
from newsletter.content.issues import update_issue
from newsletter.content.models import Issue
from newsletter.content.statements import import_statement
from newsletter.extensions import db
from newsletter.mail.message import ListInfo, MessageSkeleton, Recipient, make_message_id
from newsletter.mail.render import render_issue
from newsletter.models import utcnow

LIST_SLUG = "bench"
#: rows per COPY write or executemany chunk
CHUNK = 50_000
STATEMENT_NAME = "2020-11-03-post-election-mobilization.md"
_HERE = Path(__file__).resolve()
STATEMENT_PLACES = (
    _HERE.parents[2] / "tests" / "data" / STATEMENT_NAME,
    _HERE.parents[3] / "shared" / "fixtures" / "statements" / STATEMENT_NAME,
)
#: the most statements put in the bench issue while growing it to the target size
MAX_STATEMENTS = 40


#: the cities given to bench subscribers with ``--segment`` (one in ten is in Madrid)
CITIES = ("Madrid", "Lima", "Bogota", "Quito", "Sevilla", "Rosario", "Cusco", "Leon", "Cadiz",
          "Oruro")


def attributes_of(number: int) -> str:
    """The JSON attributes of bench subscriber ``number`` when the bench has a segment."""
    return json.dumps({"city": CITIES[number % len(CITIES)], "n": number % 100})


def address(number: int) -> str:
    """The email address of bench subscriber ``number``."""
    return f"r{number}@b{number % 16}.example.net"


def seed_subscribers(count: int, list_id: int, *, with_attributes: bool = False) -> None:
    """Insert subscribers 1..``count``, each confirmed on the list, in one transaction
    (``with_attributes``: each with a city and a number, see ``attributes_of``).

    The bench database is fresh (ids start at 1); the id sequence is moved past them.
    """
    if count <= 0:
        return
    if db.engine.dialect.name == "postgresql":
        _copy_postgresql(count, list_id, with_attributes)
    else:
        _executemany(count, list_id, with_attributes)


def _copy_postgresql(count: int, list_id: int, with_attributes: bool) -> None:
    now = utcnow().isoformat()
    active = SubscriberStatus.ACTIVE.value
    confirmed, source = SubscriptionStatus.CONFIRMED.value, ConsentSource.IMPORT.value
    raw = db.engine.raw_connection()
    try:
        connection: Any = raw.driver_connection  # psycopg.Connection
        with connection.cursor() as cursor:
            with cursor.copy(
                "COPY subscribers (id, email, name, attributes, status, created_at, updated_at)"
                " FROM STDIN"
            ) as copy:
                for first, last in _chunks(count):
                    copy.write("".join(
                        f"{i}\t{address(i)}\tReader {i}\t"
                        f"{attributes_of(i) if with_attributes else '{}'}\t{active}\t{now}\t{now}\n"
                        for i in range(first, last)
                    ))  # fmt: skip
            with cursor.copy(
                "COPY subscriptions (subscriber_id, list_id, status, consent_source,"
                " consent_ip, created_at, confirmed_at) FROM STDIN"
            ) as copy:
                row_tail = f"\t{list_id}\t{confirmed}\t{source}\t\\N\t{now}\t{now}\n"
                for first, last in _chunks(count):
                    copy.write("".join(f"{i}{row_tail}" for i in range(first, last)))
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('subscribers', 'id'), %s)", (count,)
            )
        raw.commit()
    finally:
        raw.close()


def _executemany(count: int, list_id: int, with_attributes: bool) -> None:
    subscribers: Table = Subscriber.__table__
    subscriptions: Table = Subscription.__table__
    now = utcnow()
    # Constant columns go through the columns' own bind processors (timestamps, enums,
    # JSON), so the rows read back exactly like ones the app wrote.
    attributes = _bound(subscribers.c.attributes, {})
    active = _bound(subscribers.c.status, SubscriberStatus.ACTIVE)
    stamp = _bound(subscribers.c.created_at, now)
    confirmed = _bound(subscriptions.c.status, SubscriptionStatus.CONFIRMED)
    source = _bound(subscriptions.c.consent_source, ConsentSource.IMPORT)
    raw = db.engine.raw_connection()
    try:
        cursor: Any = raw.cursor()  # sqlite3's: takes an iterator of rows
        for first, last in _chunks(count):
            cursor.executemany(
                "INSERT INTO subscribers (id, email, name, attributes, status, created_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                ((i, address(i), f"Reader {i}",
                  attributes_of(i) if with_attributes else attributes, active, stamp, stamp)
                 for i in range(first, last)),
            )  # fmt: skip
            cursor.executemany(
                "INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source,"
                " consent_ip, created_at, confirmed_at) VALUES (?, ?, ?, ?, NULL, ?, ?)",
                ((i, list_id, confirmed, source, stamp, stamp) for i in range(first, last)),
            )
        raw.commit()  # one transaction for everything
    finally:
        raw.close()


def _bound(column: Column[Any], value: Any) -> Any:
    processor: Callable[[Any], Any] | None = column.type.bind_processor(db.engine.dialect)
    return processor(value) if processor else value


def _chunks(count: int) -> Iterator[tuple[int, int]]:
    for first in range(1, count + 1, CHUNK):
        yield first, min(first + CHUNK, count + 1)


def create_list() -> int:
    """The bench's single opt-in list; its id."""

    return int(make_list(LIST_SLUG, "Bench readers", optin=OptIn.SINGLE).id)


def statement_text() -> str:
    """The real statement used as content (a generated one if the fixture is not around)."""
    for place in STATEMENT_PLACES:
        if place.exists():
            return place.read_text(encoding="utf-8")
    paragraph = "A paragraph of a statement, long enough to look like real prose. " * 12
    return "---\ntitle: Bench statement\ndate: 2020-11-03\n---\n\n" + (paragraph + "\n\n") * 4


def create_issue(target_size: int, measure: Callable[[int], int]) -> tuple[int, int]:
    """A draft issue to the bench list holding copies of the statement, as many as it takes
    for one personalised message to reach ``target_size`` bytes.

    :param measure: the message size in bytes of the issue with this id, as sent.
    :returns: the issue id and its message size.
    """

    text = statement_text()
    statement_ids: list[int] = []
    issue_id = 0
    size = previous = 0
    for number in range(1, MAX_STATEMENTS + 1):
        statement, _ = import_statement(text, f"2020-11-03-bench-part-{number}.md")
        statement_ids.append(int(statement.id))
        if issue_id == 0:
            issue = make_issue(
                subject="Bench: the statements of the week",
                statement_ids=statement_ids,
                list_slugs=[LIST_SLUG],
            )
            issue_id = int(issue.id)
        else:
            update_issue(issue_id, statement_ids=statement_ids)
        previous, size = size, measure(issue_id)
        if size >= target_size:
            if len(statement_ids) > 1 and target_size - previous < size - target_size:
                # One statement fewer is nearer the target.
                update_issue(issue_id, statement_ids=statement_ids[:-1])
                size = measure(issue_id)
            break
    return issue_id, size


def message_size(issue_id: int, config: Any) -> int:
    """The size of one personalised message of the issue, built the way a worker builds it."""

    issue = db.session.get(Issue, issue_id)
    assert issue is not None
    rendered = render_issue(issue)
    from_address = str(config["FROM_ADDRESS"])
    skeleton = MessageSkeleton(
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        from_address=from_address,
        list_info=ListInfo(
            list_id=f"{LIST_SLUG}.bench.invalid",
            list_name="Bench readers",
            unsubscribe_mailto="mailto:bench@bench.invalid?subject=unsubscribe",
        ),
    )
    number = 123456
    message = skeleton.personalise(
        Recipient(
            email=address(number),
            name=f"Reader {number}",
            unsubscribe_url=unsubscribe_url(number, 1, version=0),
            manage_url=manage_url(number, version=0),
            message_id=make_message_id(from_address),
        )
    )
    return len(message)
