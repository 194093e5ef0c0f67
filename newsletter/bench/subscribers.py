"""``newsletter bench subscribers``: how long does a page of the admin's subscriber list take?

Against the configured database (PostgreSQL: the figure that matters is at 1,000,000 rows).
``--seed N`` first fills an empty database with N subscribers in plain SQL (names from a few
dozen, cities as an attribute, three lists of different sizes, 0.1 % blocklisted). Then each
kind of page (the first, one deep in, a search, each filter) is fetched ``--repeat`` times
through the same service the admin page uses, and rendered with its template; the slowest
time of each is printed. Beside them, the machine's own yardstick from the same run: one
sequential scan of the subscribers table (what any page would cost without its index).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import click
from flask import current_app, render_template
from flask_login import login_user
from sqlalchemy import func, select, text

from newsletter.audience import directory
from newsletter.audience.models import (
    MailingList,
    Subscriber,
    SubscriberStatus,
    SubscriptionStatus,
)
from newsletter.auth.models import Role, User
from newsletter.extensions import db

_SEED_SQL = """
INSERT INTO lists (slug, name, description, public, optin, created_at) VALUES
  ('bench-all', 'Everyone', '', true, 'double', now()),
  ('bench-half', 'Half', '', true, 'double', now()),
  ('bench-small', 'Small', '', true, 'double', now());
INSERT INTO subscribers (id, email, name, attributes, status, created_at, updated_at,
                         token_version)
SELECT n,
       'reader' || n || '@host' || (n % 997) || '.example',
       (ARRAY['Ada','Grace','Alan','Katherine','Dorothy','Edsger','Barbara','Donald',
              'Frances','John','Margaret','Niklaus','Radia','Tim','Vint','Whitfield'])
         [1 + n % 16] || ' ' ||
       (ARRAY['Lovelace','Hopper','Turing','Johnson','Vaughan','Dijkstra','Liskov','Knuth',
              'Allen','Backus','Hamilton','Wirth','Perlman','Berners-Lee','Cerf','Diffie',
              'Shannon','Ritchie','Thompson','Kernighan'])[1 + (n / 16) % 20] || ' ' || n,
       json_build_object('city', (ARRAY['Madrid','Berlin','Lagos','Lima','Oslo','Quito',
                                        'Seoul','Tunis'])[1 + n % 8],
                         'member', n % 3 = 0,
                         'code', 'c' || n),
       CASE WHEN n % 1000 = 7 THEN 'blocklisted' ELSE 'active' END,
       now() - (:count - n) * interval '1 second', now(), 0
FROM generate_series(1, :count) AS n;
SELECT setval(pg_get_serial_sequence('subscribers', 'id'), :count);
INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source, created_at,
                           confirmed_at)
SELECT n, (SELECT id FROM lists WHERE slug = 'bench-all'),
       CASE WHEN n % 20 = 1 THEN 'unconfirmed' WHEN n % 20 = 2 THEN 'unsubscribed'
            ELSE 'confirmed' END,
       'import', now(), now()
FROM generate_series(1, :count) AS n;
INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source, created_at,
                           confirmed_at)
SELECT n, (SELECT id FROM lists WHERE slug = 'bench-half'), 'confirmed', 'import', now(), now()
FROM generate_series(2, :count, 2) AS n;
INSERT INTO subscriptions (subscriber_id, list_id, status, consent_source, created_at,
                           confirmed_at)
SELECT n, (SELECT id FROM lists WHERE slug = 'bench-small'), 'confirmed', 'import', now(), now()
FROM generate_series(1, :count, greatest(:count / 1000, 1)) AS n;
"""


def seed(count: int) -> None:
    """Fill an empty PostgreSQL database with ``count`` subscribers and three lists."""
    if db.engine.dialect.name != "postgresql":
        raise click.UsageError("--seed writes PostgreSQL SQL; point NEWSLETTER_DATABASE_URL at one")
    if db.session.scalar(select(func.count()).select_from(Subscriber)):
        raise click.UsageError("--seed needs a database without subscribers")
    with db.engine.begin() as connection:
        for statement in _SEED_SQL.split(";\n"):
            if statement.strip():
                connection.execute(text(statement), {"count": count})
    # VACUUM cannot run in a transaction; it sets the visibility map (index-only scans), as
    # autovacuum would in a while on a live database.
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("VACUUM ANALYZE subscribers"))
        connection.execute(text("VACUUM ANALYZE subscriptions"))


def _timed(run: Callable[[], Any], repeat: int) -> tuple[float, float]:
    """(median, slowest) milliseconds of ``repeat`` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times)


