"""Sending an issue: one message per recipient, each outcome recorded, sent only when all final."""

from __future__ import annotations

import mailbox as maildir_lib
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from newsletter.audience.models import (
    Subscriber,
    SubscriberStatus,
    Subscription,
    SubscriptionStatus,
)
from newsletter.content.models import Issue, IssueStatus
from newsletter.delivery.models import Delivery, DeliveryStatus
from newsletter.delivery.send import dispatcher, outcomes
from newsletter.errors import PermanentDeliveryError
from newsletter.extensions import db
from newsletter.models import utcnow
from tests.delivery.helpers import (
    Audience,
    FaultySMTPServer,
    deliveries_by_email,
    subscriber_status,
)
from tests.smtp import CapturingSMTPServer


def start_without_workers(issue_id: int) -> None:
    """Press send and write the audience, leaving the batches to the test."""
    dispatcher.request_send(issue_id)
    dispatcher.start_issue(issue_id)


def all_ids(issue_id: int) -> tuple[int, int]:
    ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id)))
    return ids[0], ids[-1]


def test_every_recipient_gets_exactly_one_message(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    dispatcher.request_send(issue_id)
    run_jobs()

    received = Counter(r.lower() for m in mailbox.messages for r in m.recipients)
    assert sorted(received) == audience.emails
    assert set(received.values()) == {1}
    assert dispatcher.progress(issue_id) == {
        "status": "sent", "total": 4, "sent": 4, "failed": 0, "pending": 0, "skipped": 0,
    }
    issue = db.session.get(Issue, issue_id)
    assert (issue.total_count, issue.sent_count, issue.failed_count) == (4, 4, 0)
    assert issue.finished_at is not None and issue.finished_at >= issue.started_at


def test_each_message_is_personal_and_recorded_with_its_message_id(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    dispatcher.request_send(issue_id)
    run_jobs()

    records = deliveries_by_email(issue_id)
    for address in audience.emails:
        (captured,) = mailbox.to(address)
        message = captured.message
        record = records[address]
        assert record.status is DeliveryStatus.SENT
        assert record.sent_at is not None
        assert record.last_reply and record.last_reply.startswith("250")
        assert message["Message-ID"] == f"<{record.message_id}>"
        assert message["Subject"] == "This week"
        assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        assert "https://news.example.org/unsubscribe/" in message["List-Unsubscribe"]
        assert captured.mail_from == "news@example.org"
    ada = mailbox.to("ada@example.com")[0].message
    assert "Ada" in ada.get_body(("plain",)).get_content()
    # cy@ is on both lists: the links name the first list the issue is for (news).
    assert mailbox.to("cy@example.com")[0].message["List-Id"].endswith("<news.news.example.org>")


def test_without_a_relay_messages_go_to_the_maildir_outbox(
    app_config: dict[str, Any], mailbox: CapturingSMTPServer
) -> None:
    from newsletter import create_app
    from tests.delivery.helpers import make_audience, make_sendable_issue
    from tests.helpers import reset_database

    app_config["SMTP_URL"] = None
    app = create_app(app_config)
    with app.app_context():
        reset_database(app)
        app.extensions["dramatiq"].flush_all()
        audience = make_audience()
        issue_id = make_sendable_issue(audience.news, audience.events).id
        outbox = Path(app.config["OUTBOX_PATH"])

        _send_with_threads(app, issue_id)

        stored = maildir_lib.Maildir(outbox, create=False)
        recipients = sorted(str(message["To"]).split("<")[-1].rstrip(">") for message in stored)
        assert recipients == audience.emails
        assert mailbox.messages == []
        assert dispatcher.progress(issue_id)["status"] == "sent"
        db.session.remove()
        app.extensions["dramatiq"].flush_all()
        db.engine.dispose()


def _send_with_threads(app: Flask, issue_id: int) -> None:
    from newsletter.broker import start_worker_threads

    worker = start_worker_threads(app, threads=2)
    try:
        dispatcher.request_send(issue_id)
        broker = app.extensions["dramatiq"]
        broker.join("delivery", timeout=60_000)
        worker.join()
    finally:
        worker.stop()
    db.session.remove()


def test_a_5xx_for_an_address_fails_it_and_blocklists_the_subscriber(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    mailbox.handler.refuse["bo@example.com"] = "550 5.1.1 no such user"

    dispatcher.request_send(issue_id)
    run_jobs()

    records = deliveries_by_email(issue_id)
    assert records["bo@example.com"].status is DeliveryStatus.FAILED
    assert records["bo@example.com"].last_reply == "550 5.1.1 no such user"
    assert subscriber_status("bo@example.com") is SubscriberStatus.BLOCKLISTED
    others = [a for a in audience.emails if a != "bo@example.com"]
    assert all(records[a].status is DeliveryStatus.SENT for a in others)
    assert sorted(r for m in mailbox.messages for r in m.recipients) == others
    progress = dispatcher.progress(issue_id)
    assert (progress["status"], progress["sent"], progress["failed"]) == ("sent", 3, 1)
    assert db.session.get(Issue, issue_id).failed_count == 1


def test_a_5xx_about_the_message_fails_it_but_keeps_the_subscriber(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer, run_jobs: Callable[[], None]
) -> None:
    mailbox.handler.refuse["bo@example.com"] = "552 5.3.4 message too big for this mailbox"

    dispatcher.request_send(issue_id)
    run_jobs()

    assert deliveries_by_email(issue_id)["bo@example.com"].status is DeliveryStatus.FAILED
    assert subscriber_status("bo@example.com") is SubscriberStatus.ACTIVE


@pytest.mark.parametrize(
    ("code", "reply", "hard"),
    [
        (550, "5.1.1 no such user", True),
        (550, "5.2.1 mailbox disabled", True),
        (553, "mailbox name not allowed", True),
        (550, "5.7.1 relaying denied", False),
        (554, "5.7.1 message rejected as spam", False),
        (552, "message size exceeds limit", False),
    ],
)
def test_only_a_bad_address_counts_as_a_hard_bounce(code: int, reply: str, hard: bool) -> None:
    assert outcomes.is_hard_bounce(PermanentDeliveryError(code, reply)) is hard


def test_a_4xx_is_retried_and_then_sent(
    app: Flask, audience: Audience, issue_id: int, faulty_smtp: FaultySMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    app.config.update(SMTP_URL=faulty_smtp.url, RETRY_BACKOFF_SECONDS=0)
    faulty_smtp.handler.flaky["ada@example.com"] = 1

    dispatcher.request_send(issue_id)
    run_jobs()

    record = deliveries_by_email(issue_id)["ada@example.com"]
    assert record.status is DeliveryStatus.SENT
    assert record.attempts == 1  # one failed try before the one that worked
    assert faulty_smtp.handler.tries["ada@example.com"] == 2
    assert len(faulty_smtp.to("ada@example.com")) == 1
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_a_4xx_waits_with_backoff_and_the_issue_stays_sending_meanwhile(
    app: Flask, audience: Audience, issue_id: int, faulty_smtp: FaultySMTPServer
) -> None:
    app.config.update(SMTP_URL=faulty_smtp.url, RETRY_BACKOFF_SECONDS=3600)
    faulty_smtp.handler.flaky["ada@example.com"] = 1
    start_without_workers(issue_id)

    dispatcher.send_batch(issue_id, *all_ids(issue_id))

    record = deliveries_by_email(issue_id)["ada@example.com"]
    assert record.status is DeliveryStatus.PENDING
    assert record.attempts == 1
    assert record.next_attempt_at is not None and record.last_reply.startswith("451")
    # Everyone else is final, but one delivery is not: the issue is not sent.
    assert dispatcher.progress(issue_id)["status"] == "sending"
    assert dispatcher.progress(issue_id)["pending"] == 1
    assert len(faulty_smtp.messages) == 3


def test_a_4xx_every_time_fails_after_the_last_attempt(
    app: Flask, audience: Audience, issue_id: int, faulty_smtp: FaultySMTPServer,
    run_jobs: Callable[[], None],
) -> None:
    app.config.update(SMTP_URL=faulty_smtp.url, RETRY_BACKOFF_SECONDS=0, MAX_ATTEMPTS=3)
    faulty_smtp.handler.flaky["ada@example.com"] = 99

    dispatcher.request_send(issue_id)
    run_jobs()

    record = deliveries_by_email(issue_id)["ada@example.com"]
    assert (record.status, record.attempts) == (DeliveryStatus.FAILED, 3)
    assert record.last_reply.startswith("451")
    assert subscriber_status("ada@example.com") is SubscriberStatus.ACTIVE  # not a hard bounce
    assert dispatcher.progress(issue_id)["status"] == "sent"


def test_who_unsubscribed_or_bounced_after_the_start_is_skipped(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer
) -> None:
    start_without_workers(issue_id)
    ada = db.session.scalars(select(Subscriber).where(Subscriber.email == "ada@example.com")).one()
    for subscription in db.session.scalars(
        select(Subscription).where(Subscription.subscriber_id == ada.id)
    ):
        subscription.status = SubscriptionStatus.UNSUBSCRIBED
    bo = db.session.scalars(select(Subscriber).where(Subscriber.email == "bo@example.com")).one()
    bo.status = SubscriberStatus.BLOCKLISTED
    db.session.commit()

    dispatcher.send_batch(issue_id, *all_ids(issue_id))

    records = deliveries_by_email(issue_id)
    assert records["ada@example.com"].status is DeliveryStatus.SKIPPED
    assert records["bo@example.com"].status is DeliveryStatus.SKIPPED
    assert sorted(r for m in mailbox.messages for r in m.recipients) == [
        "cy@example.com", "di@example.com",
    ]
    assert dispatcher.progress(issue_id) == {
        "status": "sent", "total": 4, "sent": 2, "failed": 0, "pending": 0, "skipped": 2,
    }


def test_the_issue_is_sent_only_when_every_batch_is_done(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer
) -> None:
    app.config["BATCH_SIZE"] = 2
    start_without_workers(issue_id)
    first, last = all_ids(issue_id)
    ids = sorted(db.session.scalars(select(Delivery.id).where(Delivery.issue_id == issue_id)))

    dispatcher.send_batch(issue_id, ids[0], ids[1])
    assert dispatcher.progress(issue_id)["status"] == "sending"
    dispatcher.send_batch(issue_id, ids[2], ids[3])
    assert dispatcher.progress(issue_id)["status"] == "sent"
    dispatcher.send_batch(issue_id, first, last)  # a late duplicate of a batch: nothing happens

    assert len(mailbox.messages) == 4


def test_a_batch_for_an_issue_that_is_not_sending_sends_nothing(
    audience: Audience, issue_id: int, mailbox: CapturingSMTPServer
) -> None:
    start_without_workers(issue_id)
    db.session.get(Issue, issue_id).status = IssueStatus.PAUSED
    db.session.commit()

    dispatcher.send_batch(issue_id, *all_ids(issue_id))

    assert mailbox.messages == []
    assert dispatcher.progress(issue_id)["pending"] == 4


def test_rows_leased_by_another_worker_are_left_alone(
    app: Flask, audience: Audience, issue_id: int, mailbox: CapturingSMTPServer
) -> None:
    start_without_workers(issue_id)
    first, last = all_ids(issue_id)
    taken = outcomes.claim(issue_id, first, last, limit=1, lease=_minutes(5))

    dispatcher.send_batch(issue_id, first, last)

    assert len(mailbox.messages) == 3
    assert deliveries_by_email(issue_id) and dispatcher.progress(issue_id)["pending"] == 1
    assert db.session.get(Delivery, taken.ids[0]).status is DeliveryStatus.PENDING


def _minutes(n: int) -> Any:
    from datetime import timedelta

    return timedelta(minutes=n)


def test_a_slow_batch_renews_its_lease_and_keeps_only_rows_still_its_own(
    app: Flask, audience: Audience, issue_id: int
) -> None:
    from datetime import timedelta

    start_without_workers(issue_id)
    first, last = all_ids(issue_id)
    claim = outcomes.claim(issue_id, first, last, limit=10, lease=timedelta(seconds=1))
    # One row's lease ran out and another worker took it meanwhile (a claim of its own).
    db.session.execute(
        update(Delivery).where(Delivery.id == claim.ids[0]).values(lease_until=utcnow())
    )
    db.session.commit()
    taken = outcomes.claim(issue_id, first, last, limit=10, lease=timedelta(minutes=5))
    assert taken.ids == claim.ids[:1]

    renewed = outcomes.renew(claim, claim.ids, timedelta(minutes=5))

    assert renewed.ids == claim.ids[1:]
    assert renewed.until > claim.until
