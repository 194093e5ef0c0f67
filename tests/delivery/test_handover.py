"""A worker whose heartbeat stopped gives its claims up to the others within 30 s, with at most
one duplicate per connection it had open (not the 300 s lease).

Two real ``newsletter worker`` processes on a real broker: on the PostgreSQL pass its Redis,
on the SQLite pass a Redis on loopback (the embedded stub queue cannot be shared between
processes). The claim token is checked in process: a worker that lost its rows cannot record
them, release them or renew them.
"""

from __future__ import annotations

import os
import signal
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.delivery.models import Delivery, WorkerHeartbeat
from newsletter.delivery.send import dispatcher, heartbeat, outcomes
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.delivery.helpers import FaultySMTPServer, make_sendable_issue
from tests.delivery.processes import (
    kill_group,
    logs_text,
    newsletter_env,
    start_send,
    stop_all,
    wait_until,
)
from tests.factories import make_list, make_subscriber
from tests.helpers import TEST_BROKER_URL, require_service
from tests.smtp import CapturingSMTPServer

#: what the issue promises: a dead worker's rows are sent by the others within this
HANDOVER_SECONDS = 30
RECIPIENTS = 200
VICTIM_THREADS = 2


def _redis_url() -> str:
    """The broker of this run, or a Redis of its own on loopback for the SQLite pass."""
    import redis

    url = TEST_BROKER_URL or f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}"
    if not url.startswith("redis"):
        return url
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as error:  # noqa: BLE001 - any failure means "not reachable"
        require_service("Redis", f"{url}: {error}")
    return url


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    return {**app_config, "BROKER_URL": app_config["BROKER_URL"] or _redis_url()}


def _audience(count: int) -> tuple[list[str], int]:
    news = make_list("news")
    emails = [f"reader{n:04}@example.com" for n in range(count)]
    for email in emails:
        make_subscriber(email, lists=(news,))
    return emails, int(make_sendable_issue(news).id)


def _progress(issue_id: int) -> dict[str, Any]:
    db.session.remove()
    return dispatcher.progress(issue_id)


# --- the claim token, in process ----------------------------------------------------------


def test_rows_of_a_worker_not_seen_for_the_timeout_are_handed_over_and_its_outcomes_refused(
    app: Flask,
) -> None:
    _, issue_id = _audience(6)
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)
    first, last = dispatcher.pending_ranges(issue_id, 100)[0]
    dead = heartbeat.Heartbeat(app, interval=5, timeout=20)
    alive = heartbeat.Heartbeat(app, interval=5, timeout=20)
    dead.register()
    alive.register()
    heartbeat._current = dead
    try:
        claim = outcomes.claim(issue_id, first, last, limit=4, lease=timedelta(minutes=5))
    finally:
        heartbeat._current = None
    assert len(claim.ids) == 4

    # Seen 10 s ago: still alive, its rows stay its own.
    _seen(dead, seconds_ago=10)
    assert heartbeat.hand_over(timedelta(seconds=20)).rows == 0
    # Seen 21 s ago: dead. Its rows are free at once (not after the 5 min lease)…
    _seen(dead, seconds_ago=21)
    _seen(alive, seconds_ago=0)
    handed = heartbeat.hand_over(timedelta(seconds=20))
    assert (handed.rows, handed.issue_ids, handed.dead_workers) == (4, [issue_id], [dead.worker_id])
    assert db.session.get(WorkerHeartbeat, dead.worker_id) is None
    taken = outcomes.claim(issue_id, first, last, limit=10, lease=timedelta(minutes=5))
    assert set(claim.ids) <= set(taken.ids)

    # …and the worker that lost them can neither record, release nor renew them.
    recorder = outcomes.SentRecorder()
    with pytest.raises(outcomes.ClaimLost) as lost:
        recorder.record(claim.ids[0], message_id="<x@example.org>", reply="250 Ok",
                        token=claim.token or 0)  # fmt: skip
        recorder.wait()
    recorder.close()
    assert lost.value.delivery_id == claim.ids[0]
    outcomes.release(claim.ids, claim.token)
    assert outcomes.renew(claim, claim.ids, timedelta(minutes=5)).ids == []
    db.session.expire_all()
    rows = db.session.scalars(select(Delivery).where(Delivery.id.in_(claim.ids))).all()
    assert {(row.status.value, row.claim_token) for row in rows} == {("pending", taken.token)}


