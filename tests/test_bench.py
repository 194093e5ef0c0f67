"""``newsletter bench send``: a small real run through smtp-sink, on the test backend."""

from __future__ import annotations

import pytest
from click.testing import Result
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import create_engine, inspect

from newsletter.bench.run import bench_database
from newsletter.bench.sink import find_program
from newsletter.bench.workers import plan
from tests.helpers import require_service

KEYS = [
    "recipients", "connections", "rate", "raw_rate", "ratio", "first_message_s",
    "peak_rss_mb", "distinct", "dkim",
]  # fmt: skip


def test_bench_send_reaches_every_recipient_once(app: Flask, runner: FlaskCliRunner) -> None:
    for program in ("smtp-sink", "smtp-source"):
        if find_program(program) is None:
            require_service(program, "install Postfix (package `postfix`)")

    result = runner.invoke(
        args=["bench", "send", "--recipients", "200", "--connections", "2",
              "--raw-messages", "500"]
    )  # fmt: skip

    _skip_if_broker_shared(result)
    assert result.exit_code == 0, result.output
    last = result.output.strip().splitlines()[-1]
    pairs = dict(pair.split("=", 1) for pair in last.split())
    assert list(pairs) == KEYS
    assert pairs["recipients"] == "200"
    assert pairs["connections"] == "2"
    assert pairs["distinct"] == "200"
    assert pairs["dkim"] == "off"
    assert float(pairs["rate"]) > 0 and float(pairs["raw_rate"]) > 0
    assert 0 <= float(pairs["first_message_s"]) < 30
    assert int(pairs["peak_rss_mb"]) > 0
    assert "200 messages, 200 distinct recipients of 200 (0 repeated, 0 unexpected)" in (
        result.output
    )
    assert "200 sent, 0 failed" in result.output
    # Without --keep nothing of the bench is left in the database.
    assert not _bench_data_left(str(app.config["DATABASE_URL"]))


def test_bench_send_with_dkim_signs_and_still_reaches_everyone(
    app: Flask, runner: FlaskCliRunner
) -> None:
    for program in ("smtp-sink", "smtp-source"):
        if find_program(program) is None:
            require_service(program, "install Postfix (package `postfix`)")

    result = runner.invoke(
        args=["bench", "send", "-n", "50", "-c", "2", "--dkim", "--raw-messages", "100"]
    )

    _skip_if_broker_shared(result)
    assert result.exit_code == 0, result.output
    pairs = dict(pair.split("=", 1) for pair in result.output.strip().splitlines()[-1].split())
    assert pairs["dkim"] == "on"
    assert pairs["distinct"] == "50"
    assert "50 sent, 0 failed" in result.output


def _skip_if_broker_shared(result: Result) -> None:
    # Test sessions pick their Redis database by pid, so two sessions can share one; the
    # bench rightly refuses to run beside another session's workers (CI runs one session).
    busy = ("other client(s) of this broker are live", "jobs are waiting on this broker")
    if any(reason in result.output for reason in busy):
        pytest.skip("another test session uses this Redis database right now")


def _bench_data_left(configured_url: str) -> bool:
    place = bench_database(configured_url)
    if place.path is not None:
        return place.path.exists()
    engine = create_engine(configured_url)
    try:
        with engine.connect() as connection:
            return place.schema in inspect(connection).get_schema_names()
    finally:
        engine.dispose()


def test_bench_database_is_beside_the_configured_one() -> None:
    sqlite = bench_database("sqlite:////srv/news/instance/newsletter.db")
    assert str(sqlite.path) == "/srv/news/instance/newsletter-bench.db"
    plain = bench_database("postgresql+psycopg://u:p@db/news")
    assert plain.schema == "newsletter_bench"
    assert "search_path%3Dnewsletter_bench" in plain.url or "search_path=newsletter_bench" in (
        plain.url
    )
    assert "u:p@db/news" in plain.url  # the password is kept for the workers
    scoped = bench_database("postgresql+psycopg://db/news?options=-csearch_path%3Dnl_test_7")
    assert scoped.schema == "nl_test_7_bench"


def test_connections_are_shared_out_over_the_processes() -> None:
    assert plan(2, 2) == [1, 1]
    assert plan(5, 2) == [3, 2]
    assert plan(2, 8) == [1, 1]  # never a process without a connection
    assert sum(plan(16, 3)) == 16
