"""Fixtures shared by the whole suite.

The suite runs on the embedded default (SQLite, stub broker) and, when
``NEWSLETTER_TEST_DATABASE_URL`` / ``NEWSLETTER_TEST_BROKER_URL`` are set, on PostgreSQL and
Redis. A service that is named but unreachable skips those tests with a clear message, or
fails them when ``CI`` is set. Mail goes to a real SMTP server on loopback (``smtp_server``).
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from newsletter import create_app
from newsletter.extensions import db
from tests.helpers import (
    TEST_BROKER_URL,
    TEST_DATABASE_URL,
    create_schema,
    drop_schema,
    join_queue,
    require_service,
    reset_database,
)
from tests.smtp import CapturingSMTPServer

# The network guard fails a test that reaches beyond loopback; pytester runs pytest in a
# test (the guard's own tests).
pytest_plugins = ["tests.network_guard", "pytester"]


def _check_database(url: str) -> None:
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    try:
        with engine.connect() as connection:
            connection.execute(text("select 1"))
    except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
        require_service("PostgreSQL", f"{url}: {error.__class__.__name__}: {error}".splitlines()[0])
    finally:
        engine.dispose()


def _check_broker(url: str) -> None:
    import redis

    if url.startswith("redis"):
        try:
            redis.Redis.from_url(url, socket_connect_timeout=2).ping()
        except Exception as error:  # noqa: BLE001
            require_service("Redis", f"{url}: {error}")


@pytest.fixture(scope="session")
def backend() -> Iterator[dict[str, str | None]]:
    """The database and broker URLs this run tests against (None: the embedded default).

    Each test session gets its own PostgreSQL schema and Redis database, so that several
    runs on one machine (developers, CI) never see each other's rows or queue messages.
    """
    database, broker = TEST_DATABASE_URL, TEST_BROKER_URL
    schema = f"nl_test_{os.getpid()}"
    if database:
        _check_database(database)
        database = create_schema(database, schema)
    if broker:
        _check_broker(broker)
        broker = _own_redis_database(broker)
    yield {"database": database, "broker": broker}
    if TEST_DATABASE_URL:
        drop_schema(TEST_DATABASE_URL, schema)


def _own_redis_database(url: str) -> str:
    if not url.startswith("redis"):
        return url
    parts = urlsplit(url)
    return parts._replace(path=f"/{1 + os.getpid() % 15}").geturl()


#: argon2id at its cheapest (one pass over 64 KiB): the same hashing and verifying code, for a
#: fraction of a millisecond instead of the production cost (64 MiB, 3 passes), which is
#: meant to be slow and took most of the time of every test that logs in.
CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 64, "parallelism": 1}


@pytest.fixture(autouse=True)
def cheap_password_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passwords and recovery codes hashed with ``CHEAP_ARGON2`` in this process (commands the
    tests run in subprocesses keep the real cost). tests/auth/test_services.py, which is about
    the hashing, overrides this fixture and runs with the production parameters."""
    from argon2 import PasswordHasher

    from newsletter.auth import services, totp

    cheap = PasswordHasher(**CHEAP_ARGON2)
    monkeypatch.setattr(services, "_hasher", cheap)
    # An unknown address is checked against this; the same cost as a real user's hash.
    dummy = cheap.hash(secrets.token_urlsafe(16))
    monkeypatch.setattr(services, "_dummy_hash", lambda: dummy)
    monkeypatch.setattr(totp, "_code_hasher", cheap)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[CapturingSMTPServer]:
    """A real SMTP server on loopback that keeps every message it accepts."""
    server = CapturingSMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailbox(smtp_server: CapturingSMTPServer) -> CapturingSMTPServer:
    """The SMTP server, emptied for this test."""
    smtp_server.reset()
    return smtp_server


@pytest.fixture
def empty_database_urls(tmp_path: Path, backend: dict[str, str | None]) -> Iterator[
    Callable[[], str]
]:
    """``make()``: the URL of a new, empty database that exists only for this test."""
    made: list[str] = []
    url = make_url((TEST_DATABASE_URL or "sqlite://").replace(
        "postgresql://", "postgresql+psycopg://", 1))
    # CREATE/DROP DATABASE cannot run in a transaction; the maintenance database hosts them.
    maintenance = (
        create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        if TEST_DATABASE_URL else None
    )

    def make() -> str:
        name = f"newsletter_empty_{secrets.token_hex(4)}"
        if maintenance is None:
            return f"sqlite:///{tmp_path / name}.db"
        with maintenance.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        made.append(name)
        return url.set(database=name).render_as_string(hide_password=False)

    yield make
    if maintenance is not None:
        with maintenance.connect() as connection:
            for name in made:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        maintenance.dispose()