def test_a_worker_taken_for_dead_registers_again_when_its_heartbeat_comes_back(
    app: Flask,
) -> None:
    beat = heartbeat.Heartbeat(app, interval=5, timeout=20)
    old = beat.register()
    _seen(beat, seconds_ago=60)
    heartbeat.hand_over(timedelta(seconds=20))
    beat.beat()
    assert beat.worker_id != old
    assert db.session.get(WorkerHeartbeat, beat.worker_id) is not None


def _seen(beat: heartbeat.Heartbeat, *, seconds_ago: float) -> None:
    row = db.session.get(WorkerHeartbeat, beat.worker_id)
    assert row is not None
    row.last_seen = utcnow() - timedelta(seconds=seconds_ago)
    db.session.commit()


# --- a worker process SIGKILLed mid-send --------------------------------------------------


# Services pass only (Makefile): worker processes on a shared broker are never the embedded
# default (the first pass ran them on SQLite and a Redis of its own); the claim-token tests
# above run in both passes.
@pytest.mark.slow
@pytest.mark.services_only
def test_a_worker_killed_mid_send_has_its_rows_sent_by_the_other_within_30_s(
    app: Flask, faulty_smtp: FaultySMTPServer, mailbox: CapturingSMTPServer, tmp_path: Path
) -> None:
    emails, issue_id = _audience(RECIPIENTS)
    # Default lease (300 s) and heartbeat settings: only the heartbeat can make it in time.
    common = {"BATCH_SIZE": 40, "LEASE_SECONDS": 300}
    victim_env = newsletter_env(
        app, SMTP_URL=faulty_smtp.url, WORKER_THREADS=VICTIM_THREADS, **common
    )
    other_env = newsletter_env(app, SMTP_URL=f"smtp://127.0.0.1:{mailbox.port}", **common)
    handler = faulty_smtp.handler
    # After 10 messages the victim's relay keeps each message and holds its "250" back: each
    # of its connections has one message it cannot know was taken, and a batch claimed.
    handler.stall_after = 10
    victim = start_send(app, issue_id, victim_env, tmp_path)
    processes = list(victim)
    try:
        wait_until(lambda: handler.stalled >= VICTIM_THREADS, timeout=90,
                   what="every connection of the victim waiting for its reply")  # fmt: skip
        processes += start_send(app, issue_id, other_env, tmp_path, resume=True)
        with handler.lock:
            open_at_kill = len(handler.open_connections)
        unanswered = set(handler.stalled_recipients)
        assert kill_group(victim[0]) == -signal.SIGKILL
        killed_at = time.monotonic()
        handler.stall_after = None
        handler.released.set()
        assert _progress(issue_id)["status"] == "sending"

        wait_until(lambda: _progress(issue_id)["status"] == "sent", timeout=120,
                   what="the issue to be sent")  # fmt: skip
        finished_after = time.monotonic() - killed_at
    except AssertionError as error:
        raise AssertionError(f"{error}\n{logs_text(tmp_path)}") from None
    finally:
        statuses = stop_all(processes[1:])
    assert statuses == [0], logs_text(tmp_path)

    counts = Counter(
        r.lower() for m in faulty_smtp.messages + mailbox.messages for r in m.recipients
    )
    extra = {address: n - 1 for address, n in counts.items() if n > 1}
    print(f"\nhandover: recipients={len(counts)} duplicates={sum(extra.values())} "
          f"open_at_kill={open_at_kill} finished_after_kill_s={finished_after:.1f}")  # fmt: skip
    assert sorted(counts) == emails
    assert sum(extra.values()) <= open_at_kill, (extra, open_at_kill)
    assert set(extra) <= unanswered, (extra, unanswered)
    assert finished_after < HANDOVER_SECONDS, logs_text(tmp_path)
    state = _progress(issue_id)
    assert (state["sent"], state["pending"]) == (RECIPIENTS, 0)


def test_metrics_count_the_workers_whose_heartbeat_is_recent(app: Flask) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    live, silent = (heartbeat.Heartbeat(app, interval=5, timeout=20) for _ in range(2))
    live.register()
    silent.register()
    _seen(silent, seconds_ago=30)

    response = app.test_client().get("/metrics")
    assert response.status_code == 200, response.text
    values = {
        sample.name: sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    assert values["newsletter_worker_heartbeats"] == 1
