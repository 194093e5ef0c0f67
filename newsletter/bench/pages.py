"""``newsletter bench pages``: every admin page and API listing, timed on a large data set.

The data set (PostgreSQL only: it is about the planner at size) is seeded in a schema of its
own beside the configured one, in SQL (``INSERT … SELECT generate_series``, no row passes
through Python): subscribers, lists with one subscription each, sent issues and their
delivery rows. Each page is then asked ``repeat`` times through the app in this process
(logged in as an admin; API calls with a token) and its median printed, beside the median
of ``/healthz``: what the machine takes to answer a request that reads nothing.
"""

from __future__ import annotations

import contextlib
import re
import secrets
import statistics
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import (
    Column,
    String,
    Table,
    UniqueConstraint,
    cast,
    func,
    insert,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.schema import AddConstraint, DropConstraint
from werkzeug.routing import Rule

from newsletter.audience.models import MailingList, Subscriber, Subscription
from newsletter.auth.services import create_api_token, create_user
from newsletter.bench.run import bench_app, bench_database
from newsletter.content.models import Issue, IssueStatement, IssueStatus, Statement, issue_lists
from newsletter.delivery.models import Delivery
from newsletter.extensions import db
from newsletter.models import utcnow

Echo = Callable[[str], None]
ADMIN_EMAIL = "bench-admin@example.org"
#: pages that are actions or downloads, not listings to time
SKIPPED = re.compile(r"(logout|export|download|\.csv|\.json$|/static/|preview_frame|/frame)")


@dataclass(frozen=True)
class PagesOptions:
    subscribers: int
    lists: int
    issues: int
    deliveries: int
    repeat: int
    keep: bool
    #: time the pages on the data set a previous ``keep`` run left, without seeding again
    reuse: bool = False


@dataclass(frozen=True)
class PageTime:
    path: str
    status: int
    median_ms: float


class BenchPagesError(Exception):
    """The bench cannot run here; the message says why."""


def run_pages(config: Any, options: PagesOptions, echo: Echo) -> list[PageTime]:
    """Seed the data set, time every page, clean up (unless ``keep``); return the times."""
    database = bench_database(str(config["DATABASE_URL"]), suffix="pages")
    if database.schema is None:
        raise BenchPagesError("bench pages needs PostgreSQL (NEWSLETTER_DATABASE_URL): the "
                              "figures are about PostgreSQL at a million subscribers")
    with contextlib.ExitStack() as cleanup:
        reusing = options.reuse and _seeded(database.url, config)
        if not reusing:
            database.create()
        if not (options.keep or options.reuse):
            cleanup.callback(database.drop)
        kept = " (kept)" if options.keep or options.reuse else ""
        echo(f"bench database: {database.describe()}{kept}{' (reused)' if reusing else ''}")
        app = bench_app(config, {"DATABASE_URL": database.url, "RATELIMIT_ENABLED": False})
        with app.app_context():
            try:
                if not reusing:
                    db.create_all()
                    seed(options, echo)
                return time_pages(app, options.repeat, echo)
            finally:
                db.session.remove()
                db.engine.dispose()
    raise AssertionError("unreachable")  # pragma: no cover


def _seeded(url: str, config: Any) -> bool:
    """Whether the bench schema holds a data set already (a run with ``keep`` left it)."""
    app = bench_app(config, {"DATABASE_URL": url})
    with app.app_context():
        try:
            return bool(db.session.scalar(text(
                "SELECT to_regclass('deliveries') IS NOT NULL "
                "AND EXISTS (SELECT FROM deliveries)")))
        finally:
            db.session.remove()
            db.engine.dispose()


# --- the data set -------------------------------------------------------------------------


def seed(options: PagesOptions, echo: Echo) -> None:
    """Lists, subscribers (one subscription each), sent issues and their deliveries."""
    started = time.monotonic()
    for number in range(1, options.lists + 1):
        db.session.add(MailingList(slug=f"list-{number}", name=f"List {number}"))
    db.session.commit()
    series = func.generate_series(1, options.subscribers).table_valued("value").render_derived(
        name="g"
    )
    serial = cast(series.c.value, String)
    _insert_from(Subscriber.__table__, {
        "email": literal("reader") + serial + literal("@example.com"),
        "name": literal("Reader ") + serial,
        "attributes": literal_column("'{\"city\": \"Madrid\"}'::json"),
        "status": literal("active"),
        "created_at": func.now(),
        "updated_at": func.now(),
    }, series)
    first_list = int(db.session.scalar(select(func.min(MailingList.id))) or 1)
    subscribers = Subscriber.__table__
    _insert_from(Subscription.__table__, {
        "subscriber_id": subscribers.c.id,
        "list_id": (subscribers.c.id % options.lists) + first_list,
        "status": literal("confirmed"),
        "consent_source": literal("import"),
        "created_at": func.now(),
        "confirmed_at": func.now(),
    }, subscribers)
    echo(f"seeded {options.subscribers:,} subscribers on {options.lists} lists "
         f"({time.monotonic() - started:.0f} s)")
    _seed_issues(options, first_list)
    per_issue = options.deliveries // max(1, options.issues)
    with _bulk_load(Delivery.__table__):
        _insert_deliveries(options, per_issue)
    db.session.execute(text("ANALYZE"))
    db.session.commit()
    echo(f"seeded {options.issues} issues and {per_issue * options.issues:,} deliveries "
         f"({time.monotonic() - started:.0f} s)")


def _insert_deliveries(options: PagesOptions, per_issue: int) -> None:
    issues = select(Issue.id.label("issue_id")).subquery()
    rows = func.generate_series(1, per_issue).table_valued("value").render_derived(name="r")
    _insert_from(Delivery.__table__, {
        "issue_id": issues.c.issue_id,
        "subscriber_id": ((issues.c.issue_id * 7919 + rows.c.value) % options.subscribers) + 1,
        "status": literal("sent"),
        "attempts": literal(1),
        "sent_at": func.now(),
        "last_reply": literal("250 2.0.0 Ok: queued"),
    }, issues.join(rows, literal(True)))


@contextlib.contextmanager
def _bulk_load(table: Table) -> Iterator[None]:
    """Load ``table`` without its secondary indexes and foreign keys, then make them again:
    ten million rows checked and indexed one by one take most of an hour here, built
    afterwards a few minutes."""
    connection = db.session.connection()
    foreign_keys = list(table.foreign_key_constraints)
    uniques = [c for c in table.constraints if isinstance(c, UniqueConstraint)]
    for constraint in [*foreign_keys, *uniques]:
        connection.execute(DropConstraint(constraint))
    for index in table.indexes:
        index.drop(connection)
    db.session.commit()
    yield
    connection = db.session.connection()
    for index in table.indexes:
        index.create(connection)
    for constraint in [*uniques, *foreign_keys]:
        connection.execute(AddConstraint(constraint))
    db.session.commit()


def _seed_issues(options: PagesOptions, first_list: int) -> None:
    statement = Statement(slug="bench", title="Bench", author="Bench", body="Hello.",
                          front_matter={})
    db.session.add(statement)
    db.session.flush()
    per_issue = options.deliveries // max(1, options.issues)
    for number in range(1, options.issues + 1):
        issue = Issue(subject=f"Issue {number}", status=IssueStatus.SENT,
                      total_count=per_issue, sent_count=per_issue, failed_count=0,
                      started_at=utcnow(), finished_at=utcnow())
        issue.items = [IssueStatement(statement=statement)]
        db.session.add(issue)
        db.session.flush()
        db.session.execute(insert(issue_lists).values(
            issue_id=issue.id, list_id=first_list + number % options.lists))
    db.session.commit()


def _insert_from(table: Table, values: dict[str, Any], source: Any) -> None:
    """``INSERT INTO table SELECT …`` with ``values``, plus the Python-side scalar defaults
    of the other required columns (other work may add columns this bench does not know)."""
    columns = dict(values)
    for column in table.columns:
        if column.name in columns or column.primary_key:
            continue
        default = _scalar_default(column)
        if default is not None:
            columns[column.name] = literal(default, type_=column.type)
    chosen = select(*[expression.label(name) for name, expression in columns.items()])
    db.session.execute(insert(table).from_select(list(columns), chosen.select_from(source)))
    db.session.commit()


def _scalar_default(column: Column[Any]) -> Any:
    default = column.default
    if column.nullable or column.server_default is not None or default is None:
        return None
    if getattr(default, "is_scalar", False):
        value = default.arg  # type: ignore[attr-defined]
        return value.value if hasattr(value, "value") else value
    if getattr(default, "is_callable", False):
        value = default.arg(None)  # type: ignore[attr-defined]
        return value.value if hasattr(value, "value") else value
    return None


# --- the timing ---------------------------------------------------------------------------


def time_pages(app: Flask, repeat: int, echo: Echo) -> list[PageTime]:
    """The median time of each admin page and API listing, and of ``/healthz`` first."""
    password = secrets.token_urlsafe(16)
    # A new admin each run: a reused data set has the last run's already.
    email = ADMIN_EMAIL.replace("@", f"-{secrets.token_hex(4)}@")
    create_user(email, password)
    browser = _logged_in(app, email, password)
    api = app.test_client()
    token = create_api_token(email)
    headers = {"Authorization": f"Bearer {token}"}
    times = [_time(api, "/healthz", repeat, {})]
    for path in _paths(app, "admin."):
        times.append(_time(browser, path, repeat, {}))
    for path in _paths(app, "api."):
        times.append(_time(api, path, repeat, headers))
    for page in times:
        echo(f"{page.median_ms:8.1f} ms  {page.status}  {page.path}")
    return times


def _logged_in(app: Flask, email: str, password: str) -> FlaskClient:
    client = app.test_client()
    client.environ_base["HTTP_REFERER"] = f"{app.config['BASE_URL']}/admin/"
    page = client.get("/admin/login").get_data(as_text=True)
    found = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    token = found.group(1) if found else ""
    answer = client.post("/admin/login", data={
        "email": email, "password": password, "csrf_token": token})
    if answer.status_code != 302:
        raise BenchPagesError(f"could not log in to the admin pages ({answer.status_code})")
    return client


def _paths(app: Flask, prefix: str) -> Iterator[str]:
    """GET pages of the blueprint, with ids of rows that exist (the first of each kind)."""
    ids = {"issue_id": 1, "subscriber_id": 1, "list_id": 1, "statement_id": 1, "id": 1}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.endpoint.startswith(prefix) or "GET" not in (rule.methods or set()):
            continue
        path = _path_for(rule, ids)
        if path is not None and not SKIPPED.search(path):
            yield path


def _path_for(rule: Rule, ids: dict[str, int]) -> str | None:
    values: dict[str, Any] = {}
    for argument in rule.arguments:
        if argument not in ids and not argument.endswith("_id"):
            return None  # a token or a name: not a listing
        values[argument] = ids.get(argument, 1)
    try:
        path = rule.build(values, append_unknown=False)
    except Exception:  # noqa: BLE001 - a rule we cannot fill in is not timed
        return None
    return path[1] if path else None


def _time(client: FlaskClient, path: str, repeat: int, headers: dict[str, str]) -> PageTime:
    client.get(path, headers=headers)  # warm: templates compiled, plans cached
    samples = []
    status = 0
    for _ in range(repeat):
        started = time.perf_counter()
        response = client.get(path, headers=headers)
        samples.append((time.perf_counter() - started) * 1000)
        status = response.status_code
    return PageTime(path, status, statistics.median(samples))


def summary_line(times: list[PageTime]) -> str:
    """The last line: ``pages=… slowest_ms=… slowest=…`` (and the machine's baseline)."""
    baseline, pages = times[0], times[1:]
    slowest = max(pages, key=lambda page: page.median_ms)
    return (f"pages={len(pages)} slowest_ms={slowest.median_ms:.0f} slowest={slowest.path} "
            f"baseline_ms={baseline.median_ms:.1f}")
