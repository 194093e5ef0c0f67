"""``newsletter bench send``: seed, measure the wire with smtp-source, send for real, report.

Safe by default: everything is written to a database of the bench's own next to the
configured one (a ``…_bench`` schema on PostgreSQL, a ``…-bench.db`` file on SQLite), which
is dropped at the end unless ``keep``; on Redis it refuses to start while other workers
consume the broker or jobs are waiting (they would take the bench's jobs, or it theirs).
"""

from __future__ import annotations

import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any

import dramatiq
from flask import Flask, current_app
from sqlalchemy import create_engine, make_url, select, text

from newsletter.audience.segments.query import SegmentQueryError
from newsletter.audience.segments.service import create_segment
from newsletter.bench import seed
from newsletter.bench.sink import RawResult, Sink, SinkCounts, measure_raw
from newsletter.bench.workers import WorkerProcesses, WorkerThreads, plan
from newsletter.broker import QUEUES, is_embedded
from newsletter.config import DEFAULTS, SETTINGS
from newsletter.content.issues import update_issue
from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.send.dispatcher import progress, request_send
from newsletter.delivery.send.snapshot import count_audience, refresh_statistics
from newsletter.extensions import FACTORY_KEY, db
from newsletter.mail.dkim import generate_key, sending_domain, signer_for
from newsletter.models import utcnow
from newsletter.schema import upgrade_database

#: the size of one message, as in the issue's targets
TARGET_MESSAGE_SIZE = 20_000
#: smtp-source sends at most this many messages (enough for a steady rate)
RAW_MAX_MESSAGES = 100_000
RAW_MIN_MESSAGES = 10_000
#: no new message at the sink for this long while sending: give up
STALL_SECONDS = 300.0
#: a broker that took a command this recently has a live client
HEARTBEAT_WINDOW_MS = 5_000
#: a consumer renews its heartbeat at least this often
CONSUMER_CHECK_SECONDS = 2.5
POLL_SECONDS = 0.1

Echo = Callable[[str], None]


class BenchError(RuntimeError):
    """The bench cannot run, or the send did not finish; the message says why."""


@dataclass(frozen=True)
class BenchOptions:
    recipients: int
    connections: int
    processes: int
    dkim: bool = False
    keep: bool = False
    raw_messages: int | None = None
    #: a segment query the issue is narrowed by (the subscribers get attributes to match)
    segment: str | None = None


@dataclass
class BenchResult:
    recipients: int
    connections: int
    dkim: bool
    raw: RawResult
    seconds: float  # "send" to `sent`
    first_message_s: float | None
    peak_rss_kb: int
    sink: SinkCounts
    sent: int = 0
    failed: int = 0
    message_size: int = 0
    workers: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.recipients / self.seconds if self.seconds > 0 else 0.0

    @property
    def ratio(self) -> float:
        return self.rate / self.raw.rate if self.raw.rate > 0 else 0.0

    def summary(self) -> list[str]:
        """Human-readable lines, then the key=value line."""
        first = "n/a" if self.first_message_s is None else f"{self.first_message_s:.2f} s"
        exact = self.sink.distinct == self.recipients and not self.sink.unexpected
        return [
            f"message size:      {self.message_size} bytes (20 KB HTML + text, personalised)",
            f"raw (the machine): {self.raw.rate:.0f} msg/s  ({self.raw.command} …: "
            f"{self.raw.messages} in {self.raw.seconds:.2f} s)",
            f"newsletter:        {self.rate:.0f} msg/s  ({self.recipients} recipients in "
            f"{self.seconds:.2f} s, {self.workers}, dkim {'on' if self.dkim else 'off'})",
            f"ratio:             {self.ratio:.2f}",
            f"first message:     {first} after send (seen by the sink)",
            f"peak worker RSS:   {self.peak_rss_kb / 1024:.0f} MB",
            f"sink:              {self.sink.messages} messages, {self.sink.distinct} distinct "
            f"recipients of {self.recipients} ({self.sink.repeated} repeated, "
            f"{self.sink.unexpected} unexpected): {'exactly N' if exact else 'NOT exactly N'}",
            f"database:          {self.sent} sent, {self.failed} failed",
            self.line(),
        ]

    def line(self) -> str:
        first = "nan" if self.first_message_s is None else f"{self.first_message_s:.2f}"
        extra = "".join(f" {key}={value}" for key, value in self.extra.items())
        return (
            f"recipients={self.recipients} connections={self.connections} rate={self.rate:.0f} "
            f"raw_rate={self.raw.rate:.0f} ratio={self.ratio:.2f} first_message_s={first} "
            f"peak_rss_mb={self.peak_rss_kb / 1024:.0f} distinct={self.sink.distinct} "
            f"dkim={'on' if self.dkim else 'off'}{extra}"
        )