def cases() -> list[tuple[str, directory.Filters, str]]:
    """The pages measured: (name, filters, where: ``first`` or ``deep``)."""
    lists = {lst.slug: lst.id for lst in db.session.scalars(select(MailingList))}
    all_id, small_id = lists.get("bench-all"), lists.get("bench-small")
    return [
        ("first", directory.Filters(), "first"),
        ("deep", directory.Filters(), "deep"),
        ("email_prefix", directory.Filters(term="reader12345"), "first"),
        ("name_prefix", directory.Filters(term="grace hop"), "first"),
        ("rare_prefix", directory.Filters(term="nobody-has-this"), "first"),
        ("whole_address", directory.Filters(term="reader777@host777.example"), "first"),
        ("list", directory.Filters(list_id=all_id), "deep"),
        ("list_unconfirmed", directory.Filters(
            list_id=all_id, subscription_status=SubscriptionStatus.UNCONFIRMED), "deep"),
        ("small_list", directory.Filters(list_id=small_id), "first"),
        ("blocklisted", directory.Filters(status=SubscriberStatus.BLOCKLISTED), "deep"),
        ("attribute", directory.Filters(attribute_key="city", attribute_value="lima"), "deep"),
        ("rare_attribute", directory.Filters(attribute_key="code", attribute_value="c42"),
         "first"),
        ("rare_attribute_deep", directory.Filters(attribute_key="code", attribute_value="c42"),
         "deep"),
    ]


def run(repeat: int) -> dict[str, float]:
    """Time each page; slowest milliseconds by name, with ``full_scan_ms``."""
    rows = db.session.scalar(select(func.count()).select_from(Subscriber)) or 0
    top = db.session.scalar(select(func.max(Subscriber.id))) or 0
    deep_after = max(top // 2, 1)
    _, full_scan = _timed(
        lambda: db.session.execute(text("SELECT count(*) FROM subscribers WHERE name LIKE '%zz%'")),
        3,
    )
    results: dict[str, float] = {"rows": rows, "full_scan_ms": round(full_scan, 1)}
    admin = _bench_user()
    for name, filters, where in cases():
        after = deep_after if where == "deep" else None

        def page(filters: directory.Filters = filters, after: int | None = after) -> None:
            found = directory.search(filters, after=after)
            with current_app.test_request_context("/admin/subscribers"):
                login_user(admin)
                render_template(
                    "admin/subscribers.html", page=found, filters=filters, kept={},
                    error=None, lists=[], subscription_statuses=[], statuses=[],
                    window=directory.SCAN_WINDOW,
                )
            db.session.commit()  # end the transaction, as a request does

        page()  # once untimed: the template compiled, the plan's pages in the cache
        median, slowest = _timed(page, repeat)
        click.echo(f"{name:18} median {median:7.1f} ms   slowest {slowest:7.1f} ms")
        results[f"{name}_ms"] = round(slowest, 1)
    return results


def _bench_user() -> Any:
    """A throwaway admin (not committed) for rendering the admin template."""
    return User(id=0, email="bench@example.org", password_hash="x", role=Role.ADMIN)


@click.command("subscribers")
@click.option("--seed", "seed_count", type=click.IntRange(min=1), default=None,
              help="First fill an empty PostgreSQL database with this many subscribers.")
@click.option("--repeat", default=7, show_default=True, type=click.IntRange(min=1),
              help="Fetches of each page; the slowest is reported.")
def bench_subscribers(seed_count: int | None, repeat: int) -> None:
    """Time the admin's subscriber pages (search, filters, keyset pages) on this database."""
    if seed_count:
        started = time.perf_counter()
        seed(seed_count)
        click.echo(f"seeded {seed_count} subscribers in {time.perf_counter() - started:.0f} s")
    results = run(repeat)
    slowest_name, slowest = max(
        ((key, value) for key, value in results.items()
         if key.endswith("_ms") and key != "full_scan_ms"),
        key=lambda item: item[1],
    )
    click.echo(
        f"rows={int(results['rows'])} slowest_ms={slowest} slowest={slowest_name[:-3]} "
        f"full_scan_ms={results['full_scan_ms']} "
        + " ".join(f"{key}={value}" for key, value in results.items()
                   if key.endswith("_ms") and key != "full_scan_ms")
    )
