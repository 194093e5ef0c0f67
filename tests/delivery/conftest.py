"""Fixtures for the send: an audience on two lists, an issue to them, SMTP servers with
faults, Redis connections of a test's own, a PostgreSQL cluster of a test's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.delivery.helpers import (
    Audience,
    FaultySMTPServer,
    RedisConnections,
    make_audience,
    make_sendable_issue,
)
from tests.delivery.throwaway_pg import ThrowawayPostgres, throwaway_cluster


@pytest.fixture
def audience(app: Any) -> Audience:
    return make_audience()


@pytest.fixture
def issue_id(audience: Audience) -> int:
    """A draft issue to the news and events lists (an id: objects expire when workers run)."""
    return int(make_sendable_issue(audience.news, audience.events).id)


@pytest.fixture
def take_starts_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[], list[tuple[int, int, int]]]:
    """Calling it makes every ``start_issue`` queued from then on run to its end the moment
    it is queued, as by a worker thread that takes it at once; the list it returns fills
    with each ``send_batch`` queued from then on (its arguments), in order."""
    from newsletter import tasks
    from newsletter.delivery.send import dispatcher

    def take() -> list[tuple[int, int, int]]:
        queue_start, queue_batch = tasks.start_issue.send, tasks.send_batch.send
        batches: list[tuple[int, int, int]] = []

        def start_at_once(issue_id: int) -> Any:
            message = queue_start(issue_id)
            dispatcher.start_issue(issue_id)
            return message

        def batch(issue_id: int, first_id: int, last_id: int) -> Any:
            batches.append((issue_id, first_id, last_id))
            return queue_batch(issue_id, first_id, last_id)

        monkeypatch.setattr(tasks.start_issue, "send", start_at_once)
        monkeypatch.setattr(tasks.send_batch, "send", batch)
        return batches

    return take


@pytest.fixture
def faulty_smtp() -> Iterator[FaultySMTPServer]:
    server = FaultySMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_connections(
    backend: dict[str, str | None],
) -> Iterator[Callable[[str], RedisConnections]]:
    """``make(name)``: a ``RedisConnections`` cleaned up after the test."""
    made: list[RedisConnections] = []

    def make(name: str) -> RedisConnections:
        made.append(RedisConnections(backend, name))
        return made[-1]

    yield make
    for connections in made:
        connections.close()



@pytest.fixture
def throwaway_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL cluster of the test's own, which it may stop and restart."""
    with throwaway_cluster() as cluster:
        yield cluster
