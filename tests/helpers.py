"""Plain helpers for tests (fixtures live in the conftest.py files): where the test data and
services are, free ports, the CSRF token of a page, a database emptied between tests."""

from __future__ import annotations

import os
import re
import socket
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from newsletter.extensions import db

FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
SEED_STATEMENT = FIXTURES / "statements" / "2020-11-03-post-election-mobilization.md"
if not SEED_STATEMENT.exists():  # a clone outside the workspace carries its own copy
    SEED_STATEMENT = Path(__file__).resolve().parent / "data" / SEED_STATEMENT.name

TEST_DATABASE_URL = os.environ.get("NEWSLETTER_TEST_DATABASE_URL")
TEST_BROKER_URL = os.environ.get("NEWSLETTER_TEST_BROKER_URL")
IN_CI = bool(os.environ.get("CI"))


def require_service(name: str, reason: str) -> None:
    """Skip (locally) or fail (in CI) when a service a test needs is missing."""
    message = f"{name} is not available: {reason}"
    if IN_CI:
        pytest.fail(message + " (CI is set, so this fails instead of skipping)")
    pytest.skip(message)


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


CSRF_INPUT = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token_from(html: str) -> str:
    """The CSRF token in a page's form, as a browser would submit it."""
    match = CSRF_INPUT.search(html)
    assert match, "the page has no CSRF token field"
    return match.group(1)


def sign_up(base_url: str, email: str, list_slug: str) -> str:
    """Fill in and send the signup form of a served instance, as a browser would (its
    cookie and CSRF token); the page it answers with."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
    with opener.open(f"{base_url}/subscribe", timeout=10) as response:
        token = csrf_token_from(response.read().decode())
    form = urllib.parse.urlencode({"email": email, "lists": list_slug, "csrf_token": token})
    with opener.open(f"{base_url}/subscribe", data=form.encode(), timeout=10) as response:
        return str(response.read().decode())


_schema_ready: set[str] = set()


def reset_database(app: Flask) -> None:
    """Give ``app`` (in its context) the models' tables, empty, their ids starting at 1: made
    once per PostgreSQL schema and the written ones truncated after, made again on each
    test's own SQLite file."""
    url = app.config["DATABASE_URL"]
    if url.startswith("sqlite"):
        db.create_all()
        return
    if url not in _schema_ready:
        db.drop_all()
        with db.engine.begin() as connection:
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.create_all()
        _schema_ready.add(url)
        return
    with db.engine.begin() as connection:
        # TRUNCATE costs about the same for an empty table as for a full one, and a test
        # writes to a few of the tables: only those are truncated. A table that was never
        # written to has no page (a write that was rolled back leaves one too); sequences
        # that handed out a number start again, as RESTART IDENTITY does.
        written = set(connection.scalars(text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' "
            "AND pg_relation_size(c.oid) > 0"
        )))
        tables = ", ".join(
            table.name for table in db.metadata.sorted_tables if table.name in written
        )
        if tables:
            connection.execute(text(f"TRUNCATE {tables} CASCADE"))
        connection.execute(text(
            "SELECT setval(format('%I.%I', schemaname, sequencename)::regclass, start_value, "
            "false) FROM pg_sequences WHERE schemaname = current_schema() "
            "AND last_value IS NOT NULL"
        ))


def join_queue(broker: Any, queue: str) -> None:
    """Wait until ``queue`` has no message waiting or in flight (the stub broker raises the
    error of a job that failed for good)."""
    from dramatiq.brokers.stub import StubBroker

    if isinstance(broker, StubBroker):
        broker.join(queue, fail_fast=True, timeout=60_000)
    else:
        broker.join(queue, timeout=60_000)


def _admin_engine(url: str) -> Engine:
    return create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))


def create_schema(url: str, schema: str) -> str:
    """Make an empty PostgreSQL schema (dropping any of that name); the URL that uses it."""
    engine = _admin_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    engine.dispose()
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}options=-csearch_path%3D{schema}"


def drop_schema(url: str, schema: str) -> None:
    """Drop a schema ``create_schema`` made, and everything in it."""
    engine = _admin_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    engine.dispose()