# --- the bench's own database -------------------------------------------------------------


@dataclass(frozen=True)
class BenchDatabase:
    """Where the bench writes: a schema (PostgreSQL) or a file (SQLite) of its own."""

    url: str
    configured_url: str
    schema: str | None = None
    path: Path | None = None

    def create(self) -> None:
        if self.schema is not None:
            with _admin(self.configured_url) as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
                connection.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        elif self.path is not None:
            self.path.unlink(missing_ok=True)

    def drop(self) -> None:
        if self.schema is not None:
            with _admin(self.configured_url) as connection:
                connection.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        elif self.path is not None:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)

    def describe(self) -> str:
        return f"schema {self.schema}" if self.schema else f"file {self.path}"


def bench_database(configured_url: str, suffix: str = "bench") -> BenchDatabase:
    """The bench's place beside the configured database (``suffix`` names it)."""
    url = make_url(configured_url)
    if url.get_backend_name() == "postgresql":
        schema = f"{_search_path(str(url.query.get('options', '')))}_{suffix}"
        bench = url.update_query_dict({"options": f"-csearch_path={schema}"})
        return BenchDatabase(
            url=bench.render_as_string(hide_password=False),
            configured_url=configured_url,
            schema=schema,
        )
    database = Path(url.database or "newsletter.db")
    path = database.with_name(f"{database.stem}-{suffix}{database.suffix or '.db'}")
    return BenchDatabase(url=f"sqlite:///{path}", configured_url=configured_url, path=path)


def _search_path(options: str) -> str:
    """The first schema of ``-csearch_path=…`` in libpq options ("newsletter" if none)."""
    if "search_path=" not in options:
        return "newsletter"
    return options.split("search_path=", 1)[1].split()[0].split(",")[0].strip() or "newsletter"


@contextlib.contextmanager
def _admin(url: str) -> Iterator[Any]:
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            yield connection
    finally:
        engine.dispose()


# --- safety checks ------------------------------------------------------------------------


def check_broker_idle(broker: Any, own: set[str]) -> None:
    """On Redis, refuse when another client is live or jobs are waiting.

    :param own: broker ids of this process (its commands count as heartbeats too).

    :raises BenchError: naming what is in the way.
    """
    client = getattr(broker, "client", None)
    if client is None:
        return  # the stub broker is ours alone; RabbitMQ: cannot tell

    # Any command leaves a heartbeat, but only consumers keep renewing theirs (at least
    # once a second while idle): look twice, a little apart.
    heartbeats = f"{broker.namespace}:__heartbeats__"
    first = _recent(client, heartbeats, own)
    time.sleep(CONSUMER_CHECK_SECONDS if first else 0)
    live = sum(1 for member, at in _recent(client, heartbeats, own).items()
               if at > first.get(member, -1.0))  # fmt: skip
    if live:
        raise BenchError(
            f"{live} other client(s) of this broker are live (workers would take the bench's "
            "jobs): stop them, wait a few seconds, or point NEWSLETTER_BROKER_URL at another "
            "Redis database"
        )
    waiting = {queue: int(broker.do_qsize(queue)) for queue in QUEUES}
    if any(waiting.values()):
        raise BenchError(
            f"jobs are waiting on this broker {waiting}; the bench's workers would run them "
            "against the bench database: use another Redis database"
        )


def _clients(app: Flask) -> set[str]:
    """Ids of the broker's clients that have a heartbeat entry now."""
    broker = app.extensions["dramatiq"]
    client = getattr(broker, "client", None)
    if client is None:
        return set()
    return {_text(member) for member in client.zrange(f"{broker.namespace}:__heartbeats__", 0, -1)}


def _forget_clients(broker: Any, before: set[str]) -> None:
    """Drop the heartbeat entries the bench's workers and this process left behind, so the
    next run does not take them for live workers (no other client was live when it began)."""
    key = f"{broker.namespace}:__heartbeats__"
    ours = {_text(member) for member in broker.client.zrange(key, 0, -1)} - before
    if ours:
        broker.client.zrem(key, *ours)


def _recent(client: Any, key: str, own: set[str]) -> dict[str, float]:
    """Heartbeats of the last few seconds by client id (this process's left out)."""
    since = time.time() * 1000 - HEARTBEAT_WINDOW_MS
    entries = client.zrangebyscore(key, since, "+inf", withscores=True)
    return {_text(member): float(at) for member, at in entries if _text(member) not in own}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- the run ------------------------------------------------------------------------------