@pytest.fixture
def empty_database_url(empty_database_urls: Callable[[], str]) -> str:
    """The URL of an empty database that exists only for this test."""
    return empty_database_urls()


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """Undo what migrations/env.py's ``fileConfig`` does to logging, for the tests after this.

    ``fileConfig`` disables every logger it does not name and replaces the root handlers.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    loggers = {
        name: (logger.disabled, logger.level, logger.handlers[:], logger.propagate)
        for name, logger in logging.Logger.manager.loggerDict.items()
        if isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:], root.level = handlers, level
    for name, (disabled, log_level, log_handlers, propagate) in loggers.items():
        logger = logging.getLogger(name)
        logger.disabled, logger.level, logger.propagate = disabled, log_level, propagate
        logger.handlers[:] = log_handlers


@pytest.fixture
def app_config(
    tmp_path: Path, backend: dict[str, str | None], mailbox: CapturingSMTPServer
) -> dict[str, Any]:
    """Settings for the ``app`` fixture; tests may change them before asking for ``app``."""
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": backend["database"],
        "BROKER_URL": backend["broker"],
        "SMTP_URL": f"smtp://127.0.0.1:{mailbox.port}",
        "BASE_URL": "https://news.example.org",
        "FROM_ADDRESS": "Example News <news@example.org>",
        "SECRET_KEY": "test-secret-key",
        "RATELIMIT_ENABLED": False,
        "SERVER_NAME": "news.example.org",
        "PREFERRED_URL_SCHEME": "https",
    }


@pytest.fixture
def app(app_config: dict[str, Any]) -> Iterator[Flask]:
    """A fresh app on a fresh database for each test."""
    app = create_app(app_config)
    with app.app_context():
        reset_database(app)
        broker = app.extensions["dramatiq"]
        broker.flush_all()
        yield app
        db.session.remove()
        broker.flush_all()
        db.engine.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def run_jobs(app: Flask) -> Iterator[Callable[[], None]]:
    """Run queued jobs in worker threads on the app's broker.

    Calling the result starts the threads (on the first call, so a test can lose the queue
    before anything runs), waits until no message is waiting, delayed or in flight, and fails
    the test if a job was dead-lettered.
    """
    from newsletter.broker import QUEUES, start_worker_threads

    broker = app.extensions["dramatiq"]
    workers: list[Any] = []

    def wait_for_jobs() -> None:
        db.session.remove()  # the test sees what the workers commit
        if not workers:
            workers.append(start_worker_threads(app, threads=2))
        for _ in range(20):  # jobs enqueue jobs: join until every queue stays empty
            for queue in QUEUES:
                join_queue(broker, queue)
            if all(_queue_empty(broker, queue) for queue in QUEUES):
                break
        workers[0].join()
        _fail_on_dead_letters(broker)
        db.session.remove()

    yield wait_for_jobs
    for worker in workers:
        worker.stop()


def _queue_empty(broker: Any, queue: str) -> bool:
    """No message waiting, delayed (retries) or in flight on ``queue``."""
    from dramatiq.brokers.stub import StubBroker
    from dramatiq.common import dq_name

    if isinstance(broker, StubBroker):
        return all(broker.queues[name].unfinished_tasks == 0 for name in (queue, dq_name(queue)))
    return int(broker.do_qsize(queue)) == 0


def _fail_on_dead_letters(broker: Any) -> None:
    """The stub broker's join already raised; Redis keeps dead letters in a sorted set."""
    from dramatiq.common import xq_name

    client = getattr(broker, "client", None)
    if client is None:
        return
    from newsletter.broker import QUEUES

    dead = {q: client.zcard(f"{broker.namespace}:{xq_name(q)}") for q in QUEUES}
    assert not any(dead.values()), f"jobs were dead-lettered: {dead}"


