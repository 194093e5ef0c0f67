"""A worker process killed (SIGKILL) in the middle of a send: a new one finishes the issue and
nobody is mailed twice."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from flask import Flask

from newsletter.broker import is_embedded
from newsletter.delivery.send import dispatcher
from newsletter.extensions import db
from tests.delivery.helpers import FaultySMTPServer, make_sendable_issue
from tests.delivery.processes import kill_group, newsletter_env, run, start, wait_until
from tests.factories import make_list, make_subscriber

RECIPIENTS = 15
KILLED_AFTER = 6


# Both passes: on the embedded default the in-process workers of `issues send --wait` are
# killed and the command run again resumes the send itself; this is that path's only cover.
@pytest.mark.slow
def test_a_send_killed_mid_batch_is_finished_by_the_next_worker_without_duplicates(
    app: Flask, faulty_smtp: FaultySMTPServer, tmp_path: Path
) -> None:
    news = make_list("news")
    emails = [f"reader{n:02}@example.com" for n in range(RECIPIENTS)]
    for email in emails:
        make_subscriber(email, lists=(news,))
    issue_id = make_sendable_issue(news).id
    env = newsletter_env(
        app, SMTP_URL=faulty_smtp.url, BATCH_SIZE=5, LEASE_SECONDS=2, SMTP_TIMEOUT=1,
        WORKER_THREADS=1,
    )
    log = tmp_path / "worker.log"
    # The relay takes KILLED_AFTER messages, then holds the next MAIL: the worker is caught
    # between two messages with a batch claimed, and killed there once the last message the
    # relay took is recorded (that MAIL went out with its end, before the relay's answer).
    faulty_smtp.handler.hold_after = KILLED_AFTER
    embedded = is_embedded(app)
    if embedded:
        first = start(["issues", "send", str(issue_id), "--wait"], env, log)
    else:
        dispatcher.request_send(issue_id)
        first = start(["worker", "--threads", "1"], env, log)

    assert faulty_smtp.handler.held.wait(60), log.read_text()
    wait_until(lambda: sent_now(issue_id) == KILLED_AFTER, what="the sixth outcome recorded")
    assert kill_group(first) == -signal.SIGKILL
    faulty_smtp.handler.hold_after = None
    faulty_smtp.handler.released.set()

    db.session.remove()
    assert dispatcher.progress(issue_id)["status"] == "sending"
    assert len(faulty_smtp.messages) == KILLED_AFTER

    env["NEWSLETTER_WORKER_THREADS"] = "2"
    second = None if embedded else start(["worker"], env, log)
    try:
        # On the embedded queue this command itself resumes and does the work.
        resumed = run(["issues", "send", str(issue_id), "--wait"], env, timeout=120)
    finally:
        if second is not None:
            assert kill_group(second, signal.SIGTERM) == 0, log.read_text()

    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    # The restarted worker may finish before this command looks: either way it succeeds.
    assert "already sending" in resumed.stdout or "was already sent" in resumed.stdout
    received = Counter(r.lower() for m in faulty_smtp.messages for r in m.recipients)
    assert sorted(received) == emails
    assert set(received.values()) == {1}, [a for a, n in received.items() if n > 1]
    db.session.remove()
    assert dispatcher.progress(issue_id) == {
        "status": "sent", "total": RECIPIENTS, "sent": RECIPIENTS, "failed": 0, "pending": 0,
        "skipped": 0,
    }


def sent_now(issue_id: int) -> int:
    db.session.remove()  # a fresh look at what the worker committed
    return int(dispatcher.progress(issue_id)["sent"])