def worker_env(config: Any, overrides: dict[str, str]) -> dict[str, str]:
    """The environment for ``newsletter worker``: this process's settings as variables."""
    env = dict(os.environ)
    for key in (*DEFAULTS, *SETTINGS):
        value = config.get(key)
        if value is None:
            env.pop(f"NEWSLETTER_{key}", None)
        elif isinstance(value, bool):
            env[f"NEWSLETTER_{key}"] = "true" if value else "false"
        else:
            env[f"NEWSLETTER_{key}"] = str(value)
    env.update(overrides)
    return env


def bench_app(config: Any, overrides: dict[str, Any]) -> Flask:
    """An app like the configured one, on the bench database and the sink."""
    create_app = current_app.extensions[FACTORY_KEY]
    settings = {key: value for key, value in config.items() if key.isupper()}
    settings.pop("SQLALCHEMY_DATABASE_URI", None)
    settings.update(overrides)
    return create_app(settings)


def run_bench(config: Any, options: BenchOptions, echo: Echo) -> BenchResult:
    """Run the whole bench on the settings in ``config``; clean up whatever happens."""
    database = bench_database(str(config["DATABASE_URL"]))
    with contextlib.ExitStack() as cleanup:
        _stop_on_sigterm(cleanup)
        workdir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="nl-bench-")))
        database.create()
        if not options.keep:
            cleanup.callback(database.drop)
        echo(f"bench database: {database.describe()}{' (kept)' if options.keep else ''}")
        sink = Sink()
        cleanup.callback(sink.stop)
        overrides: dict[str, Any] = {"DATABASE_URL": database.url, "SMTP_URL": sink.url}
        overrides.update(_dkim_settings(config, workdir, options.dkim))
        own = {str(getattr(dramatiq.get_broker(), "broker_id", ""))}
        app = bench_app(config, overrides)
        own.add(str(getattr(app.extensions["dramatiq"], "broker_id", "")))
        with app.app_context():
            try:
                return _run_in_app(app, config, overrides, options, sink, workdir, own, echo)
            finally:
                _dispose()
    raise AssertionError("unreachable")  # pragma: no cover - the with block returns


def _run_in_app(
    app: Flask,
    config: Any,
    overrides: dict[str, Any],
    options: BenchOptions,
    sink: Sink,
    workdir: Path,
    own_brokers: set[str],
    echo: Echo,
) -> BenchResult:

    embedded = is_embedded(app)
    if not embedded:
        check_broker_idle(app.extensions["dramatiq"], own_brokers)
    upgrade_database()
    issue_id, size = _seed(app, options.recipients, echo, with_attributes=bool(options.segment))
    audience, extra = options.recipients, {}
    if options.segment:
        audience = _narrow(issue_id, options.segment)
        extra = {"seeded": str(options.recipients), "segment": "on"}
        echo(f"segment {options.segment!r}: {audience} of {options.recipients} recipients")

    messages = options.raw_messages or min(
        max(options.recipients, RAW_MIN_MESSAGES), RAW_MAX_MESSAGES
    )
    echo(f"raw: smtp-source -d -s {options.connections} -m {messages} -l {size} …")
    raw = measure_raw(sink, connections=options.connections, messages=messages, size=size)
    echo(f"raw: {raw.rate:.0f} msg/s")

    workers: WorkerProcesses | WorkerThreads
    if embedded:
        workers = WorkerThreads(app, options.connections)
        layout = f"{options.connections} threads in this process (embedded queue)"
    else:
        threads = plan(options.connections, options.processes)
        env = worker_env(config, {f"NEWSLETTER_{k}": str(v) for k, v in overrides.items()})
        workers = WorkerProcesses(threads, env, workdir)
        layout = f"{len(threads)} worker processes x {'/'.join(map(str, threads))} threads"
    echo(f"starting workers: {layout}")
    with contextlib.ExitStack() as running:
        if not embedded:
            before = _clients(app) - own_brokers
            running.callback(_forget_clients, app.extensions["dramatiq"], before)
        running.callback(workers.stop)
        workers.start()
        seconds, first = _send_and_wait(issue_id, options.recipients, sink, workers, echo)
        peak_kb = workers.sample()
    counts = sink.wait_for_messages(audience, timeout=10)
    sent, failed = _outcome(issue_id)
    return BenchResult(
        extra=extra,
        recipients=audience,
        connections=options.connections,
        dkim=options.dkim,
        raw=raw,
        seconds=seconds,
        first_message_s=first,
        peak_rss_kb=peak_kb,
        sink=counts,
        sent=sent,
        failed=failed,
        message_size=size,
        workers=layout,
    )


def _narrow(issue_id: int, query: str) -> int:
    """Narrow the bench issue by a new segment of ``query``; the audience it then holds.

    :raises BenchError: the query is not valid.
    """
    try:
        segment = create_segment("bench", query)
    except SegmentQueryError as error:
        raise BenchError(f"--segment: {error.message}") from None
    update_issue(issue_id, segment_ids=[segment.id])
    # Right after COPY the planner thinks the tables are empty: a count then takes minutes.
    refresh_statistics("subscribers", "subscriptions")
    audience = count_audience(issue_id)
    if audience == 0:
        raise BenchError(f"--segment: {query!r} matches none of the bench subscribers")
    return audience


def _seed(
    app: Flask, recipients: int, echo: Echo, *, with_attributes: bool = False
) -> tuple[int, int]:
    started = time.monotonic()
    list_id = seed.create_list()
    seed.seed_subscribers(recipients, list_id, with_attributes=with_attributes)
    echo(f"seeded {recipients} subscribers in {time.monotonic() - started:.1f} s")
    issue_id, size = seed.create_issue(
        TARGET_MESSAGE_SIZE, lambda issue: seed.message_size(issue, app.config)
    )
    return issue_id, size


def _send_and_wait(
    issue_id: int, recipients: int, sink: Sink, workers: WorkerProcesses | WorkerThreads, echo: Echo
) -> tuple[float, float | None]:
    """Press "send", wait for `sent`; return (seconds to `sent`, seconds to first message)."""

    status_of = select(Issue.status, Issue.finished_at).where(Issue.id == issue_id)
    sink.expect(recipients)
    workers.sample()
    started_at = utcnow()
    started = time.monotonic()
    request_send(issue_id)
    last_count, last_progress, last_echo = 0, started, started
    while True:
        status, finished_at = db.session.execute(status_of).one()
        db.session.commit()
        now = time.monotonic()
        if status is IssueStatus.SENT:
            break
        if status is not IssueStatus.SENDING:
            raise BenchError(f"the issue became {status.value} instead of sent")
        workers.check_alive()
        workers.sample()
        count = sink.counts().messages
        if count != last_count:
            last_count, last_progress = count, now
        elif now - last_progress > STALL_SECONDS:
            raise BenchError(
                f"no message reached the sink for {STALL_SECONDS:.0f} s ({count} so far)"
            )
        if now - last_echo >= 5:
            echo(f"  {count} messages at the sink after {now - started:.0f} s")
            last_echo = now
        time.sleep(POLL_SECONDS)
    seconds = _seconds_between(started_at, finished_at) if finished_at else now - started
    first_at = sink.counts().first_message_at
    return seconds, (first_at - started if first_at is not None else None)


def _seconds_between(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 1e-6)


def _outcome(issue_id: int) -> tuple[int, int]:

    counts = progress(issue_id)
    return int(counts["sent"]), int(counts["failed"])


def _dkim_settings(config: Any, workdir: Path, sign: bool) -> dict[str, Any]:
    """Settings for signing with a throwaway key for the From domain, or for not signing
    at all (DKIM is on by default: keys of the real instance must not sign bench mail).

    :raises BenchError: the From address has no domain a key can be made for.
    """
    if not sign:
        return {"DKIM": "off"}

    from_address = str(config["FROM_ADDRESS"])
    domain = sending_domain(from_address)
    if domain is None:
        raise BenchError(f"--dkim: no domain in NEWSLETTER_FROM_ADDRESS {from_address!r}")
    key_dir = workdir / "dkim"
    generate_key(key_dir, domain, selector="bench", algorithm="rsa", bits=2048)
    settings = {"DKIM": "on", "DKIM_KEY_DIR": str(key_dir)}
    if signer_for(settings, from_address) is None:  # the workers would not sign either
        raise BenchError(f"--dkim: the key made in {key_dir} does not sign for {domain}")
    return settings


def _dispose() -> None:

    db.session.remove()
    db.engine.dispose()


def _stop_on_sigterm(cleanup: contextlib.ExitStack) -> None:
    """SIGTERM cleans up like Ctrl-C does (the sink and workers must not outlive the bench)."""

    def handle(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handle)
    except ValueError:
        return  # not the main thread (tests): nothing to install
    cleanup.callback(signal.signal, signal.SIGTERM, previous)
